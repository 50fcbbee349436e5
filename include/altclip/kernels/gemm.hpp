// y[n, out] = x[n, k] . W[out, k]^T (+ bias[out]): torch.nn.functional.linear with the
// weight read from its stored layout, [out, in] row-major or in panels of 32 rows (what
// tools/convert.py writes for f32 and bf16; WeightMatrix::panels). A mapped file's weights
// are never copied whole; at most a 16 KB panel at a time.
//
// linear() is where the instruction set is chosen for every matrix product: the pool's Isa
// (cpu.hpp), and the weight type the loader chose for it (modules/weights.hpp), lowered to what that
// Isa can run; a matrix the loader packed for oneDNN (onednn.hpp) goes there instead. At Isa::avx512 and above, weights in panels and inputs of kPackRows rows or
// more (an image, a batch of labels) go through the packed outer-product kernel of
// gemm_packed.hpp. Shorter inputs with row-major weights (a 16-token text on a q8 file) are
// computed here as MR x NR dot products at a time, each a 16-lane accumulator along k,
// reduced once per tile, with W read in place. The work is split over blocks of output
// columns (rows of W), so short inputs keep every thread busy too. At Isa::avx2, the float32
// kernels of avx2.hpp; below, Eigen computes each column block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "activation.hpp"
#include "amx_gemm.hpp"
#include "avx2.hpp"
#include "cpu.hpp"
#include "eigen.hpp"
#include "gemm_packed.hpp"
#include "onednn.hpp"
#include "ops.hpp"
#include "thread_pool.hpp"
#include "weight_matrix.hpp"

namespace altclip::kernels {

/// The instructions a weight type's products need; a weight of a type the Isa cannot run is
/// multiplied as its widened twin (float32 math), never with an instruction the CPU lacks.
inline WeightType runnable(WeightType t, Isa isa) {
    switch (t) {
        case WeightType::bf16_dot: return isa >= Isa::avx512_bf16 ? t : WeightType::bf16;
        case WeightType::q8_dot: return isa >= Isa::avx512_vnni ? t : WeightType::q8;
        case WeightType::q8_bf16: return isa >= Isa::avx512_bf16 ? t : WeightType::q8;
        default: return t;
    }
}

/// Row r of w widened to float32.
inline void weight_row(const WeightMatrix& w, std::int64_t r, float* out) {
    if (w.panels) {  // f32 or bf16 units in panels (panel_unit)
        const int g = w.type == WeightType::f32 ? 1 : 2;
        const auto* units = static_cast<const std::uint32_t*>(w.data);
        for (std::int64_t c = 0; c < w.cols; ++c) {
            const std::uint32_t unit = units[panel_unit(r, c, w.cols, g, w.panel_rows)];
            const std::uint32_t bits = g == 1 ? unit : (c % 2 == 0 ? unit << 16 : unit & 0xFFFF0000u);
            std::memcpy(out + c, &bits, 4);
        }
        return;
    }
    if (w.type == WeightType::f32) {
        const float* p = static_cast<const float*>(w.data) + r * w.cols;
        std::copy(p, p + w.cols, out);
        return;
    }
    if (w.type == WeightType::q8 || w.type == WeightType::q8_dot || w.type == WeightType::q8_bf16) {
        const auto* p = static_cast<const std::int8_t*>(w.data) + r * w.cols;
        for (std::int64_t i = 0; i < w.cols; ++i) out[i] = static_cast<float>(p[i]) * w.scale[r];
        return;
    }
    const auto* p = static_cast<const std::uint16_t*>(w.data) + r * w.cols;
    for (std::int64_t i = 0; i < w.cols; ++i) {
        const std::uint32_t bits = static_cast<std::uint32_t>(p[i]) << 16;
        std::memcpy(out + i, &bits, 4);
    }
}

namespace gemm_detail {

constexpr std::int64_t kColumnBlock = 64;   // rows of W per task
constexpr std::int64_t kPackRows = 48;      // from this many rows of x on, the packed kernel (gemm_packed.hpp)
constexpr std::int64_t kDepthBlock = 4096;  // k per pass of the short-input path: all of k for AltCLIP (the tile
                                            // sums are reduced once; bench/RESULTS.md)

/// Whether linear_avx512 multiplies n rows by w through the packed kernel (gemm_packed.hpp):
/// many rows, or weights stored in panels for any number of rows (with no panel to pack, it
/// reads them once as a short input needs: bench/RESULTS.md).
inline bool packs_avx512(const WeightMatrix& w, std::int64_t n) { return n >= kPackRows || w.panels; }

/// Columns [j0, j1) on any CPU; w_block holds W's rows j0..j1.
inline void block_eigen(const float* x, std::int64_t n, std::int64_t k, const float* w_block, const float* bias,
                        std::int64_t out, std::int64_t j0, std::int64_t j1, float* y) {
    using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const RowMatrix> X(x, n, k);
    Eigen::Map<const RowMatrix> W(w_block, j1 - j0, k);
    Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>> Y(y + j0, n, j1 - j0, Eigen::OuterStride<>(out));
    Y.noalias() = X * W.transpose();
    if (bias != nullptr) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias + j0, j1 - j0);
}

}  // namespace gemm_detail
}  // namespace altclip::kernels

#if ALTCLIP_X86
ALTCLIP_AVX512_BEGIN
namespace altclip::kernels {
namespace gemm_detail {

/// Sums of four 16-lane vectors -> one 4-lane vector [sum a, sum b, sum c, sum d].
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 t = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_add_ps(_mm512_castps512_ps128(t), _mm512_extractf32x4_ps(t, 1));
}

/// Load policies of the micro-kernel: how 16 (or 32) k-values of x and of W become vectors.
struct F32Loads {  // x float32, W float32
    static constexpr int kStep = 16;
    using X = float;
    using W = float;
    static __m512 x(const float* p) { return _mm512_loadu_ps(p); }
    static __m512 x(const float* p, int m) { return _mm512_maskz_loadu_ps(mask16(m), p); }
    static __m512 w(const float* p) { return _mm512_loadu_ps(p); }
    static __m512 w(const float* p, int m) { return _mm512_maskz_loadu_ps(mask16(m), p); }
    static __m512 fma(__m512 x, __m512 w, __m512 acc) { return _mm512_fmadd_ps(x, w, acc); }
    static __mmask16 mask16(int m) { return static_cast<__mmask16>((1u << m) - 1); }
};
struct Bf16WidenLoads : F32Loads {  // x float32, W bfloat16 widened to float32
    using W = std::uint16_t;
    static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
    static __m512 w(const std::uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
    static __m512 w(const std::uint16_t* p, int m) { return widen(_mm256_maskz_loadu_epi16(mask16(m), p)); }
};
struct Bf16DotLoads {  // x and W bfloat16, pairs multiplied and summed in float32 (vdpbf16ps)
    static constexpr int kStep = 32;
    using X = std::uint16_t;
    using W = std::uint16_t;
    static __mmask32 mask32(int m) { return m >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((1u << m) - 1); }
    static __m512 x(const std::uint16_t* p) { return _mm512_castsi512_ps(_mm512_loadu_si512(p)); }
    static __m512 x(const std::uint16_t* p, int m) { return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask32(m), p)); }
    static __m512 w(const std::uint16_t* p) { return x(p); }
    static __m512 w(const std::uint16_t* p, int m) { return x(p, m); }
    static __m512 fma(__m512 x, __m512 w, __m512 acc) {
        return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(x), reinterpret_cast<__m512bh&>(w));
    }
};

struct Q8WidenLoads : F32Loads {  // x float32, W int8 widened to float32 (its row scale applied after)
    using W = std::int8_t;
    static __m512 w(const std::int8_t* p) {
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
    static __m512 w(const std::int8_t* p, int m) {
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask16(m), p)));
    }
};

/// MR rows of x times NR rows of W over k in [k0, k1): y[i][j] (+)= dot, plus bias on the first pass.
template <int MR, int NR, class L>
inline void micro(const typename L::X* x, std::int64_t ldx, const typename L::W* w, std::int64_t ldw, std::int64_t k0,
                  std::int64_t k1, const float* bias, bool first, float* y, std::int64_t ldy) {
    __m512 acc[MR][NR];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    std::int64_t kk = k0;
    for (; kk + L::kStep <= k1; kk += L::kStep) {
        __m512 xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = L::x(x + i * ldx + kk);
        for (int j = 0; j < NR; ++j) {
            __m512 wv = L::w(w + j * ldw + kk);
            // Keep wv in a register: GCC would otherwise fold the load into each of the MR
            // FMAs below, loading the same W vector MR times.
            __asm__("" : "+v"(wv));
            for (int i = 0; i < MR; ++i) acc[i][j] = L::fma(xv[i], wv, acc[i][j]);
        }
    }
    if (kk < k1) {
        const int m = static_cast<int>(k1 - kk);
        __m512 xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = L::x(x + i * ldx + kk, m);
        for (int j = 0; j < NR; ++j) {
            const __m512 wv = L::w(w + j * ldw + kk, m);
            for (int i = 0; i < MR; ++i) acc[i][j] = L::fma(xv[i], wv, acc[i][j]);
        }
    }
    for (int i = 0; i < MR; ++i) {
        float* yi = y + i * ldy;
        int j = 0;
        for (; j + 4 <= NR; j += 4) {
            __m128 s = hsum4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
            if (first) {
                if (bias != nullptr) s = _mm_add_ps(s, _mm_loadu_ps(bias + j));
            } else {
                s = _mm_add_ps(s, _mm_loadu_ps(yi + j));
            }
            _mm_storeu_ps(yi + j, s);
        }
        for (; j < NR; ++j) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            if (first) {
                if (bias != nullptr) s += bias[j];
            } else {
                s += yi[j];
            }
            yi[j] = s;
        }
    }
}

template <int MR, class L>
inline void micro_cols(int nr, const typename L::X* x, std::int64_t ldx, const typename L::W* w, std::int64_t ldw,
                       std::int64_t k0, std::int64_t k1, const float* bias, bool first, float* y, std::int64_t ldy) {
    switch (nr) {
        case 8: micro<MR, 8, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 7: micro<MR, 7, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 6: micro<MR, 6, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 5: micro<MR, 5, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 4: micro<MR, 4, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 3: micro<MR, 3, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 2: micro<MR, 2, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        default: micro<MR, 1, L>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
    }
}

/// int8 x int8 with VNNI: vpdpbusd multiplies unsigned by signed bytes, so W's bytes are
/// offset by 128 (sign bit flipped) and sum_k 128 * x[i][k] is subtracted at the end:
/// y = (acc - 128 * xsum[i]) * xscale[i] * wscale[j] + bias[j].
template <int MR, int NR>
inline void micro_q8(const std::int8_t* x, std::int64_t ldx, const std::int32_t* xsum, const float* xscale,
                     const std::int8_t* w, std::int64_t ldw, const float* wscale, std::int64_t k, const float* bias,
                     float* y, std::int64_t ldy) {
    __m512i acc[MR][NR];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    std::int64_t kk = 0;
    for (; kk + 64 <= k; kk += 64) {
        __m512i xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = _mm512_loadu_si512(x + i * ldx + kk);
        for (int j = 0; j < NR; ++j) {
            __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(w + j * ldw + kk), flip);
            __asm__("" : "+v"(wv));
            for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], wv, xv[i]);
        }
    }
    if (kk < k) {
        const __mmask64 m = (~__mmask64(0)) >> (64 - (k - kk));
        __m512i xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = _mm512_maskz_loadu_epi8(m, x + i * ldx + kk);
        for (int j = 0; j < NR; ++j) {
            // Masked-off bytes: W 0x80 after the flip would add 128 * 0 = 0 (x is zero there).
            const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w + j * ldw + kk), flip);
            for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], wv, xv[i]);
        }
    }
    for (int i = 0; i < MR; ++i) {
        float* yi = y + i * ldy;
        const float corr = 128.0f * static_cast<float>(xsum[i]);
        for (int j = 0; j < NR; ++j) {
            const float dot = static_cast<float>(_mm512_reduce_add_epi32(acc[i][j])) - corr;
            yi[j] = dot * xscale[i] * wscale[j] + (bias != nullptr ? bias[j] : 0.0f);
        }
    }
}

template <int MR>
inline void micro_q8_cols(int nr, const std::int8_t* x, std::int64_t ldx, const std::int32_t* xsum, const float* xscale,
                          const std::int8_t* w, std::int64_t ldw, const float* wscale, std::int64_t k, const float* bias,
                          float* y, std::int64_t ldy) {
    switch (nr) {
        case 8: micro_q8<MR, 8>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 7: micro_q8<MR, 7>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 6: micro_q8<MR, 6>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 5: micro_q8<MR, 5>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 4: micro_q8<MR, 4>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 3: micro_q8<MR, 3>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        case 2: micro_q8<MR, 2>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
        default: micro_q8<MR, 1>(x, ldx, xsum, xscale, w, ldw, wscale, k, bias, y, ldy); break;
    }
}

/// Symmetric per-row int8 quantization of x: q = round(x / s), s = max|x| / 127.
struct QuantizedRows {
    std::vector<std::int8_t> q;
    std::vector<std::int32_t> sum;
    std::vector<float> scale;
};
inline QuantizedRows quantize_rows(const float* x, std::int64_t n, std::int64_t k, ThreadPool* pool) {
    QuantizedRows r;
    r.q.resize(static_cast<std::size_t>(n * k));
    r.sum.resize(static_cast<std::size_t>(n));
    r.scale.resize(static_cast<std::size_t>(n));
    parallel_chunks(pool, n, 8, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t i = r0; i < r1; ++i) {
            std::int8_t* qi = r.q.data() + i * k;
            r.scale[i] = packed::quantize_row(x + i * k, k, qi);
            std::int32_t sum = 0;
            for (std::int64_t t = 0; t < k; ++t) sum += qi[t];
            r.sum[i] = sum;
        }
    });
    return r;
}

inline void block_q8(const QuantizedRows& xq, std::int64_t n, std::int64_t k, const WeightMatrix& w, const float* bias,
                     std::int64_t out, std::int64_t j0, std::int64_t j1, float* y) {
    constexpr int MR = 2, NR = 8;  // 16 int32 accumulators: 3 x 8 makes GCC spill them
    const auto* wd = static_cast<const std::int8_t*>(w.data);
    for (std::int64_t j = j0; j < j1; j += NR) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
        const std::int8_t* wt = wd + j * k;
        const float* bj = bias != nullptr ? bias + j : nullptr;
        std::int64_t i = 0;
        for (; i + MR <= n; i += MR)
            micro_q8_cols<MR>(nr, xq.q.data() + i * k, k, xq.sum.data() + i, xq.scale.data() + i, wt, k, w.scale + j, k,
                              bj, y + i * out + j, out);
        for (; i < n; ++i)
            micro_q8_cols<1>(nr, xq.q.data() + i * k, k, xq.sum.data() + i, xq.scale.data() + i, wt, k, w.scale + j, k,
                             bj, y + i * out + j, out);
    }
}

/// Short inputs (fewer than kPackRows rows, e.g. a 16-token text), columns [j0, j1): W read
/// in place, each tile of NR rows of W multiplied with every MR rows of x before moving on,
/// so W (the bulk of the bytes) streams from memory once.
template <class L>
inline void block_avx512(const typename L::X* x, std::int64_t ldx, std::int64_t n, std::int64_t k,
                         const typename L::W* w, const float* bias, std::int64_t out, std::int64_t j0, std::int64_t j1,
                         float* y) {
    constexpr int MR = 4, NR = 6;  // 24 accumulators; a 16-token text is 4 x 4 rows
    for (std::int64_t k0 = 0; k0 < k; k0 += kDepthBlock) {
        const std::int64_t k1 = std::min(k, k0 + kDepthBlock), kb = k1 - k0;
        const bool first = k0 == 0;
        for (std::int64_t j = j0; j < j1; j += NR) {
            const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
            const typename L::W* wt = w + j * k + k0;
            const float* bj = bias != nullptr ? bias + j : nullptr;
            std::int64_t i = 0;
            for (; i + MR <= n; i += MR)
                micro_cols<MR, L>(nr, x + i * ldx + k0, ldx, wt, k, 0, kb, bj, first, y + i * out + j, out);
            switch (n - i) {
                case 3: micro_cols<3, L>(nr, x + i * ldx + k0, ldx, wt, k, 0, kb, bj, first, y + i * out + j, out); break;
                case 2: micro_cols<2, L>(nr, x + i * ldx + k0, ldx, wt, k, 0, kb, bj, first, y + i * out + j, out); break;
                case 1: micro_cols<1, L>(nr, x + i * ldx + k0, ldx, wt, k, 0, kb, bj, first, y + i * out + j, out); break;
                default: break;
            }
        }
    }
}

/// linear() at Isa::avx512 and above, w.type runnable there. `act` is applied by the packed
/// kernel as it writes y (packs_avx512), by the caller's pass otherwise.
ALTCLIP_KERNEL_ENTRY inline void linear_avx512(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& w,
                                               const float* bias, std::int64_t out, float* y, ThreadPool* pool,
                                               Workspace& ws, Activation act) {
    if (packs_avx512(w, n)) {
        packed::linear(x, n, k, w, bias, out, y, pool, ws, act);
        return;
    }
    const std::int64_t blocks = (out + kColumnBlock - 1) / kColumnBlock;
    // bf16_dot: the activations are rounded to bfloat16 once per call (round to nearest even).
    std::vector<std::uint16_t> xb;
    if (w.type == WeightType::bf16_dot) {
        xb.resize(static_cast<std::size_t>(n * k));
        parallel_chunks(pool, n, 8, [&](std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r) packed::round_row_bf16(x + r * k, k, xb.data() + r * k);
        });
    }
    QuantizedRows xq;
    if (w.type == WeightType::q8_dot) xq = quantize_rows(x, n, k, pool);
    auto run = [&](std::int64_t b) {
        const std::int64_t j0 = b * kColumnBlock;
        const std::int64_t j1 = std::min(out, j0 + kColumnBlock);
        switch (w.type) {
            case WeightType::q8:
            case WeightType::q8_bf16:  // few rows: as q8
                // int8 weights widened in the kernel, the row scale and bias applied after.
                block_avx512<Q8WidenLoads>(x, k, n, k, static_cast<const std::int8_t*>(w.data), nullptr, out, j0, j1, y);
                for (std::int64_t i = 0; i < n; ++i)
                    for (std::int64_t j = j0; j < j1; ++j)
                        y[i * out + j] = y[i * out + j] * w.scale[j] + (bias != nullptr ? bias[j] : 0.0f);
                break;
            case WeightType::q8_dot:
                block_q8(xq, n, k, w, bias, out, j0, j1, y);
                break;
            case WeightType::f32:
                block_avx512<F32Loads>(x, k, n, k, static_cast<const float*>(w.data), bias, out, j0, j1, y);
                break;
            case WeightType::bf16_dot:
                block_avx512<Bf16DotLoads>(xb.data(), k, n, k, static_cast<const std::uint16_t*>(w.data), bias, out,
                                           j0, j1, y);
                break;
            case WeightType::bf16:  // widened in the kernel
                block_avx512<Bf16WidenLoads>(x, k, n, k, static_cast<const std::uint16_t*>(w.data), bias, out, j0, j1,
                                             y);
                break;
        }
    };
    parallel_for(pool, blocks, run);
}

}  // namespace gemm_detail
}  // namespace altclip::kernels
ALTCLIP_AVX512_END
#endif  // ALTCLIP_X86

namespace altclip::kernels {

namespace gemm_detail {
/// `act` over y[0, count) as a pass of its own (ops.hpp), for the paths that do not apply it
/// in their write-out.
inline void activate(Activation act, float* y, std::int64_t count, ThreadPool* pool) {
    switch (act) {
        case Activation::quick_gelu: quick_gelu(y, count, pool); break;
        case Activation::gelu_erf: gelu_erf(y, count, pool); break;
        case Activation::none: break;
    }
}
}  // namespace gemm_detail

namespace gemm_detail {
/// Rows from which bf16 weights in the file's panels, read in place, are multiplied on AMX
/// tiles by altclip's kernel; fewer go to the AVX512_BF16 kernels. A model never hands the
/// tiles such a matrix (its loader copies every one they can take into 16-row panels, unless
/// oneDNN is asked for); a caller of linear() with a WeightMatrix of its own may. (When oneDNN
/// took a caption's products: at 64, 8 short labels took 150-160 ms through oneDNN 2.6's AMX
/// matmul and 39 ms on altclip's tiles; Intel Xeon with AMX, 2 cores, bf16 bench model.)
inline constexpr std::int64_t kAmxBf16MinRows = 32;
/// Whether linear() runs w on AMX tiles (at Isa::amx): int8 packed for them at load (the
/// ViT's), bf16 copied to 16-row panels at load, or bf16 in the file's panels (in place) for
/// many rows, unless the model multiplies it through oneDNN (asked for: comparisons).
inline bool s8_tiles(const WeightMatrix& w, std::int64_t k) { return w.amx_s8 != nullptr && w.amx_s8->k == k; }
#if ALTCLIP_X86
inline bool bf16_tiles(const WeightMatrix& w, std::int64_t n, std::int64_t k) {
    if (w.amx_bf16 != nullptr) return w.amx_bf16->k == k;
    return w.type == WeightType::bf16_dot && w.panels && w.onednn == nullptr && w.cols == k && n >= kAmxBf16MinRows &&
           amx::bf16_panels_supported(k, w.panel_rows);
}
/// The product of linear_bf16 for w (bf16_tiles).
inline amx::Bf16Product bf16_product(const WeightMatrix& w, const float* bias, std::int64_t out, float* y, bool add) {
    if (w.amx_bf16 != nullptr) return {w.amx_bf16->data.get(), out, amx::PackedBf16::kPanelRows, bias, y, add};
    return {static_cast<const std::uint32_t*>(w.data), out, w.panel_rows, bias, y, add};
}
/// Whether products of n rows all run on avx2's packed kernel (Isa::avx2; none through oneDNN
/// or dot_q8), so that avx2::linear_many and linear_chain can share x's packing among them.
inline bool avx2_packs(const Product* products, int count, std::int64_t n, ThreadPool* pool) {
    if (isa_of(pool) != Isa::avx2) return false;  // (then by_rows, compiled for AVX2, may run)
    for (int i = 0; i < count; ++i)
        if (products[i].weight->onednn != nullptr || avx2::by_rows(*products[i].weight, n)) return false;
    return true;
}
/// Whether products of n rows all run on the AVX-512 packed kernel (none through oneDNN or on
/// AMX tiles; packs_avx512) with units of one size, so that x can be packed once for them all
/// (packed::linear_many). `lowered`: their weights with the types runnable here (count of them).
inline bool avx512_packs(const Product* products, int count, std::int64_t n, ThreadPool* pool,
                         WeightMatrix* lowered) {
    const Isa isa = isa_of(pool);
    if (isa < Isa::avx512) return false;
    for (int i = 0; i < count; ++i) {
        const WeightMatrix& w = *products[i].weight;
        if (w.onednn != nullptr || w.amx_s8 != nullptr || w.amx_bf16 != nullptr) return false;
        lowered[i] = w;
        lowered[i].type = runnable(w.type, isa);
        const WeightType t = lowered[i].type;
        // At Isa::amx linear() may take the other types to the tiles (bf16 panels, q8_bf16).
        if (isa >= Isa::amx && t != WeightType::f32 && t != WeightType::bf16 && t != WeightType::q8) return false;
        if (!packs_avx512(lowered[i], n)) return false;
        if (packed::unit_values(t) != packed::unit_values(lowered[0].type)) return false;
    }
    return true;
}
#else
inline bool bf16_tiles(const WeightMatrix&, std::int64_t, std::int64_t) { return false; }
#endif
}  // namespace gemm_detail

/// y[n, out] = act(x[n, k] . w[out, k]^T (+ bias)). `pool` may be nullptr (single thread,
/// the best Isa this CPU allows). `ws`: the kernels' buffers of the call (a forward pass's,
/// Scratch::workspace), reused by its every product. `act` (an MLP's activation) is applied
/// in the AVX2 and the AVX-512 packed kernels' write-out and by each oneDNN task on its own
/// rows, by a pass over y on the other paths: the same numbers.
inline void linear(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& weights, const float* bias,
                   std::int64_t out, float* y, ThreadPool* pool, Workspace& ws, Activation act = Activation::none) {
    if (n <= 0 || out <= 0) return;
#if ALTCLIP_X86
    if (isa_of(pool) >= Isa::amx && gemm_detail::s8_tiles(weights, k)) {  // packed for AMX at load (the ViT's int8)
        const amx::S8Product p{weights.amx_s8, bias, y, false};
        return amx::linear_s8(x, n, k, &p, 1, pool, ws, act);
    }
    if (isa_of(pool) >= Isa::amx && gemm_detail::bf16_tiles(weights, n, k)) {  // bf16 panels, many rows
        const amx::Bf16Product p = gemm_detail::bf16_product(weights, bias, out, y, false);
        return amx::linear_bf16(x, n, k, &p, 1, pool, ws, act);
    }
#endif
#if ALTCLIP_WITH_ONEDNN
    if (weights.onednn != nullptr) {  // packed for oneDNN at load (onednn::use_onednn decided)
        onednn::linear(x, n, k, *weights.onednn, bias, out, y, pool, ws, act);  // act applied by each task
        return;
    }
#endif
    const Isa isa = isa_of(pool);
    WeightMatrix w = weights;
    w.type = runnable(w.type, isa);
#if ALTCLIP_X86
    if (w.type == WeightType::q8_bf16 && isa >= Isa::amx && !w.panels && amx::q8_bf16_supported(k)) {
        // The text tower's int8 weights on AMX: widened to bfloat16 tiles, x rounded to bfloat16.
        amx::linear_q8_bf16(x, n, k, static_cast<const std::int8_t*>(w.data), w.scale, bias, out, y, pool, ws, act);
        return;
    }
    if (isa >= Isa::avx512) {
        gemm_detail::linear_avx512(x, n, k, w, bias, out, y, pool, ws, act);
        if (!gemm_detail::packs_avx512(w, n)) gemm_detail::activate(act, y, n * out, pool);
        return;
    }
    if (isa >= Isa::avx2) {
        avx2::linear(x, n, k, w, bias, out, y, pool, ws, act);
        return;
    }
#endif
    // Portable: Eigen per block of columns; weights other than row-major f32 widened first.
    const std::int64_t blocks = (out + gemm_detail::kColumnBlock - 1) / gemm_detail::kColumnBlock;
    const bool q8 = w.type == WeightType::q8 || w.type == WeightType::q8_dot || w.type == WeightType::q8_bf16;
    auto run = [&](std::int64_t b) {
        const std::int64_t j0 = b * gemm_detail::kColumnBlock;
        const std::int64_t j1 = std::min(out, j0 + gemm_detail::kColumnBlock);
        if (w.type == WeightType::f32 && !w.panels) {
            gemm_detail::block_eigen(x, n, k, static_cast<const float*>(w.data) + j0 * k, bias, out, j0, j1, y);
            return;
        }
        std::vector<float> wf(static_cast<std::size_t>((j1 - j0) * k));
        if (q8) {  // int8 values as they are; the row scale and bias applied after, as the AVX-512 path does
            for (std::int64_t r = j0; r < j1; ++r) {
                const auto* p = static_cast<const std::int8_t*>(w.data) + r * k;
                for (std::int64_t t = 0; t < k; ++t) wf[(r - j0) * k + t] = p[t];
            }
            gemm_detail::block_eigen(x, n, k, wf.data(), nullptr, out, j0, j1, y);
            for (std::int64_t i = 0; i < n; ++i)
                for (std::int64_t j = j0; j < j1; ++j)
                    y[i * out + j] = y[i * out + j] * w.scale[j] + (bias != nullptr ? bias[j] : 0.0f);
            return;
        }
        for (std::int64_t r = j0; r < j1; ++r) weight_row(w, r, wf.data() + (r - j0) * k);
        gemm_detail::block_eigen(x, n, k, wf.data(), bias, out, j0, j1, y);
    };
    parallel_for(pool, blocks, run);
    gemm_detail::activate(act, y, n * out, pool);
}

/// Products linear_many takes at once on the AVX-512 packed kernel (a layer's q, k and v).
inline constexpr int kMaxProducts = 4;

/// The products of one x [n, k] (a layer's q, k and v projections; a residual's product), the
/// same numbers as linear() each, then y + the result where `add`; with `norm`, the products
/// of layer_norm(x) (kernels::layer_norm's numbers). Where every product runs on AMX tiles
/// (the ViT's int8, packed for them; bf16 in panels for many rows) x is normalized and
/// rounded once for them all as its rows are read, and a residual is added as the results
/// are written; at Isa::avx2 (avx2::linear_many) x is normalized as it is packed, once for
/// them all, and a residual added as the tiles are written; on AVX-512's packed kernel
/// (packed::linear_many) layer_norm's pass into a buffer, then x packed once for them all and
/// a residual added as the tiles are written; else layer_norm's pass, then one linear() each,
/// a residual through a buffer and a pass.
inline void linear_many(const float* x, std::int64_t n, std::int64_t k, const Product* products, int count,
                        ThreadPool* pool, Workspace& ws, const RowNorm* norm = nullptr) {
    if (n <= 0 || count <= 0) return;
#if ALTCLIP_X86
    if (isa_of(pool) >= Isa::amx) {  // on AMX tiles when every product can be, with one activation
        std::vector<amx::S8Product> s8;
        std::vector<amx::Bf16Product> bf;
        bool one_act = true;
        for (int i = 0; i < count; ++i) {
            const Product& p = products[i];
            one_act = one_act && p.act == products[0].act;
            if (gemm_detail::s8_tiles(*p.weight, k)) s8.push_back({p.weight->amx_s8, p.bias, p.y, p.add});
            if (gemm_detail::bf16_tiles(*p.weight, n, k)) bf.push_back(gemm_detail::bf16_product(*p.weight, p.bias, p.out, p.y, p.add));
        }
        const Activation act = products[0].act;
        if (one_act && static_cast<int>(s8.size()) == count) return amx::linear_s8(x, n, k, s8.data(), count, pool, ws, act, norm);
        if (one_act && static_cast<int>(bf.size()) == count) return amx::linear_bf16(x, n, k, bf.data(), count, pool, ws, act, norm);
    }
    if (gemm_detail::avx2_packs(products, count, n, pool)) return avx2::linear_many(x, n, k, products, count, pool, ws, norm);
#endif
    if (norm != nullptr) {
        std::vector<float>& normed = ws.caller().normed;
        normed.resize(static_cast<std::size_t>(n * k));
        layer_norm(x, n, k, norm->gamma, norm->beta, norm->eps, normed.data(), pool);
        x = normed.data();
    }
#if ALTCLIP_X86
    if (count <= kMaxProducts) {  // at AVX-512: x packed once, residuals added as the tiles are written
        WeightMatrix lowered[kMaxProducts];
        Product runnable_products[kMaxProducts];
        if (gemm_detail::avx512_packs(products, count, n, pool, lowered)) {
            for (int i = 0; i < count; ++i) {
                runnable_products[i] = products[i];
                runnable_products[i].weight = &lowered[i];
            }
            return packed::linear_many(x, n, k, runnable_products, count, pool, ws);
        }
    }
#endif
    for (int i = 0; i < count; ++i) {
        const Product& p = products[i];
        if (!p.add) {
            linear(x, n, k, *p.weight, p.bias, p.out, p.y, pool, ws, p.act);
            continue;
        }
        std::vector<float>& sum = ws.caller().addend;
        sum.resize(static_cast<std::size_t>(n * p.out));
        linear(x, n, k, *p.weight, p.bias, p.out, sum.data(), pool, ws, p.act);
        float* const y = p.y;
        const float* const s = sum.data();
        const std::int64_t cols = p.out;
        parallel_chunks(pool, n, 16, [=](std::int64_t r0, std::int64_t r1) {
            for (std::int64_t i = r0 * cols; i < r1 * cols; ++i) y[i] += s[i];
        });
    }
}

/// The MLP's two products: second.y (=, or += with second.add) second(first(x)), first.y
/// holding first(x) (first.act its activation); with `norm`, of layer_norm(x). Where both run
/// on bf16 AMX tiles, first(x) goes from first's write-out into second's tiles in bfloat16,
/// the rounding second would give it, and first.y is not written; on int8 AMX tiles first's
/// write-out also finds each row's largest |value|, which second's quantization then need not
/// look for. At Isa::avx2 (avx2::linear_chain) first's tiles go into second's packed x as
/// they are written, and first.y is not written either. The same numbers as linear_many for
/// first, then second, which is what runs elsewhere.
inline void linear_chain(const float* x, std::int64_t n, std::int64_t k, const Product& first, const Product& second,
                         ThreadPool* pool, Workspace& ws, const RowNorm* norm = nullptr) {
    if (n <= 0) return;
#if ALTCLIP_X86
    if (isa_of(pool) >= Isa::amx && !first.add && second.act == Activation::none && first.out % 32 == 0 &&
        gemm_detail::bf16_tiles(*first.weight, n, k) && gemm_detail::bf16_tiles(*second.weight, n, first.out)) {
        amx::linear_bf16_chain(x, n, k, gemm_detail::bf16_product(*first.weight, first.bias, first.out, first.y, false),
                               first.act,
                               gemm_detail::bf16_product(*second.weight, second.bias, second.out, second.y, second.add),
                               pool, ws, norm);
        return;
    }
    if (isa_of(pool) >= Isa::amx && !first.add && second.act == Activation::none &&
        gemm_detail::s8_tiles(*first.weight, k) && gemm_detail::s8_tiles(*second.weight, first.out)) {
        const amx::S8Product a{first.weight->amx_s8, first.bias, first.y, false};
        const amx::S8Product b{second.weight->amx_s8, second.bias, second.y, second.add};
        amx::linear_s8_chain(x, n, k, a, first.act, b, pool, ws, norm);
        return;
    }
    const Product both[2] = {first, second};
    if (!first.add && gemm_detail::avx2_packs(both, 2, n, pool)) {
        avx2::linear_chain(x, n, k, first, second, pool, ws, norm);
        return;
    }
#endif
    linear_many(x, n, k, &first, 1, pool, ws, norm);
    linear_many(first.y, n, first.out, &second, 1, pool, ws);
}

/// The same with buffers for this call only (a one-off product, tests).
inline void linear(const float* x, std::int64_t n, std::int64_t k, const WeightMatrix& weights, const float* bias,
                   std::int64_t out, float* y, ThreadPool* pool) {
    Workspace ws;
    linear(x, n, k, weights, bias, out, y, pool, ws);
}

/// The same with a float32 weight pointer.
inline void linear(const float* x, std::int64_t n, std::int64_t k, const float* w, const float* bias, std::int64_t out,
                   float* y, ThreadPool* pool, Workspace& ws) {
    linear(x, n, k, WeightMatrix{WeightType::f32, w, out, k}, bias, out, y, pool, ws);
}
inline void linear(const float* x, std::int64_t n, std::int64_t k, const float* w, const float* bias, std::int64_t out,
                   float* y, ThreadPool* pool) {
    Workspace ws;
    linear(x, n, k, w, bias, out, y, pool, ws);
}

}  // namespace altclip::kernels
