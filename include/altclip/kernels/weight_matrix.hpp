// How a weight matrix is stored and multiplied (the kernels' view of a Linear weight).
#pragma once

#include <cstdint>

namespace altclip::kernels {

/// How a weight matrix is stored and multiplied.
enum class WeightType {
    f32,       // float32, used as stored
    bf16,      // bfloat16, widened to float32 inside the kernel: float32 math (exact on the rounded weights)
    bf16_dot,  // bfloat16, the activations rounded to bfloat16 too: AVX512_BF16 dot products, float32 sums
    q8,        // int8 with a float32 scale per row, widened to float32 inside the kernel
    q8_dot,    // int8 weights and int8 activations (per-row scale): AVX512_VNNI dot products, int32 sums
    q8_bf16,   // int8 weights; for many rows the activations rounded to bfloat16 and the weights widened
               // to bfloat16 (exactly) for AVX512_BF16 dot products, for few rows (or without
               // AVX512_BF16) as q8; the row scale applied to the float32 sums
};

/// Rows per panel of the panel layout (docs/format.md): the packed kernel's NR.
inline constexpr std::int64_t kPanelRows = 32;

/// The 32-bit unit that holds value (r, c) of a [rows, cols] matrix stored in panels, with
/// g values per unit: [ceil(rows / 32)][ceil(cols / g)][32] units, value c of row r in unit
/// c / g (part c % g) of lane r % 32.
inline std::int64_t panel_unit(std::int64_t r, std::int64_t c, std::int64_t cols, std::int64_t g) {
    return ((r / kPanelRows) * ((cols + g - 1) / g) + c / g) * kPanelRows + r % kPanelRows;
}

/// A [rows, cols] weight matrix (torch's Linear [out, in]), not owned: row-major, or (f32,
/// bf16, bf16_dot) in panels of 32 rows, [ceil(rows / 32)][units][32] 32-bit units of one
/// float32 or two bfloat16 along a row (panel_layout in tensor.hpp, docs/format.md).
struct WeightMatrix {
    WeightType type = WeightType::f32;
    const void* data = nullptr;
    std::int64_t rows = 0, cols = 0;
    const float* scale = nullptr;  // q8, q8_dot: [rows]
    bool panels = false;
};

}  // namespace altclip::kernels
