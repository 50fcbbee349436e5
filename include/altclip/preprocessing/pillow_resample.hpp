// Pillow's bicubic resize of 8-bit images, reproduced bit for bit.
//
// Mirrors Pillow 13.0 src/libImaging/Resample.c (coefficients and 8-bit passes as in 9.x):
// `precompute_coeffs` (double), `normalize_coeffs_8bpc` (PRECISION_BITS 22),
// `ImagingResampleHorizontal_8bpc` / `ImagingResampleVertical_8bpc` and
// `ImagingResampleInner` (two passes through an 8-bit intermediate; horizontal first over
// only the rows the vertical pass reads, unless the height shrinks by more than twice as
// many pixels as the width - Pillow 13 - then vertical first; a pass whose size is
// unchanged is skipped). `Image.resize(size, BICUBIC, reducing_gap=None)` - what transformers calls -
// goes straight to this with box = (0, 0, w, h): no `reduce()` pre-step.
// Knows nothing about AltCLIP.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace altclip {
namespace detail {

// Pillow's double arithmetic is compiled without FMA; with -march=native a compiler may
// fuse a*b+c, which changes the last bit of a coefficient and, rarely, an output byte.
// Storing through a volatile forces every product to be rounded on its own.
inline double rounded(double v) {
    volatile double r = v;
    return r;
}

/// Pillow's `bicubic_filter` (a = -0.5), operation for operation.
inline double pillow_bicubic_kernel(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) {
        // ((a + 2.0) * x - (a + 3.0)) * x * x + 1
        double t = rounded((a + 2.0) * x) - (a + 3.0);
        t = rounded(rounded(t * x) * x);
        return t + 1;
    }
    if (x < 2.0) {
        // (((x - 5) * x + 8) * x - 4) * a
        double t = rounded((x - 5) * x) + 8;
        t = rounded(t * x) - 4;
        return t * a;
    }
    return 0.0;
}

inline constexpr int kPillowPrecisionBits = 32 - 8 - 2;  // Resample.c PRECISION_BITS

/// Fixed-point coefficients of one axis: output i reads inputs [start[i], start[i]+count[i])
/// with weights coeff[i * ksize + j].
struct ResampleCoeffs {
    int ksize = 0;
    std::vector<int> start, count;
    std::vector<std::int32_t> coeff;
};

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for box [0, in_size).
inline ResampleCoeffs pillow_bicubic_coeffs(int in_size, int out_size) {
    constexpr double support_unscaled = 2.0;  // BICUBIC.support
    // Pillow: scale = (double)(in1 - in0) / outSize with in0, in1 floats (exact here).
    const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = support_unscaled * filterscale;
    ResampleCoeffs c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.start.resize(out_size);
    c.count.resize(out_size);
    c.coeff.assign(static_cast<std::size_t>(out_size) * c.ksize, 0);
    std::vector<double> k(c.ksize);
    const double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = 0.0 + rounded((xx + 0.5) * scale);
        double ww = 0.0;
        int xmin = static_cast<int>(center - support + 0.5);  // truncation, as the C cast
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; ++x) {
            const double w = pillow_bicubic_kernel((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; ++x) {
            if (ww != 0.0) k[x] /= ww;
        }
        for (int x = 0; x < xmax; ++x) {
            const double v = k[x] * (1 << kPillowPrecisionBits);  // power of two: exact
            c.coeff[static_cast<std::size_t>(xx) * c.ksize + x] =
                static_cast<std::int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
        }
        c.start[xx] = xmin;
        c.count[xx] = xmax;
    }
    return c;
}

/// Pillow's clip8: (acc >> PRECISION_BITS) clamped to [0, 255] (arithmetic shift).
inline std::uint8_t pillow_clip8(std::int32_t acc) {
    const std::int32_t v = acc >> kPillowPrecisionBits;
    return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

/// Horizontal pass (`ImagingResampleHorizontal_8bpc`): rows [row0, row0 + rows) of `src`
/// (width `in_w`) -> `rows` rows of width out_w.
inline std::vector<std::uint8_t> pillow_pass_horizontal(const std::uint8_t* src, int in_w, int row0, int rows,
                                                        std::size_t C, const ResampleCoeffs& hor, int out_w) {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(out_w) * rows * C);
    for (int yy = 0; yy < rows; ++yy) {
        const std::uint8_t* srow = src + static_cast<std::size_t>(yy + row0) * in_w * C;
        std::uint8_t* drow = out.data() + static_cast<std::size_t>(yy) * out_w * C;
        for (int xx = 0; xx < out_w; ++xx) {
            const std::int32_t* k = hor.coeff.data() + static_cast<std::size_t>(xx) * hor.ksize;
            const int xmin = hor.start[xx], xmax = hor.count[xx];
            for (std::size_t ch = 0; ch < C; ++ch) {
                std::int32_t acc = 1 << (kPillowPrecisionBits - 1);
                for (int x = 0; x < xmax; ++x) acc += srow[(x + xmin) * C + ch] * k[x];
                drow[xx * C + ch] = pillow_clip8(acc);
            }
        }
    }
    return out;
}

/// Vertical pass (`ImagingResampleVertical_8bpc`): `src` (width w) whose row 0 is source
/// row `row_offset` -> out_h rows.
inline std::vector<std::uint8_t> pillow_pass_vertical(const std::uint8_t* src, int w, int row_offset,
                                                      std::size_t C, const ResampleCoeffs& vert, int out_h) {
    const std::size_t stride = static_cast<std::size_t>(w) * C;
    std::vector<std::uint8_t> out(stride * out_h);
    std::vector<std::int32_t> acc;
    for (int yy = 0; yy < out_h; ++yy) {
        const std::int32_t* k = vert.coeff.data() + static_cast<std::size_t>(yy) * vert.ksize;
        const int ymin = vert.start[yy] - row_offset, ymax = vert.count[yy];
        // Same integer sums as Pillow's per-pixel loop, accumulated row by row.
        acc.assign(stride, 1 << (kPillowPrecisionBits - 1));
        for (int y = 0; y < ymax; ++y) {
            const std::uint8_t* srow = src + static_cast<std::size_t>(y + ymin) * stride;
            const std::int32_t ky = k[y];
            for (std::size_t i = 0; i < stride; ++i) acc[i] += srow[i] * ky;
        }
        std::uint8_t* drow = out.data() + static_cast<std::size_t>(yy) * stride;
        for (std::size_t i = 0; i < stride; ++i) drow[i] = pillow_clip8(acc[i]);
    }
    return out;
}

/// Resizes an interleaved 8-bit image with `channels` channels (1..4) exactly as Pillow's
/// `Image.resize((out_w, out_h), Image.BICUBIC)` does. Returns out_w * out_h * channels bytes.
inline std::vector<std::uint8_t> pillow_resize_bicubic(const std::uint8_t* src, int width, int height,
                                                       int channels, int out_w, int out_h) {
    const std::size_t C = static_cast<std::size_t>(channels);
    if (out_w == width && out_h == height) {  // Image.resize returns a copy
        return std::vector<std::uint8_t>(src, src + static_cast<std::size_t>(width) * height * C);
    }
    const bool need_horizontal = out_w != width;
    const bool need_vertical = out_h != height;
    // Pillow 13 (PR #9549): "If height is being scaled down more than twice the amount the
    // width is, run the vertical pass first". Integer differences, as in Resample.c.
    // Pillow <= 12 always ran the horizontal pass first; the 8-bit intermediate makes the
    // order visible in the output.
    const bool horizontal_first = !((height - out_h) > 0 && (height - out_h) > (width - out_w) * 2);

    if (horizontal_first) {
        if (!need_vertical) {
            return pillow_pass_horizontal(src, width, 0, height, C, pillow_bicubic_coeffs(width, out_w), out_w);
        }
        const ResampleCoeffs vert = pillow_bicubic_coeffs(height, out_h);
        if (!need_horizontal) return pillow_pass_vertical(src, width, 0, C, vert, out_h);
        // Horizontal pass over only the source rows the vertical pass reads.
        const int ybox_first = vert.start[0];
        const int ybox_last = vert.start[out_h - 1] + vert.count[out_h - 1];
        const auto temp = pillow_pass_horizontal(src, width, ybox_first, ybox_last - ybox_first, C,
                                                 pillow_bicubic_coeffs(width, out_w), out_w);
        return pillow_pass_vertical(temp.data(), out_w, ybox_first, C, vert, out_h);
    }
    // Vertical first (need_vertical holds here).
    const auto temp = pillow_pass_vertical(src, width, 0, C, pillow_bicubic_coeffs(height, out_h), out_h);
    if (!need_horizontal) return temp;
    return pillow_pass_horizontal(temp.data(), width, 0, out_h, C, pillow_bicubic_coeffs(width, out_w), out_w);
}

}  // namespace detail
}  // namespace altclip
