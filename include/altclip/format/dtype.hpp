// Element types of the model file (docs/format.md): names, sizes and the exact widening of
// the 16-bit floats.
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace altclip {

enum class DType { f32, f16, bf16, i64, i32, u8, i8 };

inline const char* dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "f32";
        case DType::f16: return "f16";
        case DType::bf16: return "bf16";
        case DType::i64: return "i64";
        case DType::i32: return "i32";
        case DType::u8: return "u8";
        case DType::i8: return "i8";
    }
    return "?";
}

inline std::size_t dtype_size(DType t) {
    switch (t) {
        case DType::f32: return 4;
        case DType::f16: return 2;
        case DType::bf16: return 2;
        case DType::i64: return 8;
        case DType::i32: return 4;
        case DType::u8: return 1;
        case DType::i8: return 1;
    }
    return 0;
}

/// Parses a dtype name of docs/format.md; returns false for an unknown name.
inline bool parse_dtype(const std::string& s, DType& out) {
    static const struct { const char* name; DType t; } table[] = {
        {"f32", DType::f32}, {"f16", DType::f16}, {"bf16", DType::bf16},
        {"i64", DType::i64}, {"i32", DType::i32}, {"u8", DType::u8}, {"i8", DType::i8}};
    for (const auto& e : table) {
        if (s == e.name) {
            out = e.t;
            return true;
        }
    }
    return false;
}

inline bool is_float(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

/// IEEE binary16 bits -> float (exact).
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3FFu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

/// float -> IEEE binary16 bits, rounded to nearest even; beyond 65504 -> infinity, NaN stays NaN.
inline std::uint16_t float_to_half(float f) {
    std::uint32_t x = 0;
    std::memcpy(&x, &f, sizeof x);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return static_cast<std::uint16_t>(sign | (a > 0x7F800000u ? 0x7E00u : 0x7C00u));
    if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds past 65504
    if (a < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24 (exact in float, rounded by rint)
        float v = 0;
        std::memcpy(&v, &a, sizeof v);
        return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(v * 16777216.0f)));
    }
    std::uint32_t h = (((a >> 23) - 112) << 10) | ((a & 0x7FFFFFu) >> 13);
    const std::uint32_t rest = a & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
    return static_cast<std::uint16_t>(sign | h);
}

/// bfloat16 bits -> float (exact).
inline float bf16_to_float(std::uint16_t b) {
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

}  // namespace altclip
