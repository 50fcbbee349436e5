// Matrix products through oneDNN (Debian 12: libdnnl-dev 2.6), the library PyTorch and
// OpenVINO run on. Its JIT writes kernels for the CPU at run time, AMX tiles included. A model
// takes it only when asked to (use_onednn below, the one place that decides), for tests and
// comparisons. At Isa::amx altclip's own tiles (amx_gemm.hpp, from copies made at load) were
// faster on every path measured (bench/RESULTS.md); below AMX oneDNN was not taken by default
// before either (on Zen 4 its bf16 image was 1.1x faster than altclip's in one whole-model
// run, its products not faster one by one: bench/ONEDNN_RESULTS.md). Asked for, it takes
// every bf16 product and the ViT's int8 ones, at any level, and no AMX copy is made.
//
// What goes through it: bf16 weights (bf16 x bf16 -> f32; the activations rounded to bfloat16
// as the avx512_bf16 kernels round them) and the ViT's int8 weights (s8 x s8 -> s32, the
// per-row activation scale and per-column weight scale applied as the q8_dot kernels apply
// them, so the int32 sums and the float epilogue are the same). The text tower's int8 weights
// (WeightType::q8_bf16) stay on altclip's kernels (on AMX, amx_gemm.hpp): oneDNN 2.6 has no
// int8-weight x bfloat16 product, and widening them for it would double their memory.
//
// A bf16 weight matrix is taken in parts of whole 64-column blocks, in the layout oneDNN's matmul
// chooses for it (format_tag::any); an int8 one whole (one part). A bf16 matrix that the file stores in 64-row panels
// (format/layout.hpp: what tools/convert.py writes) already is that layout, BA16a64b2a, when
// oneDNN chooses it (it does for its AVX512_BF16 and AMX-BF16 matmuls) and k is a multiple of
// 32: it is used in place from the mapped file, nothing copied, nothing allocated. Any other
// matrix is reordered ONCE, when the model is loaded; the model owns that copy and the file's
// pages of the matrix are released (they are not read again). Primitives
// are made once per shape and kept in the model's Context, under a mutex: a loaded model stays
// immutable to its callers and safe to run from several threads.
//
// Threads: oneDNN's CPU runtime in Debian is OpenMP, whose idle team threads spin after each
// product, competing with altclip's pool for the cores while it runs the attention and norms.
// So oneDNN runs single-threaded (OpenMP threads set to 1 for the call, the caller's setting
// restored) on the model's own pool: ModelOptions::num_threads bounds the threads exactly as
// for altclip's kernels. An input of many rows (an image's 257) is split by rows, each thread
// multiplying its rows by the whole matrix straight into y; a short one (a text's) by column
// parts, each thread reading only its own columns of the weights.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../errors.hpp"
#include "../isa.hpp"
#include "../options.hpp"

#if ALTCLIP_WITH_ONEDNN
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

// Debian's oneDNN runs on GNU OpenMP (libgomp, linked with it). Its two thread-count calls are
// declared here when the compiler has no omp.h of its own (clang without libomp-dev), as
// GCC's omp.h declares them.
#if __has_include(<omp.h>)
#include <omp.h>
#else
extern "C" {
int omp_get_max_threads(void) noexcept;
void omp_set_num_threads(int) noexcept;
}
#endif

#include "../format/mapped_file.hpp"  // detail::FilePages
#include "activation.hpp"
#include "buffer.hpp"
#include "gemm_packed.hpp"  // packed::round_row_bf16, packed::quantize_row: the rounding the own kernels use
#include "lanes_avx512.hpp"
#include "thread_pool.hpp"
#include "weight_matrix.hpp"
#endif

namespace altclip::kernels::onednn {

class Context;  // below, in builds with oneDNN: a model's engine, packed weights and primitives

/// Whether this build links oneDNN (CMake found it and defined ALTCLIP_WITH_ONEDNN).
#if ALTCLIP_WITH_ONEDNN
inline constexpr bool kAvailable = true;
#else
inline constexpr bool kAvailable = false;
#endif

/// Whether a model multiplies its bf16 and q8 weights through oneDNN: ModelOptions::onednn
/// when on or off; else the environment variable ALTCLIP_ONEDNN (1/on, 0/off); else never
/// (at Isa::amx altclip's tiles were faster than oneDNN 2.6 for one image, a 16-token caption,
/// 8 labels and a batch of 8 images: bench/RESULTS.md; below AMX, see the top of this file),
/// so oneDNN is there to be compared with. Throws InvalidArgument when asked for in a build
/// without oneDNN, or for another ALTCLIP_ONEDNN value.
inline bool use_onednn(OnednnUse use) {
    if (use == OnednnUse::automatic) {
        if (const char* env = std::getenv("ALTCLIP_ONEDNN"); env != nullptr && *env != '\0') {
            const std::string v(env);
            if (v == "1" || v == "on") {
                use = OnednnUse::on;
            } else if (v == "0" || v == "off") {
                use = OnednnUse::off;
            } else {
                throw InvalidArgument("ALTCLIP_ONEDNN='" + v + "': use 1 (or on) to multiply through oneDNN, 0 (or "
                                      "off) or leave it unset for altclip's kernels");
            }
        }
    }
    if (use == OnednnUse::on && !kAvailable) {
        throw InvalidArgument("oneDNN was asked for (ModelOptions::onednn or ALTCLIP_ONEDNN=1), but this program was "
                              "built without it: install libdnnl-dev and re-run CMake, or leave the setting automatic");
    }
    return use == OnednnUse::on;
}

}  // namespace altclip::kernels::onednn

#if ALTCLIP_WITH_ONEDNN

namespace altclip::kernels::onednn {

/// The rounding of the activations, as altclip's own kernels do it.
namespace round {

/// float32 -> bfloat16, nearest even; NaN stays a quiet NaN and denormals become zero, as
/// vcvtne2ps2bf16 does (the avx512_bf16 kernels' instruction).
inline std::uint16_t bf16(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    if ((b & 0x7F800000u) == 0) return static_cast<std::uint16_t>((b >> 16) & 0x8000u);
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((b >> 16) | 0x0040u);
    return static_cast<std::uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

/// An MLP's activation of one value, for the paths without AVX-512 (ops.hpp has the passes).
inline float activate(Activation act, float x) {
    switch (act) {
        case Activation::quick_gelu: return x / (1.0f + std::exp(-1.702f * x));
        case Activation::gelu_erf: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
        case Activation::none: break;
    }
    return x;
}

/// packed::quantize_row without AVX-512: the same scale, rounding and clamping.
inline float quantize_row(const float* x, std::int64_t k, std::int8_t* q) {
    float amax = 0;
    for (std::int64_t t = 0; t < k; ++t) amax = std::max(amax, std::fabs(x[t]));
    const float scale = amax > 0 ? amax / 127.0f : 1.0f, inv = 1.0f / scale;
    for (std::int64_t t = 0; t < k; ++t) {
        const float f = std::nearbyint(x[t] * inv);
        const int v = f >= 127.0f ? 127 : f > -127.0f ? static_cast<int>(f) : -127;
        q[t] = static_cast<std::int8_t>(v);
    }
    return scale;
}

}  // namespace round
}  // namespace altclip::kernels::onednn

#if ALTCLIP_X86
ALTCLIP_AVX512_BEGIN
namespace altclip::kernels::onednn::round {
// The vector kernels' own functions, behind entries the generic code may call.
ALTCLIP_KERNEL_ENTRY inline void rows_bf16_avx512(const float* x, std::int64_t r0, std::int64_t r1, std::int64_t k,
                                                  std::uint16_t* h) {
    for (std::int64_t r = r0; r < r1; ++r) packed::round_row_bf16(x + r * k, k, h + r * k);
}
ALTCLIP_KERNEL_ENTRY inline void rows_q8_avx512(const float* x, std::int64_t r0, std::int64_t r1, std::int64_t k,
                                                std::int8_t* q, float* scale) {
    for (std::int64_t r = r0; r < r1; ++r) scale[r] = packed::quantize_row(x + r * k, k, q + r * k);
}
/// y[0, count) = act(y), in place.
ALTCLIP_KERNEL_ENTRY inline void activate_avx512(Activation act, float* y, std::int64_t count) {
    std::int64_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, v512::activate(act, _mm512_loadu_ps(y + i)));
    if (i < count) {
        const __mmask16 m = static_cast<__mmask16>((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, v512::activate(act, _mm512_maskz_loadu_ps(m, y + i)));
    }
}
/// y[r, j] = act(float(acc[r, j]) * xscale[r] * wscale[j] + bias[j]) for rows [0, rows) of
/// int32 sums acc [rows, cols] (rows `lda` apart; acc may be y itself, lda = ldy), y's rows ldy
/// apart: the q8_dot epilogue, 16 columns at a time with the same operations in the same order
/// as the scalar loop (linear), so the same bits, and the activation while in registers.
ALTCLIP_KERNEL_ENTRY inline void epilogue_s8_avx512(const std::int32_t* acc, std::int64_t lda, std::int64_t rows,
                                                    std::int64_t cols, const float* xscale, const float* wscale,
                                                    const float* bias, Activation act, float* y, std::int64_t ldy) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::int32_t* a = acc + r * lda;
        float* yr = y + r * ldy;
        const __m512 xs = _mm512_set1_ps(xscale[r]);
        for (std::int64_t j = 0; j < cols; j += 16) {
            const __mmask16 m = cols - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - j)) - 1u);
            const __m512 v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a + j));
            __m512 t = _mm512_mul_ps(_mm512_mul_ps(v, xs), _mm512_maskz_loadu_ps(m, wscale + j));
            t = _mm512_add_ps(t, bias != nullptr ? _mm512_maskz_loadu_ps(m, bias + j) : _mm512_setzero_ps());
            _mm512_mask_storeu_ps(yr + j, m, v512::activate(act, t));
        }
    }
}
}  // namespace altclip::kernels::onednn::round
ALTCLIP_AVX512_END
#endif

namespace altclip::kernels::onednn {

class Context;

/// A weight matrix [out, k] in the layouts oneDNN chose for it (oneDNN's weights are [k, out]),
/// as column parts: each call multiplies the parts on altclip's thread pool, one oneDNN
/// primitive per part on one thread.
struct PackedWeight {
    enum class Kind { bf16, s8 } kind = Kind::bf16;
    std::int64_t out = 0, k = 0;
    struct Part {
        std::int64_t col0 = 0, cols = 0;
        dnnl::memory memory;    // the file's bytes (in_place), or owned by oneDNN's allocator, written once at load
        bool in_place = false;  // memory is the model file's panels, not a copy
    };
    std::vector<Part> parts;
    // The whole matrix as one oneDNN memory, when its parts are one array in oneDNN's layout
    // (a bf16 matrix used in place from the file; an int8 one, reordered whole): an input of
    // many rows is then split by rows instead (linear), each thread multiplying its rows by
    // every column straight into y, with no copy of a part's result.
    dnnl::memory whole;
    bool has_whole = false;
    const float* scale = nullptr;  // s8: the weight scale per output column [out]
    const Context* context = nullptr;
};

/// OpenMP threads for oneDNN's work on this thread, the caller's setting restored after.
class OmpThreads {
public:
    explicit OmpThreads(int n) : saved_(omp_get_max_threads()) {
        if (saved_ != n) omp_set_num_threads(n);
    }
    ~OmpThreads() {
        if (saved_ != omp_get_max_threads()) omp_set_num_threads(saved_);
    }
    OmpThreads(const OmpThreads&) = delete;
    OmpThreads& operator=(const OmpThreads&) = delete;

private:
    int saved_;
};

/// A dnnl::error as the library's error.
inline ResourceError error(const std::string& what, const dnnl::error& e) {
    return ResourceError("oneDNN could not " + what + ": " + e.what() + " (status " + std::to_string(int(e.status)) +
                         "); set ALTCLIP_ONEDNN=0 (or ModelOptions::onednn = off) to use altclip's own kernels");
}

/// One model's oneDNN state: its engine, its packed weights, and its primitives by shape.
class Context {
public:
    /// `pool`: the model's threads (the parts of each product run on it); its Isa decides the
    /// rounding code of the activations (the vector code where the level has it).
    explicit Context(std::shared_ptr<ThreadPool> pool) try : engine_(dnnl::engine::kind::cpu, 0), pool_(std::move(pool)) {
    } catch (const dnnl::error& e) {
        throw error("start its CPU engine", e);
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    ThreadPool* pool() const { return pool_.get(); }
    Isa isa() const { return pool_->isa(); }
    const dnnl::engine& engine() const { return engine_; }

    /// Whether oneDNN has a matmul of `kind` on this CPU that gives altclip's numbers: bfloat16
    /// from AVX-512 on (oneDNN 2.6 has none before); int8 only with VNNI (or AMX), because
    /// before VNNI oneDNN's int8 kernels sum pairs of u8 x s8 products in 16 bits
    /// (vpmaddubsw), which saturate (tests/test_onednn.cpp saw sums off by 4% of their range
    /// on an AVX2 CPU). Asked once per kind and process.
    bool has_matmul(PackedWeight::Kind kind) const {
        auto ask = [this](PackedWeight::Kind kd) {
            try {
                make_pd(kd, 1, 64, 64, false, nullptr);
                return true;
            } catch (const dnnl::error&) {
                return false;
            }
        };
        if (kind == PackedWeight::Kind::s8) {
            static const bool s8 = cpu_info().supported >= Isa::avx512_vnni && ask(kind);
            return s8;
        }
        static const bool bf16 = ask(kind);
        return bf16;
    }

    /// Reorders `w` (bf16 -> Kind::bf16, int8 -> Kind::s8; row-major or in panels) into the
    /// layouts oneDNN's matmul chooses, and keeps them; the file's pages under w are released.
    const PackedWeight* pack(const WeightMatrix& w, const std::string& name) {
        auto p = std::make_unique<PackedWeight>();
        const bool s8 = w.type == WeightType::q8 || w.type == WeightType::q8_dot || w.type == WeightType::q8_bf16;
        p->kind = s8 ? PackedWeight::Kind::s8 : PackedWeight::Kind::bf16;
        p->out = w.rows;
        p->k = w.cols;
        p->scale = s8 ? w.scale : nullptr;
        p->context = this;
        const dnnl::memory::data_type dt = s8 ? dnnl::memory::data_type::s8 : dnnl::memory::data_type::bf16;
        if (!has_matmul(p->kind)) {
            throw InvalidArgument(std::string("oneDNN was asked for (ModelOptions::onednn or ALTCLIP_ONEDNN=1), but it has "
                                              "no ") + (s8 ? "exact int8 (VNNI)" : "bfloat16") + " matmul on this CPU (" +
                                  cpu_info().describe() + ") for the weight '" + name +
                                  "': leave the setting automatic (or ALTCLIP_ONEDNN=0) to use altclip's own kernels");
        }
        // Parts: whole 64-column blocks (oneDNN's weight blocks), about two per thread, so a
        // short input (a 16-token text) keeps every thread busy too. An int8 matrix (the ViT's,
        // whose inputs are 257 rows an image) is one part, reordered whole: its products are
        // split by rows (linear).
        const std::int64_t blocks = (p->out + 63) / 64;
        const std::int64_t nparts =
            s8 ? 1 : std::max<std::int64_t>(1, std::min<std::int64_t>(blocks, 2 * pool_->size()));
        for (std::int64_t i = 0, b0 = 0; i < nparts; ++i) {
            const std::int64_t b1 = blocks * (i + 1) / nparts;
            p->parts.push_back({b0 * 64, std::min(p->out, b1 * 64) - b0 * 64, {}});
            b0 = b1;
        }
        const std::int64_t k = p->k;
        try {
            parallel_for(pool_.get(), nparts, [&](std::int64_t i) {
                PackedWeight::Part& part = p->parts[static_cast<std::size_t>(i)];
                // One part (an int8 matrix): oneDNN's reorder on as many OpenMP threads as the
                // model has (at load only: no product runs beside it); parts: one each.
                OmpThreads omp(nparts == 1 ? pool_->size() : 1);
                // Rows col0.. of W, row-major (panels, bf16 only, unpacked first), are oneDNN's
                // [k, cols] weights with the tag ba.
                const dnnl::matmul::primitive_desc pd = make_pd(p->kind, kLayoutRows, k, part.cols, false, nullptr);
                if (w.panels && !s8 && w.panel_rows == 64 && k % 32 == 0) {
                    // The file's 64-row panels of pairs: [blocks of 64 columns][k / 2][64] units,
                    // which is BA16a64b2a of the [k, cols] weights ([k / 32][16][64][2] per block).
                    const dnnl::memory::desc blocked({k, part.cols}, dt, dnnl::memory::format_tag::BA16a64b2a);
                    if (pd.weights_desc() == blocked) {
                        const auto* at = static_cast<const std::uint32_t*>(w.data) + (part.col0 / 64) * (k / 2) * 64;
                        part.memory = dnnl::memory(blocked, engine_, const_cast<std::uint32_t*>(at));
                        part.in_place = true;
                        note_impl(p->kind, pd.impl_info_str(), true);
                        return;
                    }
                }
                const void* src = static_cast<const char*>(w.data) + part.col0 * k * (s8 ? 1 : 2);
                std::unique_ptr<std::uint16_t[]> rows;  // every element written below: not zeroed first
                if (w.panels) {
                    rows.reset(new std::uint16_t[static_cast<std::size_t>(part.cols * k)]);
                    const auto* units = static_cast<const std::uint32_t*>(w.data);
                    const std::int64_t ku = (k + 1) / 2, pr = w.panel_rows;
                    for (std::int64_t r = part.col0; r < part.col0 + part.cols; ++r) {
                        const std::uint32_t* u = units + (r / pr) * ku * pr + r % pr;
                        std::uint16_t* dst = rows.get() + (r - part.col0) * k;
                        for (std::int64_t c = 0; c < k; c += 2) {
                            const std::uint32_t unit = u[(c / 2) * pr];
                            dst[c] = static_cast<std::uint16_t>(unit);
                            if (c + 1 < k) dst[c + 1] = static_cast<std::uint16_t>(unit >> 16);
                        }
                    }
                    src = rows.get();
                }
                dnnl::memory plain({{k, part.cols}, dt, dnnl::memory::format_tag::ba}, engine_, const_cast<void*>(src));
                part.memory = dnnl::memory(pd.weights_desc(), engine_);
                dnnl::stream stream(engine_);
                dnnl::reorder(plain, part.memory).execute(stream, plain, part.memory);
                stream.wait();
                note_impl(p->kind, pd.impl_info_str(), false);
            });
            // The whole matrix: the one part of an int8 one; the file's panels of a bf16 one whose
            // parts all are in place, when oneDNN chooses that layout for all its columns too.
            if (s8) {
                p->whole = p->parts.front().memory;
                p->has_whole = true;
            } else if (p->out % 64 == 0 && std::all_of(p->parts.begin(), p->parts.end(),
                                                       [](const PackedWeight::Part& part) { return part.in_place; })) {
                OmpThreads omp(1);
                const dnnl::memory::desc blocked({k, p->out}, dt, dnnl::memory::format_tag::BA16a64b2a);
                if (make_pd(p->kind, kLayoutRows, k, p->out, false, nullptr).weights_desc() == blocked) {
                    p->whole = dnnl::memory(blocked, engine_, const_cast<void*>(w.data));
                    p->has_whole = true;
                }
            }
        } catch (const dnnl::error& e) {
            throw error("reorder the weight '" + name + "'", e);
        }
        for (const PackedWeight::Part& part : p->parts) {  // the file's bytes of each copied part
            if (part.in_place) continue;
            std::int64_t offset = part.col0 * k * (s8 ? 1 : 2), bytes = part.cols * k * (s8 ? 1 : 2);
            if (w.panels) {  // col0 is a multiple of 64, so of the panel rows (64 or 32)
                const std::int64_t panel_bytes = ((k + 1) / 2) * w.panel_rows * 4;
                offset = part.col0 / w.panel_rows * panel_bytes;
                bytes = panel_layout::row_blocks(part.cols, w.panel_rows) * panel_bytes;
            }
            pages_.release(static_cast<const char*>(w.data) + offset, static_cast<std::size_t>(bytes));
        }
        weights_.push_back(std::move(p));
        return weights_.back().get();
    }

    /// The matmul of m rows of x by `cols` columns of w held in `weights` (a part, or the whole
    /// matrix: `whole`), with a bias or not, made on first use.
    struct Primitive {
        dnnl::matmul matmul;
        dnnl::memory::desc src, dst, bias, scratch;
    };
    Primitive primitive(const PackedWeight& w, const dnnl::memory& weights, std::int64_t cols, bool whole,
                        std::int64_t m, bool bias) const {
        const auto key = std::make_tuple(static_cast<int>(w.kind) + (whole ? 2 : 0), m, w.k, cols, bias);
        std::lock_guard<std::mutex> lock(mutex_);
        if (auto it = primitives_.find(key); it != primitives_.end()) return it->second;
        // Text batches have as many rows as real tokens: bound the shapes kept.
        if (primitives_.size() >= kMaxPrimitives) primitives_.clear();
        OmpThreads omp(1);  // one thread per primitive: oneDNN plans its work for the threads present now
        const dnnl::memory::desc packed = weights.get_desc();
        const dnnl::matmul::primitive_desc pd = make_pd(w.kind, m, w.k, cols, bias, &packed);
        Primitive p{dnnl::matmul(pd), pd.src_desc(), pd.dst_desc(), {}, pd.scratchpad_desc()};
        if (bias) p.bias = pd.bias_desc();
        impls_.insert(std::string(w.kind == PackedWeight::Kind::bf16 ? "bf16 " : "int8 ") + pd.impl_info_str());
        primitives_.emplace(key, p);
        return p;
    }

    /// "oneDNN 2.6.3: bf16 brg:avx512_core_amx_bf16, int8 brg:avx512_core_amx_int8": oneDNN's
    /// version and the implementations it chose for this model's products so far.
    std::string describe() const {
        const dnnl_version_t* v = dnnl_version();
        std::string s = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                        std::to_string(v->patch) + " (" + std::to_string(pool_->size()) + " threads)";
        std::lock_guard<std::mutex> lock(mutex_);
        const char* sep = ": ";
        for (const auto& impl : impls_) {
            s += sep + impl;
            sep = ", ";
        }
        if (!weights_.empty())
            s += "; " + std::to_string(weights_.size()) + " weight matrices in " +
                 std::to_string(parts_in_place_ + parts_copied_) + " parts, " + std::to_string(parts_in_place_) +
                 " used in place from the file";
        return s;
    }

    /// Weight parts used in place from the model file, and reordered into copies, so far.
    std::pair<std::size_t, std::size_t> parts_in_place_and_copied() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return {parts_in_place_, parts_copied_};
    }

private:
    static constexpr std::int64_t kLayoutRows = 256;  // rows of x the weight layout is chosen for
    static constexpr std::size_t kMaxPrimitives = 512;

    /// x [m, k] times `cols` columns of the weights into a dense [m, cols] (float32, int32 for
    /// s8): oneDNN 2.6's brgemm kernels take no row stride for the destination.
    dnnl::matmul::primitive_desc make_pd(PackedWeight::Kind kind, std::int64_t m, std::int64_t k, std::int64_t cols,
                                         bool bias, const dnnl::memory::desc* weights) const {
        using dt = dnnl::memory::data_type;
        using tag = dnnl::memory::format_tag;
        const bool s8 = kind == PackedWeight::Kind::s8;
        const dnnl::memory::desc src({m, k}, s8 ? dt::s8 : dt::bf16, tag::ab);
        const dnnl::memory::desc wei = weights == nullptr ? dnnl::memory::desc({k, cols}, s8 ? dt::s8 : dt::bf16, tag::any) : *weights;
        const dnnl::memory::desc dst({m, cols}, s8 ? dt::s32 : dt::f32, tag::ab);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // the call's, one per slot (linear)
        if (bias) {
            const dnnl::memory::desc b({1, cols}, dt::f32, tag::ab);
            return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, b, dst), attr, engine_);
        }
        return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, engine_);
    }

    void note_impl(PackedWeight::Kind kind, const char* impl, bool in_place) {
        std::lock_guard<std::mutex> lock(mutex_);
        impls_.insert(std::string(kind == PackedWeight::Kind::bf16 ? "bf16 " : "int8 ") + impl);
        ++(in_place ? parts_in_place_ : parts_copied_);
    }

    dnnl::engine engine_;
    std::shared_ptr<ThreadPool> pool_;
    std::vector<std::unique_ptr<PackedWeight>> weights_;  // filled at load only
    detail::FilePages pages_;                             // releases the file's pages of reordered parts (load only)
    mutable std::mutex mutex_;                            // guards primitives_ and impls_
    mutable std::map<std::tuple<int, std::int64_t, std::int64_t, std::int64_t, bool>, Primitive> primitives_;
    mutable std::set<std::string> impls_;
    std::size_t parts_in_place_ = 0, parts_copied_ = 0;   // weight parts used from the file / reordered (guarded)
};

/// Rows at which a product is split by rows, when its weight has a whole-matrix memory: below,
/// by column parts (a short input: each thread reads its own columns of the weights once).
inline constexpr std::int64_t kRowSplitMinRows = 64;

/// y[n, out] = act(x[n, k] . W^T (+ bias)) with W packed by Context::pack. `pool` may differ from
/// the context's (a caller's own); nullptr runs the parts on this thread. Buffers, in
/// `workspace`: x rounded or quantized (the caller's, each row written by the task that
/// multiplies it, or read by every thread of the call); oneDNN's scratchpad and an int32 or
/// part result (each slot's own).
inline void linear(const float* x, std::int64_t n, std::int64_t k, const PackedWeight& w, const float* bias,
                   std::int64_t out, float* y, ThreadPool* pool, Workspace& workspace, Activation act = Activation::none) {
    const Context& ctx = *w.context;
    KernelBuffers& ws = workspace.caller();
    const bool s8 = w.kind == PackedWeight::Kind::s8;
    [[maybe_unused]] const bool vec = ALTCLIP_X86 && ctx.isa() >= (s8 ? Isa::avx512 : Isa::avx512_bf16);
    if (s8) {
        ws.xq.resize(static_cast<std::size_t>(n * k));
        ws.xscale.resize(static_cast<std::size_t>(n));
    } else {
        ws.xb.resize(static_cast<std::size_t>(n * k));
    }
    // x's rows [r0, r1): int8 per row, as the q8_dot kernels (scale max|x| / 127, nearest
    // even), or bfloat16, nearest even, as the bf16_dot kernels.
    auto prepare = [&](std::int64_t r0, std::int64_t r1) {
        if (s8) {
#if ALTCLIP_X86
            if (vec) return round::rows_q8_avx512(x, r0, r1, k, ws.xq.data(), ws.xscale.data());
#endif
            for (std::int64_t r = r0; r < r1; ++r) ws.xscale[r] = round::quantize_row(x + r * k, k, ws.xq.data() + r * k);
            return;
        }
#if ALTCLIP_X86
        if (vec) return round::rows_bf16_avx512(x, r0, r1, k, ws.xb.data());
#endif
        for (std::int64_t i = r0 * k; i < r1 * k; ++i) ws.xb[static_cast<std::size_t>(i)] = round::bf16(x[i]);
    };
    // y's rows [r0, r0 + rows), columns [col0, col0 + cols) from int32 sums [rows, cols] whose
    // rows are `lda` apart (they may be y's own rows): as the packed q8_dot epilogue,
    // act(float(sum) * x scale * w scale + bias).
    auto epilogue = [&](const float* sums, std::int64_t lda, std::int64_t r0, std::int64_t rows, std::int64_t col0,
                        std::int64_t cols) {
        float* yp = y + r0 * out + col0;
        const float* xs = ws.xscale.data() + r0;
#if ALTCLIP_X86
        if (vec)
            return round::epilogue_s8_avx512(reinterpret_cast<const std::int32_t*>(sums), lda, rows, cols, xs,
                                             w.scale + col0, bias != nullptr ? bias + col0 : nullptr, act, yp, out);
#endif
        for (std::int64_t r = 0; r < rows; ++r) {
            float* yr = yp + r * out;
            for (std::int64_t j = 0; j < cols; ++j) {
                std::int32_t acc;
                std::memcpy(&acc, sums + r * lda + j, 4);
                const std::int64_t c = col0 + j;
                yr[j] = round::activate(act, static_cast<float>(acc) * xs[r] * w.scale[c] + (bias != nullptr ? bias[c] : 0.0f));
            }
        }
    };
    // act over y's rows [r0, r1), columns [col0, col0 + cols) (bf16: after oneDNN wrote them).
    auto activate_rows = [&](std::int64_t r0, std::int64_t r1, std::int64_t col0, std::int64_t cols) {
        if (act == Activation::none) return;
        for (std::int64_t r = r0; r < r1; ++r) {
            float* yr = y + r * out + col0;
#if ALTCLIP_X86
            if (ctx.isa() >= Isa::avx512) {
                round::activate_avx512(act, yr, cols);
                continue;
            }
#endif
            for (std::int64_t j = 0; j < cols; ++j) yr[j] = round::activate(act, yr[j]);
        }
    };
    // One oneDNN product on this thread: rows [r0, r0 + m) of the prepared x by `cols` columns
    // from col0 held in `weights`, into `dst` (dense [m, cols]: y's rows themselves when they
    // are whole rows of y, else the slot's part buffer). oneDNN runs single-threaded in it.
    auto multiply = [&](KernelBuffers& mine, const dnnl::memory& weights, std::int64_t col0, std::int64_t cols, bool whole,
                        std::int64_t r0, std::int64_t m, void* dst) {
        try {
            const bool with_bias = !s8 && bias != nullptr;
            const Context::Primitive p = ctx.primitive(w, weights, cols, whole, m, with_bias);
            mine.dnnl_scratch.resize(std::max<std::size_t>(p.scratch.get_size(), 1));
            const dnnl::engine& eng = ctx.engine();
            void* src = s8 ? static_cast<void*>(ws.xq.data() + r0 * k) : static_cast<void*>(ws.xb.data() + r0 * k);
            dnnl::memory src_m(p.src, eng, src), dst_m(p.dst, eng, dst), scratch_m(p.scratch, eng, mine.dnnl_scratch.data());
            std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src_m},
                                                          {DNNL_ARG_WEIGHTS, weights},
                                                          {DNNL_ARG_DST, dst_m},
                                                          {DNNL_ARG_SCRATCHPAD, scratch_m}};
            if (with_bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, eng, const_cast<float*>(bias + col0)));
            OmpThreads omp(1);
            dnnl::stream stream(eng);
            p.matmul.execute(stream, args);
            stream.wait();
        } catch (const dnnl::error& e) {
            throw error("multiply " + std::to_string(m) + " x " + std::to_string(k) + " by " + std::to_string(k) + " x " +
                            std::to_string(cols),
                        e);
        }
    };

    if (w.has_whole && n >= kRowSplitMinRows) {
        // By rows: each task prepares its rows of x and multiplies them by the whole matrix,
        // into y's rows (bf16, the bias added by oneDNN) or int32 sums then y's rows (int8).
        // One chunk of whole 16-row blocks per thread (oneDNN blocks its rows itself).
        const std::int64_t blocks = (n + 15) / 16;
        const std::int64_t threads = pool != nullptr ? pool->size() : 1;
        const std::int64_t chunks = std::min(blocks, threads);
        KernelBuffers* const slots = workspace.slots(slot_count(pool, chunks));
        parallel_for_slots(pool, chunks, [&](std::int64_t i, int slot) {
            const std::int64_t r0 = std::min(n, blocks * i / chunks * 16), r1 = std::min(n, blocks * (i + 1) / chunks * 16);
            if (r1 <= r0) return;
            KernelBuffers& mine = slots[slot];
            prepare(r0, r1);
            // Into y's rows: bf16 the results (then act), int8 the int32 sums, made floats in place.
            multiply(mine, w.whole, 0, out, true, r0, r1 - r0, y + r0 * out);
            if (s8) return epilogue(y + r0 * out, out, r0, r1 - r0, 0, out);
            activate_rows(r0, r1, 0, out);
        });
        return;
    }
    // By columns: x prepared once, read by every part; each part on one thread of the pool,
    // oneDNN single-threaded there: the model's threads are the only ones computing, and no
    // OpenMP team waits (spinning) beside the pool's threads.
    parallel_chunks(pool, n, 8, [&](std::int64_t r0, std::int64_t r1) { prepare(r0, r1); });
    const auto nparts = static_cast<std::int64_t>(w.parts.size());
    KernelBuffers* const slots = workspace.slots(slot_count(pool, nparts));
    parallel_for_slots(pool, nparts, [&](std::int64_t i, int slot) {
        const PackedWeight::Part& part = w.parts[static_cast<std::size_t>(i)];
        KernelBuffers& mine = slots[slot];
        mine.part.resize(static_cast<std::size_t>(n * part.cols));
        multiply(mine, part.memory, part.col0, part.cols, false, 0, n, mine.part.data());
        if (s8) return epilogue(mine.part.data(), part.cols, 0, n, part.col0, part.cols);
        const float* res = mine.part.data();
        for (std::int64_t r = 0; r < n; ++r)
            std::memcpy(y + r * out + part.col0, res + r * part.cols, static_cast<std::size_t>(part.cols) * sizeof(float));
        activate_rows(0, n, part.col0, part.cols);
    });
}

}  // namespace altclip::kernels::onednn

#endif  // ALTCLIP_WITH_ONEDNN
