// Numerical kernels on row-major float32 buffers. They know nothing about AltCLIP;
// each has a plain scalar twin in tests/test_kernels.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <Eigen/Core>

namespace altclip::kernels {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;
using ConstVectorMap = Eigen::Map<const Eigen::RowVectorXf>;

/// y[n, out] = x[n, in] . W[out, in]^T (+ b[out]), as torch.nn.functional.linear.
inline void linear(const float* x, std::int64_t n, std::int64_t in, const float* weight, const float* bias,
                   std::int64_t out, float* y) {
    ConstMatrixMap X(x, n, in);
    ConstMatrixMap W(weight, out, in);
    MatrixMap Y(y, n, out);
    Y.noalias() = X * W.transpose();
    if (bias != nullptr) Y.rowwise() += ConstVectorMap(bias, out);
}

/// LayerNorm over the last dimension (biased variance, eps inside the sqrt), as
/// torch.nn.LayerNorm. Statistics are accumulated in double. `y` may alias `x`.
inline void layer_norm(const float* x, std::int64_t rows, std::int64_t n, const float* gamma, const float* beta,
                       float eps, float* y) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += xr[i];
        const double mean = sum / static_cast<double>(n);
        double sq = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const double d = xr[i] - mean;
            sq += d * d;
        }
        const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(n) + static_cast<double>(eps));
        for (std::int64_t i = 0; i < n; ++i) {
            yr[i] = static_cast<float>((xr[i] - mean) * rstd) * gamma[i] + beta[i];
        }
    }
}

/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (torch's default "gelu"), in place.
inline void gelu_erf(float* x, std::int64_t count) {
    const float inv_sqrt2 = 0.70710678118654752f;
    for (std::int64_t i = 0; i < count; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * inv_sqrt2));
}

/// CLIP's quick_gelu, x * sigmoid(1.702 x), in place.
inline void quick_gelu(float* x, std::int64_t count) {
    for (std::int64_t i = 0; i < count; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
}

/// Softmax over each row of a [rows, n] buffer, in place (max-subtracted).
inline void softmax_rows(float* x, std::int64_t rows, std::int64_t n) {
    for (std::int64_t r = 0; r < rows; ++r) {
        float* xr = x + r * n;
        float m = -std::numeric_limits<float>::infinity();
        for (std::int64_t i = 0; i < n; ++i) m = std::max(m, xr[i]);
        if (m == -std::numeric_limits<float>::infinity()) m = 0;  // every key masked
        float s = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            xr[i] = std::exp(xr[i] - m);
            s += xr[i];
        }
        const float inv = s > 0 ? 1.0f / s : 0.0f;
        for (std::int64_t i = 0; i < n; ++i) xr[i] *= inv;
    }
}

/// Multi-head scaled dot-product attention for one sequence.
/// q, k, v, out: [seq, heads * head_dim] row-major (heads side by side, as the reference's
/// view(..., heads, head_dim)). `key_mask`: nullptr, or [seq] with 1 for keys to attend
/// and 0 for padding (their scores become -inf before the softmax).
/// `scores`: scratch of at least seq * seq floats.
inline void attention(const float* q, const float* k, const float* v, std::int64_t seq, std::int64_t heads,
                      std::int64_t head_dim, const std::int64_t* key_mask, float* scores, float* out) {
    const std::int64_t width = heads * head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    using Strided = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
    using StridedOut = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
    MatrixMap S(scores, seq, seq);
    for (std::int64_t h = 0; h < heads; ++h) {
        Strided Q(q + h * head_dim, seq, head_dim, Eigen::OuterStride<>(width));
        Strided K(k + h * head_dim, seq, head_dim, Eigen::OuterStride<>(width));
        Strided V(v + h * head_dim, seq, head_dim, Eigen::OuterStride<>(width));
        StridedOut O(out + h * head_dim, seq, head_dim, Eigen::OuterStride<>(width));
        S.noalias() = (Q * K.transpose()) * scale;
        if (key_mask != nullptr) {
            for (std::int64_t j = 0; j < seq; ++j) {
                if (key_mask[j] == 0) S.col(j).setConstant(-std::numeric_limits<float>::infinity());
            }
        }
        softmax_rows(scores, seq, seq);
        O.noalias() = S * V;
    }
}

}  // namespace altclip::kernels
