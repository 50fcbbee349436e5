// The layouts a tensor is stored in (docs/format.md): row-major, or, for a weight matrix, the
// "panels" layout. This header is the one description of the panel layout in the code; the
// GEMM kernels read it (kernels/weight_matrix.hpp includes this, not the other way round).
//
// Panels: the matrix is [rows, cols] with rows = shape[0] and cols the product of the other
// dimensions. Its values are grouped into 32-bit units of G = 4 / dtype size consecutive
// values of a row (f32: 1, bf16: 2, the lower column first) and stored as
// [ceil(rows / 32)][ceil(cols / G)][32] units: for each block of 32 rows, unit by unit along
// the row, the 32 rows' units side by side. Rows past `rows` and values past `cols` are zero.
// Why: it is the order the packed GEMM's micro-kernel reads W in (32 = its NR, two 16-lane
// vectors), so a matrix stored so at conversion is multiplied in place, never repacked.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.hpp"

namespace altclip {

/// Rows per panel (the packed micro-kernel's NR; kernels/gemm_packed.hpp checks it).
inline constexpr std::int64_t kPanelRows = 32;

/// The 32-bit unit that holds value (r, c) of a [rows, cols] matrix stored in panels, with
/// g values per unit (value c of row r is in unit c / g, part c % g, of lane r % 32).
inline std::int64_t panel_unit(std::int64_t r, std::int64_t c, std::int64_t cols, std::int64_t g) {
    return ((r / kPanelRows) * ((cols + g - 1) / g) + c / g) * kPanelRows + r % kPanelRows;
}

/// The panel layout in terms of the file's element types.
namespace panel_layout {
inline constexpr std::int64_t kRows = kPanelRows;
/// Whether a dtype can be stored in panels (f32 and bf16).
inline bool allowed(DType t) { return t == DType::f32 || t == DType::bf16; }
/// Values per 32-bit unit (G).
inline std::int64_t group(DType t) { return 4 / static_cast<std::int64_t>(dtype_size(t)); }
inline std::int64_t row_blocks(std::int64_t rows) { return rows / kRows + (rows % kRows != 0); }  // no overflow
/// Byte offset of value (r, c).
inline std::size_t offset(std::int64_t r, std::int64_t c, std::int64_t cols, DType t) {
    const std::int64_t unit = panel_unit(r, c, cols, group(t));
    return static_cast<std::size_t>(unit * 4 + (c % group(t)) * static_cast<std::int64_t>(dtype_size(t)));
}
}  // namespace panel_layout

}  // namespace altclip
