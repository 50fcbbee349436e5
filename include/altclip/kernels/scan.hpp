// The kernels of the exact search scan: dot products of one query (float32) with many
// stored unit vectors, as float32 or as IEEE half floats (binary16, what a search index
// stores to halve its reads). Memory-bound: each stored value is read once, so the vector
// kernels widen halves in registers (F16C / AVX-512) rather than through a float buffer.
// Every level sums in the same order (lanes of 16, then a fixed tree), so the scores do
// not depend on the instruction set beyond float rounding of that one order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../format/dtype.hpp"
#include "../isa.hpp"
#include "cpu.hpp"

namespace altclip::kernels::scan {

/// Sums 16 lanes as the vector kernels do: pairs (i, i + 8), then (i, i + 4), ...
inline float tree16(float* lanes) {
    for (int w = 8; w >= 1; w /= 2) {
        for (int i = 0; i < w; ++i) lanes[i] += lanes[i + w];
    }
    return lanes[0];
}

template <class Load>
inline void rows_portable(std::size_t rows, std::size_t dim, const float* q, float* out, Load load) {
    for (std::size_t r = 0; r < rows; ++r) {
        float lanes[16] = {};
        std::size_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            for (int l = 0; l < 16; ++l) lanes[l] += q[i + l] * load(r, i + l);
        }
        float tail = 0;
        for (; i < dim; ++i) tail += q[i] * load(r, i);
        out[r] = tree16(lanes) + tail;
    }
}

inline void f32_portable(const float* m, std::size_t rows, std::size_t dim, const float* q, float* out) {
    rows_portable(rows, dim, q, out, [m, dim](std::size_t r, std::size_t i) { return m[r * dim + i]; });
}

inline void f16_portable(const std::uint16_t* m, std::size_t rows, std::size_t dim, const float* q, float* out) {
    rows_portable(rows, dim, q, out, [m, dim](std::size_t r, std::size_t i) { return half_to_float(m[r * dim + i]); });
}

}  // namespace altclip::kernels::scan

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AVX512_BEGIN
namespace altclip::kernels::scan::avx512 {

inline float finish(__m512 acc, float tail) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc);
    return tree16(lanes) + tail;
}

template <class Load16, class Load1>
inline void rows(std::size_t rows, std::size_t dim, const float* q, float* out, Load16 load16, Load1 load1) {
    // Four rows at a time: each query vector is loaded once for four rows.
    std::size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        std::size_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            const __m512 qv = _mm512_loadu_ps(q + i);
            a0 = _mm512_fmadd_ps(qv, load16(r, i), a0);
            a1 = _mm512_fmadd_ps(qv, load16(r + 1, i), a1);
            a2 = _mm512_fmadd_ps(qv, load16(r + 2, i), a2);
            a3 = _mm512_fmadd_ps(qv, load16(r + 3, i), a3);
        }
        float t[4] = {};
        for (; i < dim; ++i) {
            for (int j = 0; j < 4; ++j) t[j] += q[i] * load1(r + static_cast<std::size_t>(j), i);
        }
        out[r] = finish(a0, t[0]);
        out[r + 1] = finish(a1, t[1]);
        out[r + 2] = finish(a2, t[2]);
        out[r + 3] = finish(a3, t[3]);
    }
    for (; r < rows; ++r) {
        __m512 a = _mm512_setzero_ps();
        std::size_t i = 0;
        for (; i + 16 <= dim; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(r, i), a);
        float t = 0;
        for (; i < dim; ++i) t += q[i] * load1(r, i);
        out[r] = finish(a, t);
    }
}

ALTCLIP_KERNEL_ENTRY inline void f32(const float* m, std::size_t n, std::size_t dim, const float* q, float* out) {
    rows(
        n, dim, q, out, [m, dim](std::size_t r, std::size_t i) { return _mm512_loadu_ps(m + r * dim + i); },
        [m, dim](std::size_t r, std::size_t i) { return m[r * dim + i]; });
}

ALTCLIP_KERNEL_ENTRY inline void f16(const std::uint16_t* m, std::size_t n, std::size_t dim, const float* q, float* out) {
    rows(
        n, dim, q, out,
        [m, dim](std::size_t r, std::size_t i) {
            return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + r * dim + i)));
        },
        [m, dim](std::size_t r, std::size_t i) { return half_to_float(m[r * dim + i]); });
}

}  // namespace altclip::kernels::scan::avx512
ALTCLIP_AVX512_END

ALTCLIP_AVX2_BEGIN
namespace altclip::kernels::scan::avx2 {

// 16 lanes as two registers (lo = lanes 0-7, hi = 8-15), so the sum order is the other levels'.
struct Acc {
    __m256 lo, hi;
};

inline float finish(const Acc& a, float tail) {
    alignas(32) float lanes[16];
    _mm256_store_ps(lanes, a.lo);
    _mm256_store_ps(lanes + 8, a.hi);
    return tree16(lanes) + tail;
}

template <class Load8, class Load1>
inline void rows(std::size_t rows, std::size_t dim, const float* q, float* out, Load8 load8, Load1 load1) {
    std::size_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        Acc a0{_mm256_setzero_ps(), _mm256_setzero_ps()}, a1 = a0;
        std::size_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            const __m256 qlo = _mm256_loadu_ps(q + i), qhi = _mm256_loadu_ps(q + i + 8);
            a0.lo = _mm256_fmadd_ps(qlo, load8(r, i), a0.lo);
            a0.hi = _mm256_fmadd_ps(qhi, load8(r, i + 8), a0.hi);
            a1.lo = _mm256_fmadd_ps(qlo, load8(r + 1, i), a1.lo);
            a1.hi = _mm256_fmadd_ps(qhi, load8(r + 1, i + 8), a1.hi);
        }
        float t0 = 0, t1 = 0;
        for (; i < dim; ++i) {
            t0 += q[i] * load1(r, i);
            t1 += q[i] * load1(r + 1, i);
        }
        out[r] = finish(a0, t0);
        out[r + 1] = finish(a1, t1);
    }
    for (; r < rows; ++r) {
        Acc a{_mm256_setzero_ps(), _mm256_setzero_ps()};
        std::size_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            a.lo = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(r, i), a.lo);
            a.hi = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8(r, i + 8), a.hi);
        }
        float t = 0;
        for (; i < dim; ++i) t += q[i] * load1(r, i);
        out[r] = finish(a, t);
    }
}

ALTCLIP_KERNEL_ENTRY inline void f32(const float* m, std::size_t n, std::size_t dim, const float* q, float* out) {
    rows(
        n, dim, q, out, [m, dim](std::size_t r, std::size_t i) { return _mm256_loadu_ps(m + r * dim + i); },
        [m, dim](std::size_t r, std::size_t i) { return m[r * dim + i]; });
}

ALTCLIP_KERNEL_ENTRY inline void f16(const std::uint16_t* m, std::size_t n, std::size_t dim, const float* q, float* out) {
    rows(
        n, dim, q, out,
        [m, dim](std::size_t r, std::size_t i) {
            return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(m + r * dim + i)));
        },
        [m, dim](std::size_t r, std::size_t i) { return half_to_float(m[r * dim + i]); });
}

}  // namespace altclip::kernels::scan::avx2
ALTCLIP_AVX2_END
#endif

namespace altclip::kernels::scan {

/// out[r] = dot(m[r, :], q) for float32 rows, with the kernels `isa` allows.
inline void dot_rows(const float* m, std::size_t rows, std::size_t dim, const float* q, float* out, Isa isa) {
#if ALTCLIP_X86
    if (isa >= Isa::avx512) return avx512::f32(m, rows, dim, q, out);
    if (isa >= Isa::avx2) return avx2::f32(m, rows, dim, q, out);
#else
    (void)isa;
#endif
    f32_portable(m, rows, dim, q, out);
}

/// out[r] = dot(widened m[r, :], q) for rows of IEEE half floats.
inline void dot_rows(const std::uint16_t* m, std::size_t rows, std::size_t dim, const float* q, float* out, Isa isa) {
#if ALTCLIP_X86
    if (isa >= Isa::avx512) return avx512::f16(m, rows, dim, q, out);
    if (isa >= Isa::avx2) return avx2::f16(m, rows, dim, q, out);
#else
    (void)isa;
#endif
    f16_portable(m, rows, dim, q, out);
}

}  // namespace altclip::kernels::scan
