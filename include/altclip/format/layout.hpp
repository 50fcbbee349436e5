// The layouts a tensor is stored in (docs/format.md): row-major, or, for a weight matrix, the
// "panels" layout. This header is the one description of the panel layout in the code; the
// GEMM kernels read it (kernels/weight_matrix.hpp includes this, not the other way round).
//
// Panels: the matrix is [rows, cols] with rows = shape[0] and cols the product of the other
// dimensions. Its values are grouped into 32-bit units of G = 4 / dtype size consecutive
// values of a row (f32: 1, bf16: 2, the lower column first) and stored as
// [ceil(rows / P)][ceil(cols / G)][P] units: for each block of P rows, unit by unit along
// the row, the P rows' units side by side. Rows past `rows` and values past `cols` are zero.
// P is 64 in the layout "panels64" (format version 3: what tools/convert.py writes for bf16)
// and 32 in "panels" (what it writes for f32; version 2 files hold bf16 so too).
// Why: it is the order the packed GEMM's micro-kernel reads W in (its NR = 32 columns, two
// 16-lane vectors, are half of a 64-row panel), so a matrix stored so at conversion is
// multiplied in place, never repacked; and a bf16 matrix in 64-row panels with cols a multiple
// of 32 is, byte for byte, oneDNN's blocked weight layout BA16a64b2a (the [k, out] weights
// in blocks of 64 output columns, 16 pairs of k in each, pairs innermost), so the oneDNN path
// (kernels/onednn.hpp) uses it in place too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dtype.hpp"

namespace altclip {

/// Rows per panel (P) of the layout "panels64" (bf16 files).
inline constexpr std::int64_t kPanelRows = 64;
/// Rows per panel of the layout "panels" (f32 files; bf16 in format version 2 files).
inline constexpr std::int64_t kPanelRowsV2 = 32;

/// The 32-bit unit that holds value (r, c) of a [rows, cols] matrix stored in panels of `p`
/// rows, with g values per unit (value c of row r is in unit c / g, part c % g, of lane r % p).
inline std::int64_t panel_unit(std::int64_t r, std::int64_t c, std::int64_t cols, std::int64_t g,
                               std::int64_t p = kPanelRows) {
    return ((r / p) * ((cols + g - 1) / g) + c / g) * p + r % p;
}

/// The panel layout in terms of the file's element types.
namespace panel_layout {
/// Whether a dtype can be stored in panels (f32 and bf16).
inline bool allowed(DType t) { return t == DType::f32 || t == DType::bf16; }
/// Values per 32-bit unit (G).
inline std::int64_t group(DType t) { return 4 / static_cast<std::int64_t>(dtype_size(t)); }
/// Blocks of p rows holding `rows` (no overflow).
inline std::int64_t row_blocks(std::int64_t rows, std::int64_t p) { return rows / p + (rows % p != 0); }
/// Rows per panel of a layout name in a file's header, 0 for one that is not a panel layout.
inline std::int64_t rows_of(const std::string& layout) {
    return layout == "panels64" ? kPanelRows : layout == "panels" ? kPanelRowsV2 : 0;
}
/// Byte offset of value (r, c) in panels of p rows.
inline std::size_t offset(std::int64_t r, std::int64_t c, std::int64_t cols, DType t, std::int64_t p) {
    const std::int64_t unit = panel_unit(r, c, cols, group(t), p);
    return static_cast<std::size_t>(unit * 4 + (c % group(t)) * static_cast<std::int64_t>(dtype_size(t)));
}
}  // namespace panel_layout

}  // namespace altclip
