// The self-attention both towers share: q/k/v projections over every row of the batch,
// then scaled dot-product attention per sequence. (AltCLIPAttention and
// AltRobertaSelfAttention differ only in names and in the padding mask.)
#pragma once

#include <cstdint>
#include <vector>

#include "../kernels/ops.hpp"
#include "weights.hpp"

namespace altclip::detail {

/// x: [batch * seq, hidden]; key_mask: nullptr or [batch, seq] (1 = attend);
/// ctx: [batch * seq, hidden], the heads' outputs side by side (before the output projection).
inline void self_attention(const float* x, std::int64_t batch, std::int64_t seq, const LinearParams& query,
                           const LinearParams& key, const LinearParams& value, std::int64_t heads,
                           const std::int64_t* key_mask, float* ctx) {
    const std::int64_t rows = batch * seq, hidden = query.out;
    std::vector<float> q(rows * hidden), k(rows * hidden), v(rows * hidden), scores(seq * seq);
    kernels::linear(x, rows, query.in, query.weight, query.bias, hidden, q.data());
    kernels::linear(x, rows, key.in, key.weight, key.bias, hidden, k.data());
    kernels::linear(x, rows, value.in, value.weight, value.bias, hidden, v.data());
    for (std::int64_t b = 0; b < batch; ++b) {
        const std::int64_t off = b * seq * hidden;
        kernels::attention(q.data() + off, k.data() + off, v.data() + off, seq, heads, hidden / heads,
                           key_mask != nullptr ? key_mask + b * seq : nullptr, scores.data(), ctx + off);
    }
}

}  // namespace altclip::detail
