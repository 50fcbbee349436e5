// Numerical kernels on row-major float32 buffers. They know nothing about AltCLIP;
// each has a plain scalar twin in tests/test_kernels.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "amx_attention.hpp"
#include "avx2.hpp"
#include "cpu.hpp"
#include "eigen.hpp"
#include "gemm_packed.hpp"
#include "lanes_avx512.hpp"
#include "thread_pool.hpp"
#include "weight_matrix.hpp"

namespace altclip::kernels {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace ops_detail {

/// LayerNorm of rows [r0, r1), portable: double sums in order, float normalise with fma.
inline void layer_norm_rows(const float* x, std::int64_t r0, std::int64_t r1, std::int64_t n, const float* gamma,
                            const float* beta, float eps, float* y) {
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        double sum = 0, sq = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += xr[i];
        const double mean = sum / static_cast<double>(n);
        for (std::int64_t i = 0; i < n; ++i) {
            const double d = xr[i] - mean;
            sq += d * d;
        }
        const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(n) + static_cast<double>(eps));
        for (std::int64_t i = 0; i < n; ++i) {
            const float t = (xr[i] - static_cast<float>(mean)) * static_cast<float>(rstd);
            yr[i] = std::fma(t, gamma[i], beta[i]);
        }
    }
}

#if ALTCLIP_X86
ALTCLIP_AVX512_BEGIN
/// The same with AVX-512: 16 double sums at a time (then in order for the tail).
ALTCLIP_KERNEL_ENTRY inline void layer_norm_rows_avx512(const float* x, std::int64_t r0, std::int64_t r1,
                                                        std::int64_t n, const float* gamma, const float* beta,
                                                        float eps, float* y) {
    for (std::int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        std::int64_t i = 0;
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        for (; i + 16 <= n; i += 16) {
            const __m512 v = _mm512_loadu_ps(xr + i);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
        }
        double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        for (; i < n; ++i) sum += xr[i];
        const double mean = sum / static_cast<double>(n);
        i = 0;
        const __m512d vm = _mm512_set1_pd(mean);
        s0 = _mm512_setzero_pd();
        s1 = _mm512_setzero_pd();
        for (; i + 16 <= n; i += 16) {
            const __m512 v = _mm512_loadu_ps(xr + i);
            const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), vm);
            const __m512d d1 =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), vm);
            s0 = _mm512_fmadd_pd(d0, d0, s0);
            s1 = _mm512_fmadd_pd(d1, d1, s1);
        }
        double sq = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
        for (; i < n; ++i) {
            const double d = xr[i] - mean;
            sq += d * d;
        }
        const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(n) + static_cast<double>(eps));
        i = 0;
        const __m512 fm = _mm512_set1_ps(static_cast<float>(mean)), fr = _mm512_set1_ps(static_cast<float>(rstd));
        for (; i + 16 <= n; i += 16) {
            const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), fm), fr);
            _mm512_storeu_ps(yr + i, _mm512_fmadd_ps(t, _mm512_loadu_ps(gamma + i), _mm512_loadu_ps(beta + i)));
        }
        for (; i < n; ++i) {
            const float t = (xr[i] - static_cast<float>(mean)) * static_cast<float>(rstd);
            yr[i] = std::fma(t, gamma[i], beta[i]);
        }
    }
}

/// f applied to x[0, count) in place, 16 at a time (the tail masked: every element takes the
/// same path whatever its position).
template <class F>
inline void map16(float* x, std::int64_t count, F f) {
    std::int64_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(x + i, f(_mm512_loadu_ps(x + i)));
    if (i < count) {
        const __mmask16 m = static_cast<__mmask16>((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
    }
}
ALTCLIP_KERNEL_ENTRY inline void gelu_erf_avx512(float* x, std::int64_t count) { map16(x, count, v512::gelu); }
ALTCLIP_KERNEL_ENTRY inline void quick_gelu_avx512(float* x, std::int64_t count) {
    map16(x, count, v512::quick_gelu);
}

/// Softmax of each row of [rows, n], in place: max, e^(x - max), times 1 / sum (sums in a
/// fixed order: 16 lanes, then the lanes added). A row of only -inf becomes zeros.
ALTCLIP_KERNEL_ENTRY inline void softmax_rows_avx512(float* x, std::int64_t rows, std::int64_t n) {
    const std::int64_t full = n / 16 * 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1);
    const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::int64_t r = 0; r < rows; ++r) {
        float* a = x + r * n;
        __m512 vmax = ninf;
        for (std::int64_t i = 0; i < full; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(a + i));
        if (tail) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(ninf, tail, a + full));
        const float m = _mm512_reduce_max_ps(vmax);
        if (m == -std::numeric_limits<float>::infinity()) {
            std::fill(a, a + n, 0.0f);
            continue;
        }
        const __m512 vm = _mm512_set1_ps(m);
        __m512 vsum = _mm512_setzero_ps();
        for (std::int64_t i = 0; i < full; i += 16) {
            const __m512 e = v512::exp(_mm512_sub_ps(_mm512_loadu_ps(a + i), vm));
            _mm512_storeu_ps(a + i, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        if (tail) {
            const __m512 e = _mm512_maskz_mov_ps(tail, v512::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, a + full), vm)));
            _mm512_mask_storeu_ps(a + full, tail, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
        for (std::int64_t i = 0; i < full; i += 16) _mm512_storeu_ps(a + i, _mm512_mul_ps(_mm512_loadu_ps(a + i), inv));
        if (tail) _mm512_mask_storeu_ps(a + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, a + full), inv));
    }
}
ALTCLIP_AVX512_END

/// An elementwise kernel over x[0, count) in chunks on the pool, at the pool's level: the
/// AVX-512 or the AVX2 one. False below Isa::avx2 (the caller's portable path runs).
inline bool map_chunks(float* x, std::int64_t count, ThreadPool* pool, void (*avx512)(float*, std::int64_t),
                       void (*avx2)(float*, std::int64_t)) {
    const Isa isa = isa_of(pool);
    if (isa < Isa::avx2) return false;
    auto* fn = isa >= Isa::avx512 ? avx512 : avx2;
    constexpr std::int64_t kChunk = 4096;
    parallel_for(pool, (count + kChunk - 1) / kChunk,
                 [&](std::int64_t c) { fn(x + c * kChunk, std::min(kChunk, count - c * kChunk)); });
    return true;
}
#endif  // ALTCLIP_X86

}  // namespace ops_detail

/// LayerNorm over the last dimension (biased variance, eps inside the sqrt), as
/// torch.nn.LayerNorm. Statistics are accumulated in double, in a fixed order (the same
/// whatever the buffer's address or the thread split). `y` may alias `x`.
inline void layer_norm(const float* x, std::int64_t rows, std::int64_t n, const float* gamma, const float* beta,
                       float eps, float* y, ThreadPool* pool = nullptr) {
    [[maybe_unused]] const Isa isa = isa_of(pool);
    parallel_chunks(pool, rows, 16, [&](std::int64_t r0, std::int64_t r1) {
#if ALTCLIP_X86
        if (isa >= Isa::avx512) return ops_detail::layer_norm_rows_avx512(x, r0, r1, n, gamma, beta, eps, y);
        if (isa >= Isa::avx2) return avx2::layer_norm_rows(x, r0, r1, n, gamma, beta, eps, y);
#endif
        ops_detail::layer_norm_rows(x, r0, r1, n, gamma, beta, eps, y);
    });
}

/// Applies an Eigen array expression to x[0, count) in place, block by block through an
/// aligned buffer, so every element takes the same (vectorised) path whatever the
/// buffer's address or the thread split: results are reproducible bit for bit.
template <class F>
inline void map_elementwise(float* x, std::int64_t count, ThreadPool* pool, F f) {
    constexpr std::int64_t kBlock = 256;
    const std::int64_t blocks = (count + kBlock - 1) / kBlock;
    parallel_chunks(pool, blocks, 64, [&](std::int64_t b0, std::int64_t b1) {
        alignas(64) float buf[kBlock];
        Eigen::Map<Eigen::Array<float, kBlock, 1>, Eigen::Aligned64> a(buf);
        for (std::int64_t b = b0; b < b1; ++b) {
            float* p = x + b * kBlock;
            const std::int64_t m = std::min(kBlock, count - b * kBlock);
            std::copy(p, p + m, buf);
            std::fill(buf + m, buf + kBlock, 0.0f);
            a = f(a);
            std::copy(buf, buf + m, p);
        }
    });
}

/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (torch's default "gelu"), in place.
/// Eigen's vectorised erf (unsupported/SpecialFunctions) is accurate to a few ulp.
/// At Isa::avx2 and above, lanes.inc's gelu (|error| of Phi below 1.5e-7).
inline void gelu_erf(float* x, std::int64_t count, ThreadPool* pool = nullptr) {
#if ALTCLIP_X86
    if (ops_detail::map_chunks(x, count, pool, ops_detail::gelu_erf_avx512, avx2::gelu_erf)) return;
#endif
    map_elementwise(x, count, pool, [](const auto& a) { return 0.5f * a * (1.0f + (a * 0.70710678118654752f).erf()); });
}

/// CLIP's quick_gelu, x * sigmoid(1.702 x), in place (vectorised exp).
inline void quick_gelu(float* x, std::int64_t count, ThreadPool* pool = nullptr) {
#if ALTCLIP_X86
    if (ops_detail::map_chunks(x, count, pool, ops_detail::quick_gelu_avx512, avx2::quick_gelu)) return;
#endif
    map_elementwise(x, count, pool, [](const auto& a) { return a / (1.0f + (-1.702f * a).exp()); });
}

/// Softmax over each row of a [rows, n] buffer, in place (max-subtracted, vectorised exp).
/// A row whose every entry is -inf (every key masked) becomes zeros.
inline void softmax_rows(float* x, std::int64_t rows, std::int64_t n) {
    for (std::int64_t r = 0; r < rows; ++r) {
        Eigen::Map<Eigen::ArrayXf> a(x + r * n, n);
        float m = a.maxCoeff();
        if (m == -std::numeric_limits<float>::infinity()) {
            a.setZero();
            continue;
        }
        a = (a - m).exp();
        a *= 1.0f / a.sum();
    }
}

#if ALTCLIP_X86
ALTCLIP_AVX512_BEGIN
namespace attention_detail {

/// out = softmax(Q K^T * scale, keys masked) V for one (sequence, head), fused: 12 query
/// rows at a time, their scores (12 x seq) made by the packed micro-kernel against K^T
/// panels, softmaxed in place and multiplied by V panels while still in L1/L2; the full
/// seq x seq score matrix never exists. q, k, v, out: [seq] rows of `ld` floats, the head's
/// `d` values first. `key_mask`: nullptr or [seq], 0 = padding. `ws`: the buffers of the
/// thread running it (its slot's): K^T panels [key panel][unit = dim][NR keys], V panels
/// [dim panel][unit = key][NR dims], one sliver's scores [MR][seq], packed Q and P slivers.
ALTCLIP_KERNEL_ENTRY inline void attention_head(const float* q, const float* k, const float* v, std::int64_t seq, std::int64_t d,
                           std::int64_t ld, const std::int64_t* key_mask, float scale, float* out, KernelBuffers& ws) {
    using packed::MR;
    using packed::NR;
    using packed::KU;
    // Buffers start on a cache line: the micro-kernel's loads are aligned ones, and the
    // softmax's vector split of a row (Eigen peels to alignment) then does not depend on
    // which slot's buffer it runs in, so results do not depend on the thread count.
    using packed::aligned_at_least;
    // K^T: panel p holds keys [32 p, 32 p + 32) as columns, dims as units (the pack_panel of
    // a "weight" whose rows are keys); V: panel p holds dims [32 p, 32 p + 32) as columns,
    // keys as units (V's rows copied as they are, zero past d).
    const std::int64_t kpanels = (seq + NR - 1) / NR, vpanels = (d + NR - 1) / NR;
    std::uint32_t* const keys = aligned_at_least(ws.keys, kpanels * d * NR);
    std::uint32_t* const values = aligned_at_least(ws.values, vpanels * seq * NR);
    float* const scores = aligned_at_least(ws.scores, MR * seq);
    const packed::PanelSource ksrc{packed::Source::f32, k, d, nullptr, ld};
    for (std::int64_t p = 0; p < kpanels; ++p) {
        const int nr = static_cast<int>(std::min<std::int64_t>(NR, seq - p * NR));
        for (std::int64_t u0 = 0; u0 < d; u0 += KU)
            packed::pack_panel(ksrc, p * NR, nr, u0, std::min(KU, d - u0), keys + (p * d + u0) * NR);
    }
    for (std::int64_t p = 0; p < vpanels; ++p) {
        const std::int64_t c0 = p * NR, nc = std::min<std::int64_t>(NR, d - c0);
        std::uint32_t* dst = values + p * seq * NR;
        const packed::HalfMasks hm = packed::half_masks(nc);
        for (std::int64_t j = 0; j < seq; ++j) {  // 32 values of a row of V, zeros past d
            const float* src = v + j * ld + c0;
            _mm512_store_si512(dst + j * NR, _mm512_castps_si512(_mm512_maskz_loadu_ps(hm.lo, src)));
            _mm512_store_si512(dst + j * NR + 16, _mm512_castps_si512(_mm512_maskz_loadu_ps(hm.hi, src + 16)));
        }
    }
    // acc = one packed sliver (every k block of it) times a panel whose k block b starts
    // b * KU * NR units in.
    auto product = [](const packed::PackedX& x, const std::uint32_t* panel, std::int64_t k, __m512 (&acc)[MR][2]) {
        for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        for (std::int64_t b = 0; b < x.nblocks; ++b)
            packed::micro<packed::F32Op>(x.at(b, 0), panel + b * KU * NR, NR, std::min(KU, k - b * KU), acc);
    };
    const __m512 vscale = _mm512_set1_ps(scale);
    const packed::Epilogue none;
    for (std::int64_t r0 = 0; r0 < seq; r0 += MR) {
        const int mr = static_cast<int>(std::min<std::int64_t>(MR, seq - r0));
        __m512 acc[MR][2];
        // Scores of rows [r0, r0 + mr) against every key, scaled; masked keys -inf.
        const packed::PackedX pq = packed::pack_x(q + r0 * ld, mr, d, ld, 1, ws.q, nullptr);
        for (std::int64_t p = 0; p < kpanels; ++p) {
            product(pq, keys + p * d * NR, d, acc);
            for (int i = 0; i < MR; ++i)
                for (int h = 0; h < 2; ++h) acc[i][h] = _mm512_mul_ps(acc[i][h], vscale);
            const int nr = static_cast<int>(std::min<std::int64_t>(NR, seq - p * NR));
            packed::store_tile<packed::F32Op>(acc, true, none, 0, 0, mr, nr, nullptr, 0, scores + p * NR, seq);
        }
        if (key_mask != nullptr) {
            for (std::int64_t j = 0; j < seq; ++j)
                if (key_mask[j] == 0)
                    for (int i = 0; i < mr; ++i) scores[i * seq + j] = -std::numeric_limits<float>::infinity();
        }
        ops_detail::softmax_rows_avx512(scores, mr, seq);
        // Output rows = probabilities . V
        const packed::PackedX pp = packed::pack_x(scores, mr, seq, seq, 1, ws.p, nullptr);
        for (std::int64_t p = 0; p < vpanels; ++p) {
            product(pp, values + p * seq * NR, seq, acc);
            const int nr = static_cast<int>(std::min<std::int64_t>(NR, d - p * NR));
            packed::store_tile<packed::F32Op>(acc, true, none, 0, p * NR, mr, nr, nullptr, 0, out + r0 * ld + p * NR, ld);
        }
    }
}

}  // namespace attention_detail
ALTCLIP_AVX512_END
#endif  // ALTCLIP_X86

/// The arithmetic of the attention's two products: float32 throughout, or (a model whose
/// matrices are bfloat16 or int8, on a CPU with AMX) Q, K, V and the probabilities rounded to
/// bfloat16, summed in float32 on AMX tiles (amx_attention.hpp). Below Isa::amx, and for head
/// sizes other than 32 and 64, bf16 runs the float32 kernels.
enum class AttentionMath { f32, bf16 };

/// The attention's arithmetic for a model whose products take weights of type `t`: bf16 where
/// the products round their activations (bf16_dot, q8_dot, q8_bf16: a bf16 or q8 file at a
/// level with bfloat16 or int8 dot products, AMX included); float32 where they do float32 math
/// (a float32 file, an exact model, weights widened at lower levels).
inline AttentionMath attention_math(WeightType t) {
    return t == WeightType::bf16_dot || t == WeightType::q8_dot || t == WeightType::q8_bf16 ? AttentionMath::bf16
                                                                                            : AttentionMath::f32;
}

/// Scaled dot-product attention of one (sequence, head): q, k, v, out are [seq] rows of
/// `ld` floats whose first `d` values are this head's; key_mask: nullptr or [seq], 0 = padding.
/// `ws`: the buffers of the thread running it.
inline void attention_one(const float* q, const float* k, const float* v, std::int64_t seq, std::int64_t d,
                          std::int64_t ld, const std::int64_t* key_mask, float* out, Isa isa,
                          [[maybe_unused]] KernelBuffers& ws, AttentionMath math = AttentionMath::f32) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
#if ALTCLIP_X86
    if (math == AttentionMath::bf16 && isa >= Isa::amx && amx::head_size_supported(d))
        return amx::attention_head(q, k, v, seq, d, ld, key_mask, scale, out, ws);
    if (isa >= Isa::avx512) return attention_detail::attention_head(q, k, v, seq, d, ld, key_mask, scale, out, ws);
    if (isa >= Isa::avx2) return avx2::attention_head(q, k, v, seq, d, ld, key_mask, scale, out, ws);
#endif
    using Strided = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
    using StridedOut = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
    Strided Q(q, seq, d, Eigen::OuterStride<>(ld));
    Strided K(k, seq, d, Eigen::OuterStride<>(ld));
    Strided V(v, seq, d, Eigen::OuterStride<>(ld));
    StridedOut O(out, seq, d, Eigen::OuterStride<>(ld));
    RowMatrix S(seq, seq);
    S.noalias() = (Q * K.transpose()) * scale;
    if (key_mask != nullptr) {
        for (std::int64_t j = 0; j < seq; ++j) {
            if (key_mask[j] == 0) S.col(j).setConstant(-std::numeric_limits<float>::infinity());
        }
    }
    softmax_rows(S.data(), seq, seq);
    O.noalias() = S * V;
}

/// Scaled dot-product attention of a single query row against one sequence's keys (the class
/// token's row in a pooler's last layer, ViT: no mask): q [d]; k, v [seq] rows of `ld` floats
/// whose first `d` values are this head's; out [d]. In float32 whatever the model's
/// precision: the scores, their softmax (softmax_rows) and the sum of the value rows they
/// weight, each a matrix-vector product of Eigen's (2 x seq x d multiply-adds: 33 thousand a
/// ViT-L/14 head).
inline void attention_query(const float* q, const float* k, const float* v, std::int64_t seq, std::int64_t d,
                            std::int64_t ld, float* out) {
    using Strided = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
    const Strided K(k, seq, d, Eigen::OuterStride<>(ld)), V(v, seq, d, Eigen::OuterStride<>(ld));
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    Eigen::VectorXf scores = (K * Eigen::Map<const Eigen::VectorXf>(q, d)) * scale;
    softmax_rows(scores.data(), 1, seq);
    Eigen::Map<Eigen::VectorXf>(out, d).noalias() = V.transpose() * scores;
}

/// Multi-head scaled dot-product attention over a batch of sequences, one task per
/// (sequence, head). q, k, v, out: [batch * seq, heads * head_dim] row-major (heads side
/// by side, as the reference's view(..., heads, head_dim)). `key_mask`: nullptr, or
/// [batch, seq] with 1 for keys to attend and 0 for padding (their scores become -inf
/// before the softmax, which the reference's additive float-min mask equals after exp).
/// `ws`: the call's kernel buffers (one set per slot of the pool's loop).
inline void attention(const float* q, const float* k, const float* v, std::int64_t batch, std::int64_t seq,
                      std::int64_t heads, std::int64_t head_dim, const std::int64_t* key_mask, float* out,
                      ThreadPool* pool, Workspace& ws, AttentionMath math = AttentionMath::f32) {
    const std::int64_t width = heads * head_dim;
    const Isa isa = isa_of(pool);
    KernelBuffers* const slots = ws.slots(slot_count(pool, batch * heads));
    auto task = [&](std::int64_t t, int slot) {
        const std::int64_t b = t / heads, h = t % heads;
        const std::int64_t off = b * seq * width + h * head_dim;
        attention_one(q + off, k + off, v + off, seq, head_dim, width, key_mask != nullptr ? key_mask + b * seq : nullptr,
                      out + off, isa, slots[slot], math);
    };
    parallel_for_slots(pool, batch * heads, task);
}

/// The same with buffers for this call only (tests, one-off calls).
inline void attention(const float* q, const float* k, const float* v, std::int64_t batch, std::int64_t seq,
                      std::int64_t heads, std::int64_t head_dim, const std::int64_t* key_mask, float* out,
                      ThreadPool* pool) {
    Workspace ws;
    attention(q, k, v, batch, seq, heads, head_dim, key_mask, out, pool, ws);
}

/// The same for sequences of different lengths packed back to back, without padding:
/// sequence b is rows [starts[b], starts[b + 1]) and attends to its own rows only.
inline void attention_packed(const float* q, const float* k, const float* v, const std::int64_t* starts,
                             std::int64_t batch, std::int64_t heads, std::int64_t head_dim, float* out, ThreadPool* pool,
                             Workspace& ws, AttentionMath math = AttentionMath::f32) {
    const std::int64_t width = heads * head_dim;
    const Isa isa = isa_of(pool);
    KernelBuffers* const slots = ws.slots(slot_count(pool, batch * heads));
    auto task = [&](std::int64_t t, int slot) {
        const std::int64_t b = t / heads, h = t % heads;
        const std::int64_t off = starts[b] * width + h * head_dim;
        attention_one(q + off, k + off, v + off, starts[b + 1] - starts[b], head_dim, width, nullptr, out + off, isa,
                      slots[slot], math);
    };
    parallel_for_slots(pool, batch * heads, task);
}

}  // namespace altclip::kernels
