// The coefficients of the vector exp and erfc approximations (lanes.inc, compiled once per
// instruction set), in one place.
#pragma once

namespace altclip::kernels::approx {

/// e^r for |r| <= ln 2 / 2: 1 + r + r^2/2 + ... + r^6/720 (Horner, highest first); the
/// truncation error is below float rounding there.
inline constexpr float kExp[] = {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f};
/// ln 2 in two parts (the first exact in a float times any m below 2^12) and log2(e).
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kLog2e = 1.44269504088896341f;

/// erfc(z) ~ t P(t) e^{-z^2}, t = 1 / (1 + kErfcP z), z >= 0 (Abramowitz & Stegun 7.1.26,
/// |error| < 1.5e-7); P's coefficients highest first, the last multiplied by t too.
inline constexpr float kErfcP = 0.3275911f;
inline constexpr float kErfc[] = {1.061405429f, -1.453152027f, 1.421413741f, -0.284496736f, 0.254829592f};

}  // namespace altclip::kernels::approx
