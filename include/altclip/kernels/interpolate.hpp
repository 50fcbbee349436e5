// torch.nn.functional.interpolate(mode="bicubic", align_corners=False) on a channels-last
// grid, as ATen's upsample_bicubic2d computes it (cubic convolution with A = -0.75,
// source index scale * (dst + 0.5) - 0.5, border indices clamped, x pass then y pass).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace altclip::kernels {

namespace detail {
inline void cubic_coefficients(float t, float c[4]) {
    const float A = -0.75f;
    auto near = [A](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };          // |x| <= 1
    auto far = [A](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };    // 1 < |x| < 2
    c[0] = far(t + 1);
    c[1] = near(t);
    c[2] = near(1 - t);
    c[3] = far(2 - t);
}
}  // namespace detail

/// in: [in_h, in_w, channels]; out: [out_h, out_w, channels].
inline void bicubic_resize_channels_last(const float* in, std::int64_t in_h, std::int64_t in_w,
                                         std::int64_t channels, float* out, std::int64_t out_h,
                                         std::int64_t out_w) {
    const float sy = static_cast<float>(in_h) / static_cast<float>(out_h);
    const float sx = static_cast<float>(in_w) / static_cast<float>(out_w);
    auto clampi = [](std::int64_t v, std::int64_t hi) { return std::min<std::int64_t>(std::max<std::int64_t>(v, 0), hi - 1); };
    for (std::int64_t oy = 0; oy < out_h; ++oy) {
        const float ry = sy * (static_cast<float>(oy) + 0.5f) - 0.5f;
        const std::int64_t iy = static_cast<std::int64_t>(std::floor(ry));
        float cy[4];
        detail::cubic_coefficients(ry - static_cast<float>(iy), cy);
        for (std::int64_t ox = 0; ox < out_w; ++ox) {
            const float rx = sx * (static_cast<float>(ox) + 0.5f) - 0.5f;
            const std::int64_t ix = static_cast<std::int64_t>(std::floor(rx));
            float cx[4];
            detail::cubic_coefficients(rx - static_cast<float>(ix), cx);
            float* o = out + (oy * out_w + ox) * channels;
            for (std::int64_t c = 0; c < channels; ++c) {
                float rows[4];
                for (int k = 0; k < 4; ++k) {
                    const float* row = in + clampi(iy - 1 + k, in_h) * in_w * channels;
                    rows[k] = row[clampi(ix - 1, in_w) * channels + c] * cx[0] +
                              row[clampi(ix, in_w) * channels + c] * cx[1] +
                              row[clampi(ix + 1, in_w) * channels + c] * cx[2] +
                              row[clampi(ix + 2, in_w) * channels + c] * cx[3];
                }
                o[c] = rows[0] * cy[0] + rows[1] * cy[1] + rows[2] * cy[2] + rows[3] * cy[3];
            }
        }
    }
}

}  // namespace altclip::kernels
