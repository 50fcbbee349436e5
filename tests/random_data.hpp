// Test data shared by the kernel tests: normal random vectors and float -> bfloat16 rounding.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace altclip_test {

/// n values from N(0, 1), the same for the same seed.
inline std::vector<float> randn(std::size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d;
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

/// float -> bfloat16 bits, rounded to nearest even.
inline std::uint16_t to_bf16(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    return static_cast<std::uint16_t>((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

/// bfloat16 bits -> float (exact).
inline float from_bf16(std::uint16_t h) {
    const std::uint32_t b = std::uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

}  // namespace altclip_test
