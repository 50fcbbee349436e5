// How a weight matrix is stored and multiplied (the kernels' view of a Linear weight).
#pragma once

#include <cstdint>

#include "../format/layout.hpp"  // kPanelRows, panel_unit: the file format owns the panel layout
#include "activation.hpp"

namespace altclip::kernels {

namespace onednn {
struct PackedWeight;  // onednn.hpp
}
namespace amx {
struct PackedS8;    // amx_gemm.hpp
struct PackedBf16;  // amx_gemm.hpp
}

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

/// A [rows, cols] weight matrix (torch's Linear [out, in]), not owned: row-major, or (f32,
/// bf16, bf16_dot) in the panel layout (format/layout.hpp).
struct WeightMatrix {
    WeightType type = WeightType::f32;
    const void* data = nullptr;
    std::int64_t rows = 0, cols = 0;
    const float* scale = nullptr;  // q8, q8_dot: [rows]
    bool panels = false;
    std::int64_t panel_rows = kPanelRows;  // rows per panel when `panels` (64; 32 from version 2 files)
    /// Set when this model multiplies the matrix through oneDNN (onednn.hpp): its copy in
    /// oneDNN's layout, which linear() then uses instead of `data`.
    const onednn::PackedWeight* onednn = nullptr;
    /// Set when this model multiplies the (ViT's, q8_dot) int8 matrix on AMX tiles
    /// (amx_gemm.hpp): its copy in the tiles' layout, which linear() then uses.
    const amx::PackedS8* amx_s8 = nullptr;
    /// Set when this model multiplies the (ViT's, bf16_dot) bfloat16 matrix on AMX tiles from a
    /// copy in 16-row panels (amx_gemm.hpp), which linear() then uses for any number of rows.
    const amx::PackedBf16* amx_bf16 = nullptr;
};

/// One product of linear_many: y [n, out] = x . W^T + bias, or with `add` y += that (a
/// residual connection, h = h + layer(x)).
struct Product {
    const WeightMatrix* weight = nullptr;
    const float* bias = nullptr;
    std::int64_t out = 0;
    float* y = nullptr;
    bool add = false;
    Activation act = Activation::none;  // an MLP's activation (not with add)
};

/// A LayerNorm applied to the rows of a product's x as they are read (linear_many, the AMX
/// kernels, the AVX2 packing): the products of layer_norm(x), without a pass writing the
/// normalized rows.
struct RowNorm {
    const float* gamma = nullptr;
    const float* beta = nullptr;
    float eps = 0;
};

}  // namespace altclip::kernels
