// Binding the modules' parameters to the tensors of a model file.
//
// Each module asks the loader for its parameters by HF state_dict key (built from the
// module tree's prefixes) and expected shape. Weight matrices (weight_matrix()) are used in
// place from the mapped file when f32, bf16 or int8 (the kernels widen bf16 and int8 as they
// multiply); every other tensor (get()) is used in place when it is row-major f32, else
// copied once to row-major f32 (f16, bf16, f32 stored in panels) into storage the model owns.
// A model whose loader reported a problem is never run (finish() throws), so a missing
// tensor binds to nullptr. The loader does not stop at the first problem: it collects every missing, wrongly
// shaped, non-float and (in `finish`) unexpected tensor and reports them in one error.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "../kernels/eigen.hpp"  // before the kernels include Eigen
#include "../kernels/gemm.hpp"
#include "../format/mapped_file.hpp"  // FilePages
#include "../format/model_file.hpp"
#include "../options.hpp"

namespace altclip::detail {

/// What the bound parameters point into: the file's mapping (tensors used in place) and the
/// tensors the loader copied to row-major f32. Every model built from a loader holds it.
struct WeightStorage {
    std::shared_ptr<const ModelFile> file;           // keeps the mapping alive
    std::vector<std::vector<float>> widened;         // tensors copied to row-major f32 (get())
    std::shared_ptr<kernels::onednn::Context> onednn;  // set when the products run through oneDNN (setup.hpp)
    std::vector<std::unique_ptr<kernels::amx::PackedS8>> amx_s8;      // the ViT's int8 matrices as AMX tiles
    std::vector<std::unique_ptr<kernels::amx::PackedBf16>> amx_bf16;  // bf16 matrices (both towers') in 16-row panels
};

/// What multiplies a model's matrices, for model.matmul_engine() and --verbose.
inline std::string matmul_engine(const WeightStorage& storage, Isa isa) {
    std::string own = std::string("altclip ") + isa_name(isa) + " kernels";
    if (!storage.amx_s8.empty())
        own += "; the ViT's " + std::to_string(storage.amx_s8.size()) + " int8 weight matrices on AMX int8 tiles";
    if (!storage.amx_bf16.empty())
        own += "; " + std::to_string(storage.amx_bf16.size()) + " bf16 weight matrices on AMX bf16 tiles";
#if ALTCLIP_WITH_ONEDNN
    // Named only when it multiplies some matrix (asked for, it takes the bf16 matrices and the
    // ViT's int8 ones; a q8 text's stay on altclip's kernels).
    if (storage.onednn) {
        const auto parts = storage.onednn->parts_in_place_and_copied();
        if (parts.first + parts.second > 0) return storage.onednn->describe() + "; the other products: " + own;
    }
#endif
    (void)storage;
    return own;
}

/// nn.Linear: weight [out, in] (in place for f32, bf16 and q8 files, widened for f16; row-major or in the
/// kernels' panel layout, as stored), optional bias [out].
struct LinearParams {
    kernels::WeightMatrix weight;
    const float* bias = nullptr;  // nullptr when the layer has no bias
    std::int64_t out = 0, in = 0;
};

/// nn.LayerNorm: weight and bias [n], eps.
struct LayerNormParams {
    const float* weight = nullptr;
    const float* bias = nullptr;
    std::int64_t n = 0;
    float eps = 0;
};

/// When set (tests/list_weights.cpp), every loader adds the names its modules asked for to
/// this set as it finishes, before it reports any problem: the keys the C++ side binds, which
/// tools/tests/test_schema.py compares with the converter's schema. Not synchronised; nullptr
/// (nothing recorded) unless a test program sets it.
inline std::set<std::string>*& requested_tensor_log() {
    static std::set<std::string>* log = nullptr;
    return log;
}

class WeightLoader {
public:
    /// `scope`: the key prefix this loader owns ("" for the whole model, "text_model." for
    /// the text tower alone); tensors outside it are neither used nor reported as unexpected.
    /// bf16_dot: bf16 and int8 matrices multiply with activations of their own precision
    /// where `isa` has the instructions (AVX512_VNNI; AMX, or AVX512_BF16 where its dot
    /// products are faster than float32 FMAs: CpuInfo::bf16_dot_pays) instead of being widened
    /// to float32 in the kernel. The one place where a file's dtype and the kernels' level
    /// decide how each matrix is multiplied.
    WeightLoader(std::shared_ptr<const ModelFile> file, std::shared_ptr<WeightStorage> storage,
                 std::string scope = "", bool bf16_dot = false, Isa isa = Isa::portable,
                 kernels::ThreadPool* pool = nullptr)
        : file_(std::move(file)),
          storage_(std::move(storage)),
          scope_(std::move(scope)),
          pool_(pool),
          bf16_dot_(bf16_dot),
          bf16_ok_(cpu_info().bf16_dot_pays(isa)),
          vnni_ok_(isa >= Isa::avx512_vnni),
          amx_ok_(isa >= Isa::amx) {
        storage_->file = file_;
    }

    /// The storage the bound parameters live in; every model built from this loader keeps it.
    std::shared_ptr<const WeightStorage> storage() const { return storage_; }

    const float* get(const std::string& name, const std::vector<std::int64_t>& shape) {
        used_.insert(name);
        const auto& c = file_->container();
        if (!c.has_tensor(name)) {
            problems_.push_back("missing tensor '" + name + "' (expected shape " + shape_str(shape) + ")");
            return nullptr;
        }
        const TensorView& t = c.tensor(name);
        if (t.shape != shape) {
            problems_.push_back("tensor '" + name + "' has shape " + t.shape_str() + ", the config implies " +
                                shape_str(shape));
            return nullptr;
        }
        if (!is_float(t.dtype)) {
            problems_.push_back("tensor '" + name + "' has dtype " + dtype_name(t.dtype) +
                                ", expected f32, f16 or bf16");
            return nullptr;
        }
        if (t.dtype == DType::f32 && !t.panels) return static_cast<const float*>(t.data);
        storage_->widened.push_back(t.to_f32());  // f16, bf16, or a matrix stored in panels: row-major f32
        return storage_->widened.back().data();
    }

    LinearParams linear(const std::string& prefix, std::int64_t out, std::int64_t in, bool bias) {
        LinearParams p;
        p.out = out;
        p.in = in;
        p.weight = weight_matrix(prefix + ".weight", {out, in});
        if (bias) p.bias = get(prefix + ".bias", {out});
        return p;
    }

    LayerNormParams layer_norm(const std::string& prefix, std::int64_t n, double eps) {
        LayerNormParams p;
        p.n = n;
        p.eps = static_cast<float>(eps);
        p.weight = get(prefix + ".weight", {n});
        p.bias = get(prefix + ".bias", {n});
        return p;
    }

    /// Throws one FormatError listing every problem found, including tensors in scope that
    /// no module asked for.
    void finish() const {
        if (std::set<std::string>* log = requested_tensor_log()) log->insert(used_.begin(), used_.end());
        std::vector<std::string> all = problems_;
        for (const auto& kv : file_->container().tensors()) {
            if (kv.first.compare(0, scope_.size(), scope_) == 0 && !used_.count(kv.first)) {
                all.push_back("unexpected tensor '" + kv.first + "' " + kv.second.shape_str());
            }
        }
        if (all.empty()) return;
        std::string msg = file_->path() + ": the tensors do not match the config (" + std::to_string(all.size()) +
                          " problem" + (all.size() > 1 ? "s" : "") + "):";
        const std::size_t shown = std::min<std::size_t>(all.size(), 20);
        for (std::size_t i = 0; i < shown; ++i) msg += "\n  " + all[i];
        if (shown < all.size()) msg += "\n  ... and " + std::to_string(all.size() - shown) + " more";
        msg += "\nThe file was not made from this config, or by another converter version; re-run tools/convert.py.";
        throw FormatError(msg);
    }

    /// A weight matrix for the GEMM kernels, with the checks of get(): f32 and bf16 used in
    /// place from the file, f16 widened to f32 once. `shape` is [rows, cols] or a conv weight
    /// [out, channels, kh, kw] taken as [out, channels * kh * kw]. `products` false: a table
    /// only read row by row (kernels::weight_row: the word embeddings), never multiplied, so
    /// never given to oneDNN (whose copy of a 250002-row table cost 0.5 GB and 0.6 s of a load).
    kernels::WeightMatrix weight_matrix(const std::string& name, const std::vector<std::int64_t>& shape,
                                        bool products = true) {
        std::int64_t cols = 1;
        for (std::size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
        kernels::WeightMatrix m;
        m.rows = shape[0];
        m.cols = cols;
        const auto& c = file_->container();
        const bool found = c.has_tensor(name) && c.tensor(name).shape == shape;
        if (found && (c.tensor(name).dtype == DType::bf16 || (c.tensor(name).dtype == DType::f32 && c.tensor(name).panels))) {
            // bf16, and f32 in the kernels' panel layout, used in place; every other dtype goes
            // through get() (row-major f32 in place, f16 widened).
            used_.insert(name);
            const TensorView& t = c.tensor(name);
            if (t.dtype == DType::bf16)
                m.type = bf16_dot_ && bf16_ok_ ? kernels::WeightType::bf16_dot : kernels::WeightType::bf16;
            m.data = t.data;
            m.panels = t.panels;
            m.panel_rows = t.panel_rows;
            if (t.dtype == DType::bf16 && products && !pack_bf16_for_amx(m, name)) pack_for_onednn(m, name);
            return m;
        }
        if (found && c.tensor(name).dtype == DType::i8) {
            // q8 (tools/convert.py --dtype q8): int8 in place, with its per-row scales. The
            // text tower does not round its activations to int8: its post-LN layers lose more
            // accuracy that way than the ViT (bench/RESULTS.md). It multiplies float32
            // activations for a short text (bound by reading the weights anyway) and bfloat16
            // ones for a batch of labels.
            used_.insert(name);
            const bool text = is_text(name);
            if (!bf16_dot_) {
                m.type = kernels::WeightType::q8;
            } else if (text) {
                m.type = bf16_ok_ ? kernels::WeightType::q8_bf16 : kernels::WeightType::q8;
            } else {
                m.type = vnni_ok_ ? kernels::WeightType::q8_dot : kernels::WeightType::q8;
            }
            m.data = c.tensor(name).data;
            m.scale = get(name + "_scale", {shape[0]});
            if (!text && m.scale != nullptr && products && !pack_for_amx(m, name)) pack_for_onednn(m, name);
            return m;
        }
        m.data = get(name, shape);
        return m;
    }

private:
    /// The dispatch hook for oneDNN (kernels/onednn.hpp): when this model uses it (setup.hpp
    /// decides) and not exact, the matrix is copied once into oneDNN's layout, and
    /// kernels::linear multiplies that copy.
    void pack_for_onednn(kernels::WeightMatrix& m, const std::string& name) {
#if ALTCLIP_WITH_ONEDNN
        if (storage_->onednn && bf16_dot_) m.onednn = storage_->onednn->pack(m, name);
#else
        (void)m;
        (void)name;
#endif
    }

    static bool is_text(const std::string& name) {
        return name.rfind("text_model.", 0) == 0 || name.rfind("text_projection.", 0) == 0;
    }

    /// A copy of a matrix in the AMX kernels' layout, made on the model's threads
    /// (pack(copy, b0, b1) over the copy's blocks); no memory for it is a ResourceError that
    /// names the file and the weight. The file's pages of the matrix are then released.
    template <class Packed, class Make, class Pack>
    Packed* pack_copy(const kernels::WeightMatrix& m, const std::string& name, std::size_t file_bytes, Make make,
                      Pack pack, std::vector<std::unique_ptr<Packed>>& owner) {
        std::unique_ptr<Packed> p;
        try {
            p = std::make_unique<Packed>(make());
        } catch (const std::bad_alloc&) {
            throw ResourceError(file_->path() + ": no memory for the AMX tile copy of '" + name + "' (" +
                                std::to_string(file_bytes) + " bytes): free memory, or set ALTCLIP_MAX_ISA="
                                "avx512_bf16 to multiply the file's copy in place");
        }
        Packed& packed = *p;
        kernels::parallel_chunks(pool_, packed.blocks, 8, [&](std::int64_t b0, std::int64_t b1) { pack(packed, b0, b1); });
        pages_.release(m.data, file_bytes);
        owner.push_back(std::move(p));
        return owner.back().get();
    }

    /// The ViT's int8 matrices (q8_dot) on a CPU with AMX, not exact, oneDNN not asked for:
    /// copied once into the tiles' layout (kernels/amx_gemm.hpp), which kernels::linear then
    /// multiplies.
    bool pack_for_amx(kernels::WeightMatrix& m, const std::string& name) {
        if (!bf16_dot_ || storage_->onednn || !amx_ok_ || m.type != kernels::WeightType::q8_dot || m.panels ||
            m.data == nullptr)
            return false;
        const auto* w = static_cast<const std::int8_t*>(m.data);
        m.amx_s8 = pack_copy(
            m, name, static_cast<std::size_t>(m.rows * m.cols),
            [&] { return kernels::amx::make_packed_s8(m.rows, m.cols, m.scale); },
            [&](kernels::amx::PackedS8& p, std::int64_t b0, std::int64_t b1) { kernels::amx::pack_s8_blocks(w, p, b0, b1); },
            storage_->amx_s8);
        return true;
    }

    /// Both towers' bfloat16 matrices (bf16_dot, in the file's panels) on a CPU with AMX, not
    /// exact, oneDNN not asked for: copied once into 16-row panels (kernels::amx::PackedBf16),
    /// whose tiles are 1 KB in one piece. In the file's 64-row panels a tile's 16 lines lie 256
    /// bytes apart: a 16-token caption's products took 33-34 ms there (on the tiles or through
    /// oneDNN) and take 24-25 from the copies (bench/RESULTS.md).
    bool pack_bf16_for_amx(kernels::WeightMatrix& m, const std::string& name) {
        if (!bf16_dot_ || storage_->onednn || !amx_ok_ || m.type != kernels::WeightType::bf16_dot || !m.panels ||
            m.data == nullptr || !kernels::amx::bf16_panels_supported(m.cols, m.panel_rows))
            return false;
        const auto* w = static_cast<const std::uint32_t*>(m.data);
        const std::int64_t pr = m.panel_rows, rows = (m.rows + pr - 1) / pr * pr;
        m.amx_bf16 = pack_copy(
            m, name, static_cast<std::size_t>(rows * m.cols * 2),
            [&] { return kernels::amx::make_packed_bf16(m.rows, m.cols); },
            [&](kernels::amx::PackedBf16& p, std::int64_t b0, std::int64_t b1) {
                kernels::amx::pack_bf16_blocks(w, pr, p, b0, b1);
            },
            storage_->amx_bf16);
        return true;
    }

    static std::string shape_str(const std::vector<std::int64_t>& s) {
        std::string r = "[";
        for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
        return r + "]";
    }

    std::shared_ptr<const ModelFile> file_;
    std::shared_ptr<WeightStorage> storage_;
    std::string scope_;
    kernels::ThreadPool* pool_ = nullptr;  // the model's threads (packing at load)
    FilePages pages_;                      // the file's pages of matrices packed here
    std::set<std::string> used_;
    std::vector<std::string> problems_;
    bool bf16_dot_ = false;
    bool bf16_ok_ = false, vnni_ok_ = false, amx_ok_ = false;
};

}  // namespace altclip::detail
