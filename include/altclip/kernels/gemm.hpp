// y[n, out] = x[n, k] . W[out, k]^T (+ bias[out]): torch.nn.functional.linear with the
// weight used in place in its stored [out, in] layout (no packing, so a mapped file's
// weights are never copied).
//
// With AVX-512 the product is computed as MR x NR dot products at a time, each a 16-lane
// accumulator along k, reduced at the end of each k block. The work is split over blocks of
// output columns (rows of W), so short inputs (a 16-token text) keep every thread busy too.
// Without AVX-512, Eigen computes each column block.
#pragma once

#include <algorithm>
#include <cstdint>

#include <Eigen/Core>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "thread_pool.hpp"

namespace altclip::kernels {

namespace gemm_detail {

constexpr std::int64_t kColumnBlock = 64;   // rows of W per task
constexpr std::int64_t kRowBlock = 192;     // rows of x kept in L2 per pass
constexpr std::int64_t kDepthBlock = 512;   // k per pass: a W tile (8 x 512 floats) stays in L1

/// Reference implementation for one column block, any CPU.
inline void block_eigen(const float* x, std::int64_t n, std::int64_t k, const float* w, const float* bias,
                        std::int64_t out, std::int64_t j0, std::int64_t j1, float* y) {
    using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const RowMatrix> X(x, n, k);
    Eigen::Map<const RowMatrix> W(w + j0 * k, j1 - j0, k);
    Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>> Y(y + j0, n, j1 - j0, Eigen::OuterStride<>(out));
    Y.noalias() = X * W.transpose();
    if (bias != nullptr) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias + j0, j1 - j0);
}

#if defined(__AVX512F__)

/// Sums of four 16-lane vectors -> one 4-lane vector [sum a, sum b, sum c, sum d].
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 t = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_add_ps(_mm512_castps512_ps128(t), _mm512_extractf32x4_ps(t, 1));
}

/// MR rows of x times NR rows of W over k in [k0, k1): y[i][j] (+)= dot, plus bias on the first pass.
template <int MR, int NR>
inline void micro(const float* x, std::int64_t ldx, const float* w, std::int64_t ldw, std::int64_t k0,
                  std::int64_t k1, const float* bias, bool first, float* y, std::int64_t ldy) {
    __m512 acc[MR][NR];
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    std::int64_t kk = k0;
    for (; kk + 16 <= k1; kk += 16) {
        __m512 xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = _mm512_loadu_ps(x + i * ldx + kk);
        for (int j = 0; j < NR; ++j) {
            __m512 wv = _mm512_loadu_ps(w + j * ldw + kk);
            // Keep wv in a register: GCC would otherwise fold the load into each of the MR
            // FMAs below, loading the same W vector MR times.
            __asm__("" : "+v"(wv));
            for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
    if (kk < k1) {
        const __mmask16 m = static_cast<__mmask16>((1u << (k1 - kk)) - 1);
        __m512 xv[MR];
        for (int i = 0; i < MR; ++i) xv[i] = _mm512_maskz_loadu_ps(m, x + i * ldx + kk);
        for (int j = 0; j < NR; ++j) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, w + j * ldw + kk);
            for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
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

template <int MR>
inline void micro_cols(int nr, const float* x, std::int64_t ldx, const float* w, std::int64_t ldw, std::int64_t k0,
                       std::int64_t k1, const float* bias, bool first, float* y, std::int64_t ldy) {
    switch (nr) {
        case 8: micro<MR, 8>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 7: micro<MR, 7>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 6: micro<MR, 6>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 5: micro<MR, 5>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 4: micro<MR, 4>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 3: micro<MR, 3>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        case 2: micro<MR, 2>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
        default: micro<MR, 1>(x, ldx, w, ldw, k0, k1, bias, first, y, ldy); break;
    }
}

inline void block_avx512(const float* x, std::int64_t n, std::int64_t k, const float* w, const float* bias,
                         std::int64_t out, std::int64_t j0, std::int64_t j1, float* y) {
    constexpr int MR = 3, NR = 8;
    for (std::int64_t i0 = 0; i0 < n; i0 += kRowBlock) {
        const std::int64_t i1 = std::min(n, i0 + kRowBlock);
        for (std::int64_t k0 = 0; k0 < k; k0 += kDepthBlock) {
            const std::int64_t k1 = std::min(k, k0 + kDepthBlock);
            const bool first = k0 == 0;
            for (std::int64_t j = j0; j < j1; j += NR) {
                const int nr = static_cast<int>(std::min<std::int64_t>(NR, j1 - j));
                const float* wj = w + j * k;
                const float* bj = bias != nullptr ? bias + j : nullptr;
                std::int64_t i = i0;
                for (; i + MR <= i1; i += MR) micro_cols<MR>(nr, x + i * k, k, wj, k, k0, k1, bj, first, y + i * out + j, out);
                for (; i < i1; ++i) micro_cols<1>(nr, x + i * k, k, wj, k, k0, k1, bj, first, y + i * out + j, out);
            }
        }
    }
}

#endif  // __AVX512F__

}  // namespace gemm_detail

/// y[n, out] = x[n, k] . w[out, k]^T (+ bias). `pool` may be nullptr (single thread).
inline void linear(const float* x, std::int64_t n, std::int64_t k, const float* w, const float* bias, std::int64_t out,
                   float* y, ThreadPool* pool) {
    if (n <= 0 || out <= 0) return;
    const std::int64_t blocks = (out + gemm_detail::kColumnBlock - 1) / gemm_detail::kColumnBlock;
    auto run = [&](std::int64_t b) {
        const std::int64_t j0 = b * gemm_detail::kColumnBlock;
        const std::int64_t j1 = std::min(out, j0 + gemm_detail::kColumnBlock);
#if defined(__AVX512F__)
        gemm_detail::block_avx512(x, n, k, w, bias, out, j0, j1, y);
#else
        gemm_detail::block_eigen(x, n, k, w, bias, out, j0, j1, y);
#endif
    };
    if (pool == nullptr) {
        for (std::int64_t b = 0; b < blocks; ++b) run(b);
    } else {
        pool->parallel_for(blocks, run);
    }
}

}  // namespace altclip::kernels
