// lanes.inc compiled for AVX-512: 16 float lanes in one register.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../format/dtype.hpp"
#include "activation.hpp"
#include "approx.hpp"
#include "cpu.hpp"

#if ALTCLIP_X86
#include <immintrin.h>

ALTCLIP_AVX512_BEGIN
namespace altclip::kernels::v512 {

struct Lanes {
    using F = __m512;
    static F set1(float v) { return _mm512_set1_ps(v); }
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static F load(const std::uint16_t* p) {  // IEEE half floats, widened
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static void store(float* p, F a) { _mm512_storeu_ps(p, a); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
    static F min(F a, F b) { return _mm512_min_ps(a, b); }
    static F max(F a, F b) { return _mm512_max_ps(a, b); }
    static F abs(F a) { return _mm512_abs_ps(a); }
    static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    /// p * 2^m for whole m (vscalefps: denormals and 0 below 2^-126, as the exact product).
    static F pow2(F p, F m) { return _mm512_scalef_ps(p, m); }
    /// if_pos where x > 0, else if_not.
    static F select_pos(F x, F if_not, F if_pos) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), if_not, if_pos);
    }
};

#include "lanes.inc"

/// An MLP's activation of 16 lanes, with the functions above (ops.hpp's passes use them too).
inline Lanes::F activate(Activation act, Lanes::F v) {
    switch (act) {
        case Activation::quick_gelu: return quick_gelu(v);
        case Activation::gelu_erf: return gelu(v);
        case Activation::none: break;
    }
    return v;
}

}  // namespace altclip::kernels::v512
ALTCLIP_AVX512_END
#endif  // ALTCLIP_X86
