// AltCLIPModel, mirroring transformers' AltCLIPModel: both towers, the projection heads
// (no bias) and the contrastive logits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.hpp"
#include "format/model_file.hpp"
#include "kernels/gemm.hpp"
#include "kernels/ops.hpp"
#include "modeling_outputs.hpp"
#include "modules/setup.hpp"
#include "modules/weights.hpp"
#include "options.hpp"
#include "tensor.hpp"
#include "text.hpp"
#include "vision.hpp"

namespace altclip {

inline Tensor softmax(const Tensor& logits);

/// As transformers' AltCLIPOutput.
struct AltCLIPOutput {
    Tensor logits_per_image;  // [n_image, n_text]
    Tensor logits_per_text;   // [n_text, n_image]
    Tensor text_embeds;       // [n_text, projection_dim], L2-normalised
    Tensor image_embeds;      // [n_image, projection_dim], L2-normalised
    BaseModelOutputWithPooling text_model_output;
    BaseModelOutputWithPooling vision_model_output;

    /// Each image's probabilities over the texts [n_image, n_text]: softmax(logits_per_image),
    /// as the reference's `outputs.logits_per_image.softmax(dim=1)`.
    Tensor probs_per_image() const { return softmax(logits_per_image); }
};

namespace detail {

/// Throws InvalidArgument unless `t` is a matrix [rows >= 1, cols >= 1] holding rows * cols values.
inline void check_matrix(const Tensor& t, const char* who) {
    if (t.shape.size() != 2 || t.shape[0] <= 0 || t.shape[1] <= 0 ||
        static_cast<std::int64_t>(t.data.size()) != t.shape[0] * t.shape[1]) {
        std::string shape = "[";
        for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
        throw InvalidArgument(std::string(who) + ": expected a matrix [rows, columns] with at least one of each, got shape " +
                              shape + "] holding " + std::to_string(t.data.size()) + " values");
    }
}

}  // namespace detail

/// Divides each row of a matrix [rows, dim] by its L2 norm (no epsilon, as the reference's
/// _get_vector_norm). Throws InvalidArgument for another shape.
inline void l2_normalize_rows(Tensor& t) {
    detail::check_matrix(t, "l2_normalize_rows");
    const std::int64_t rows = t.dim(0), n = t.dim(1);
    for (std::int64_t r = 0; r < rows; ++r) {
        float* x = t.slice(r);
        double s = 0;
        for (std::int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
        const float norm = static_cast<float>(std::sqrt(s));
        for (std::int64_t i = 0; i < n; ++i) x[i] /= norm;
    }
}

/// Softmax of each row of a matrix of logits [rows, n] (in double, the largest logit taken
/// out first): `logits_per_image.softmax(dim=1)`, each image's probabilities over the texts,
/// as a zero-shot classifier reports them. Throws InvalidArgument for another shape.
inline Tensor softmax(const Tensor& logits) {
    detail::check_matrix(logits, "softmax");
    const std::int64_t rows = logits.dim(0), n = logits.dim(1);
    Tensor out({rows, n});
    std::vector<double> e(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* x = logits.slice(r);
        const double m = *std::max_element(x, x + n);
        double sum = 0;
        for (std::int64_t j = 0; j < n; ++j) sum += e[static_cast<std::size_t>(j)] = std::exp(double(x[j]) - m);
        float* o = out.slice(r);
        for (std::int64_t j = 0; j < n; ++j) o[j] = static_cast<float>(e[static_cast<std::size_t>(j)] / sum);
    }
    return out;
}

/// Immutable after construction; every method is const and safe to call from several threads.
class AltCLIPModel {
public:
    /// Maps and validates a model file made by tools/convert.py (weights are used in place
    /// for f32 files). Throws IoError, FormatError or ConfigError.
    static AltCLIPModel from_file(const std::string& path, const ModelOptions& options = {}) {
        return AltCLIPModel(ModelFile::open(path), options);
    }
    /// Shorthand for ModelOptions{num_threads}: threads one call uses (0 = all cores).
    static AltCLIPModel from_file(const std::string& path, int num_threads) {
        ModelOptions o;
        o.num_threads = num_threads;
        return from_file(path, o);
    }

    explicit AltCLIPModel(std::shared_ptr<const ModelFile> file, const ModelOptions& options = {})
        : AltCLIPModel(file, detail::ModelSetup(file, options, "", "AltCLIPModel")) {}

    int num_threads() const { return pool_->size(); }
    /// The instruction-set level this model's kernels run (cpu_info(), ModelOptions::max_isa).
    Isa isa() const { return pool_->isa(); }
    /// What multiplies this model's matrices: oneDNN (its version and implementations) and/or
    /// altclip's kernels at isa() (ModelOptions::onednn).
    std::string matmul_engine() const { return detail::matmul_engine(*storage_, isa()); }

    const AltCLIPConfig& config() const { return file_->config(); }
    const ModelFile& file() const { return *file_; }
    std::shared_ptr<const ModelFile> file_ptr() const { return file_; }
    float logit_scale() const { return logit_scale_; }

    /// Projected pooler output of the text tower [batch, projection_dim], not normalised.
    Tensor get_text_features(const TokenView& tokens) const { return project(text_model.pooler_output(tokens), text_projection); }
    /// Projected pooler output of the vision tower [batch, projection_dim], not normalised.
    Tensor get_image_features(const PixelView& pixels, bool interpolate_pos_encoding = false) const {
        return project(vision_model.pooler_output(pixels, interpolate_pos_encoding), visual_projection);
    }

    AltCLIPOutput forward(const TokenView& tokens, const PixelView& pixels, bool interpolate_pos_encoding = false) const try {
        AltCLIPOutput o;
        o.text_model_output = text_model.forward(tokens);
        o.vision_model_output = vision_model.forward(pixels, interpolate_pos_encoding);
        o.text_embeds = project(o.text_model_output.pooler_output, text_projection);
        o.image_embeds = project(o.vision_model_output.pooler_output, visual_projection);
        l2_normalize_rows(o.text_embeds);
        l2_normalize_rows(o.image_embeds);
        o.logits_per_text = logits(o.text_embeds, o.image_embeds, logit_scale_);
        o.logits_per_image = logits(o.image_embeds, o.text_embeds, logit_scale_);
        return o;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("AltCLIPModel::forward", std::to_string(tokens.batch) + " texts of " +
                                     std::to_string(tokens.seq) + " tokens and " + std::to_string(pixels.batch) + " images");
    }

    /// exp(logit_scale) * a . b^T for normalised embeddings a [n, d], b [m, d] -> [n, m].
    static Tensor logits(const Tensor& a, const Tensor& b, float logit_scale) try {
        detail::check_matrix(a, "AltCLIPModel::logits");
        detail::check_matrix(b, "AltCLIPModel::logits");
        if (a.dim(1) != b.dim(1)) {
            throw InvalidArgument("AltCLIPModel::logits: embeddings of " + std::to_string(a.dim(1)) + " and " +
                                  std::to_string(b.dim(1)) + " values; pass both from the same model");
        }
        const std::int64_t n = a.dim(0), m = b.dim(0), d = a.dim(1);
        Tensor out({n, m});
        kernels::linear(a.ptr(), n, d, b.ptr(), nullptr, m, out.ptr(), nullptr);
        const float scale = std::exp(logit_scale);
        for (auto& v : out.data) v *= scale;
        return out;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("AltCLIPModel::logits", std::to_string(a.shape.empty() ? 0 : a.shape[0]) + " x " +
                                     std::to_string(b.shape.empty() ? 0 : b.shape[0]) + " logits");
    }

    AltCLIPTextModel text_model;
    AltCLIPVisionModel vision_model;
    detail::LinearParams visual_projection, text_projection;

private:
    /// The towers bind through the model's set-up (one loader over the whole file, one pool).
    AltCLIPModel(std::shared_ptr<const ModelFile> file, detail::ModelSetup&& setup)
        : text_model(setup), vision_model(setup), file_(file), storage_(setup.storage()), pool_(setup.pool()) {
        const auto& c = file->config();
        detail::WeightLoader& w = setup.loader();
        visual_projection = w.linear("visual_projection", c.projection_dim, c.vision_config.hidden_size, false);
        text_projection = w.linear("text_projection", c.projection_dim, c.text_config.project_dim, false);
        const float* ls = w.get("logit_scale", {});
        setup.finish();
        logit_scale_ = *ls;
    }

    Tensor project(const Tensor& pooled, const detail::LinearParams& p) const {
        Tensor out({pooled.dim(0), p.out});
        kernels::linear(pooled.ptr(), pooled.dim(0), p.in, p.weight, nullptr, p.out, out.ptr(), pool_.get());
        return out;
    }

    std::shared_ptr<const ModelFile> file_;
    std::shared_ptr<const detail::WeightStorage> storage_;  // keeps the weights (and the mapping) alive
    std::shared_ptr<kernels::ThreadPool> pool_;
    float logit_scale_ = 0;
};

}  // namespace altclip
