// lanes.inc compiled for AVX2 + FMA + F16C: 16 float lanes in two registers (lanes 0-7,
// 8-15), so the sums run in the AVX-512 kernels' order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../format/dtype.hpp"
#include "approx.hpp"
#include "cpu.hpp"

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AVX2_BEGIN
namespace altclip::kernels::v256 {

struct Lanes {
    struct F {
        __m256 lo, hi;
    };
    static F set1(float v) { return {_mm256_set1_ps(v), _mm256_set1_ps(v)}; }
    static F load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
    static F load(const std::uint16_t* p) {  // IEEE half floats, widened
        return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
    }
    static void store(float* p, F a) {
        _mm256_storeu_ps(p, a.lo);
        _mm256_storeu_ps(p + 8, a.hi);
    }
    static F add(F a, F b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
    static F sub(F a, F b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
    static F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
    static F div(F a, F b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
    static F min(F a, F b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
    static F max(F a, F b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
    static F fmadd(F a, F b, F c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
    static F fnmadd(F a, F b, F c) { return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)}; }
    static F abs(F a) {
        const __m256 sign = _mm256_set1_ps(-0.0f);
        return {_mm256_andnot_ps(sign, a.lo), _mm256_andnot_ps(sign, a.hi)};
    }
    static F round(F a) {
        constexpr int kMode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        return {_mm256_round_ps(a.lo, kMode), _mm256_round_ps(a.hi, kMode)};
    }
    /// p * 2^m for whole m in [-151, 128], 2^m made in the exponent bits: 0 where m < -126
    /// (AVX-512's vscalefps gives a denormal there, below 1.2e-38), inf at m = 128.
    static F pow2(F p, F m) { return {pow2(p.lo, m.lo), pow2(p.hi, m.hi)}; }
    static __m256 pow2(__m256 p, __m256 m) {
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
        const __m256 tiny = _mm256_cmp_ps(m, _mm256_set1_ps(-126.0f), _CMP_LT_OQ);
        return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
    }
    static F select_pos(F x, F if_not, F if_pos) {
        const __m256 zero = _mm256_setzero_ps();
        return {_mm256_blendv_ps(if_not.lo, if_pos.lo, _mm256_cmp_ps(x.lo, zero, _CMP_GT_OQ)),
                _mm256_blendv_ps(if_not.hi, if_pos.hi, _mm256_cmp_ps(x.hi, zero, _CMP_GT_OQ))};
    }
};

#include "lanes.inc"

}  // namespace altclip::kernels::v256
ALTCLIP_AVX2_END
#endif  // ALTCLIP_X86
