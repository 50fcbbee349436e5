// Loading a model from a model file, written once for AltCLIPModel, AltCLIPTextModel and
// AltCLIPVisionModel: one storage for the weights the loader widens, one thread pool the
// model's calls share, one loader that binds every module's parameters and then reports all
// problems at once (finish()). A tower loaded alone owns its set-up; inside AltCLIPModel both
// towers bind through the model's, so they share its pool and its storage.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "../config.hpp"
#include "../format/model_file.hpp"
#include "../isa.hpp"
#include "../kernels/thread_pool.hpp"
#include "../options.hpp"
#include "pool.hpp"
#include "weights.hpp"

namespace altclip::detail {

/// One model's set-up; `scope` is the key prefix its loader owns ("" for the whole model),
/// `who` names the class in messages.
class ModelSetup {
public:
    ModelSetup(std::shared_ptr<const ModelFile> file, const ModelOptions& options, const std::string& scope,
               const std::string& who)
        : file_(std::move(file)),
          storage_(std::make_shared<WeightStorage>()),
          pool_(make_thread_pool(options, who)),
          loader_(file_, storage_, scope, !options.exact, pool_->isa(), pool_.get()) {
        // The matrix products' engine, chosen once per model (kernels/onednn.hpp).
        if (kernels::onednn::use_onednn(options.onednn) && !options.exact) {
#if ALTCLIP_WITH_ONEDNN
            storage_->onednn = std::make_shared<kernels::onednn::Context>(pool_);
#endif
        }
    }

    const ModelFile& file() const { return *file_; }
    WeightLoader& loader() { return loader_; }
    const std::shared_ptr<kernels::ThreadPool>& pool() const { return pool_; }
    std::shared_ptr<const WeightStorage> storage() const { return storage_; }
    /// Throws one FormatError listing every problem (WeightLoader::finish).
    void finish() const { loader_.finish(); }

private:
    std::shared_ptr<const ModelFile> file_;
    std::shared_ptr<WeightStorage> storage_;
    std::shared_ptr<kernels::ThreadPool> pool_;
    WeightLoader loader_;
};

/// Each tower's key prefix (its tensors'), class name (for messages) and config within
/// AltCLIPConfig.
template <class Config>
struct TowerKeys;
template <>
struct TowerKeys<AltCLIPTextConfig> {
    static constexpr const char* scope = "text_model.";
    static constexpr const char* name = "AltCLIPTextModel";
    static const AltCLIPTextConfig& config(const AltCLIPConfig& c) { return c.text_config; }
};
template <>
struct TowerKeys<AltCLIPVisionConfig> {
    static constexpr const char* scope = "vision_model.";
    static constexpr const char* name = "AltCLIPVisionModel";
    static const AltCLIPVisionConfig& config(const AltCLIPConfig& c) { return c.vision_config; }
};

/// What both towers hold besides their modules, and how they load: `Model` (CRTP) binds its
/// modules in load(WeightLoader&, prefix, config), a friend of this class.
template <class Model, class Config>
class Tower {
public:
    /// The tower of a model file alone (the tensors under TowerKeys<Config>::scope).
    static Model from_file(const std::string& path, const ModelOptions& options = {}) {
        return Model(ModelFile::open(path), options);
    }

    const Config& config() const { return config_; }
    /// The instruction-set level this tower's kernels run (cpu_info(), ModelOptions::max_isa).
    Isa isa() const { return pool_->isa(); }
    /// What multiplies this tower's matrices: oneDNN (its version and implementations) and/or
    /// altclip's kernels at isa() (ModelOptions::onednn).
    std::string matmul_engine() const { return detail::matmul_engine(*storage_, isa()); }

protected:
    /// Loads the tower alone, with a set-up of its own.
    void load_alone(std::shared_ptr<const ModelFile> file, const ModelOptions& options) {
        ModelSetup setup(std::move(file), options, TowerKeys<Config>::scope, TowerKeys<Config>::name);
        load_in(setup);
        setup.finish();
    }
    /// Binds the tower's parameters through `setup` (its own, or AltCLIPModel's).
    void load_in(ModelSetup& setup) {
        config_ = TowerKeys<Config>::config(setup.file().config());
        storage_ = setup.storage();
        pool_ = setup.pool();
        static_cast<Model*>(this)->load(setup.loader(), TowerKeys<Config>::scope, config_);
    }

    Config config_;
    std::shared_ptr<const WeightStorage> storage_;  // keeps the weights (and the mapping) alive
    std::shared_ptr<kernels::ThreadPool> pool_;     // thread-safe: shared by concurrent calls
};

}  // namespace altclip::detail
