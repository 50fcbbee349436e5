// The self-attention both towers share: q/k/v projections over every row of the batch,
// then scaled dot-product attention per sequence. (AltCLIPAttention and
// AltRobertaSelfAttention differ only in names and in the padding mask.)
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/eigen.hpp"  // before the kernels include Eigen
#include "../kernels/buffer.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/ops.hpp"
#include "scratch_slots.hpp"
#include "weights.hpp"

namespace altclip::detail {

/// x: [batch * seq, hidden]; key_mask: nullptr or [batch, seq] (1 = attend);
/// ctx: [batch * seq, hidden], the heads' outputs side by side (before the output projection).
/// With `starts` ([batch + 1]), the sequences are packed back to back instead, sequence b in
/// rows [starts[b], starts[b + 1]) (seq and key_mask are then unused). With `norm`, the
/// attention of layer_norm(x) (a pre-LN layer's, normalized as the projections read x).
inline void self_attention(const float* x, std::int64_t batch, std::int64_t seq, const LinearParams& query,
                           const LinearParams& key, const LinearParams& value, std::int64_t heads,
                           const std::int64_t* key_mask, float* ctx, kernels::Scratch& scratch,
                           kernels::ThreadPool* pool, const std::int64_t* starts = nullptr,
                           const kernels::RowNorm* norm = nullptr) {
    const std::int64_t rows = starts != nullptr ? starts[batch] : batch * seq, hidden = query.out;
    float* q = scratch.get(kSlotQ, rows * hidden);
    float* k = scratch.get(kSlotK, rows * hidden);
    float* v = scratch.get(kSlotV, rows * hidden);
    kernels::Workspace& ws = scratch.workspace();
    const kernels::Product qkv[3] = {{&query.weight, query.bias, hidden, q},
                                     {&key.weight, key.bias, hidden, k},
                                     {&value.weight, value.bias, hidden, v}};
    kernels::linear_many(x, rows, query.in, qkv, 3, pool, ws, norm);  // x rounded once for the three where it can be
    const kernels::AttentionMath math = kernels::attention_math(query.weight.type);
    if (starts != nullptr)
        kernels::attention_packed(q, k, v, starts, batch, heads, hidden / heads, ctx, pool, ws, math);
    else
        kernels::attention(q, k, v, batch, seq, heads, hidden / heads, key_mask, ctx, pool, ws, math);
}

}  // namespace altclip::detail
