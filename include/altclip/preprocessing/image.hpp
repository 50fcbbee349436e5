// altclip: image decoding (stb_image) and conversion to RGB the way the reference sees it.
//
// The reference feeds `PIL.Image.open(f)` to transformers' CLIPImageProcessor, whose first
// step (`transformers.image_transforms.convert_to_rgb`, transformers 5.x) is:
//     has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
//     if has_alpha: alpha_composite(white, image.convert("RGBA")).convert("RGB")
//     else:         image.convert("RGB")
// So an `Image` keeps two things: `rgb`, equal to Pillow's `convert("RGB")` (alpha simply
// dropped), and `alpha`, equal to the alpha band of `convert("RGBA")` when the source has an
// alpha band or a transparency entry (empty otherwise). `composite_on_white()` then gives
// what the processor uses, bit for bit (Pillow's AlphaComposite.c integer arithmetic).
//
// Mode by mode (checked against Pillow 13 by tools/make_image_reference.py and
// tests/test_image_processor.cpp):
//   L, 1-bit, 2/4-bit grey -> grey replicated (stb scales low bit depths like Pillow);
//   LA, RGBA               -> colour kept, alpha kept in `alpha`;
//   P (PNG palette), with or without tRNS -> palette looked up, tRNS alpha kept;
//   16-bit RGB / RGBA / grey+alpha PNG -> high byte (Pillow's "RGB;16B"; stb's 16->8 is >> 8);
//   16-bit grey PNG ("I;16") -> Pillow *saturates*: min(v, 255), and ignores tRNS there.
//     stb's 8-bit path would give v >> 8, so this case is read with stbi_load_16_from_memory.
// Known differences from Pillow (each has a test that shows it):
//   - JPEG: stb_image's IDCT/upsampling differ from libjpeg-turbo by a few levels.
//   - GIF: stb leaves transparent pixels (0,0,0) with alpha 0 where Pillow's convert("RGB")
//     shows the palette colour; after compositing on white (what the processor uses) both
//     give white, so pixel_values agree.
//   - CMYK JPEG: stb's CMYK->RGB formula differs from Pillow's.
//   - 32-bit BMP without an alpha mask: stb reads the 4th byte as alpha unless it is all 0;
//     Pillow ignores it (BGRX).
//   - Formats Pillow does not read at all (Radiance HDR, PIC) are decoded by stb anyway.
// EXIF orientation is ignored, as `Image.open` ignores it.
//
// stb's global settings (flip on load, iPhone PNG, unpremultiply) are never touched; the
// library assumes their defaults. Decoding is thread-safe: libstb keeps its failure reason
// in thread-local storage and every call here owns its buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <stb/stb_image.h>

#include "../errors.hpp"
#include "../format/read_file.hpp"
#include "../limits.hpp"  // kMaxImagePixels, kMaxImageSide

namespace altclip {


/// An 8-bit RGB image, interleaved, row-major, no padding: rgb.size() == width*height*3.
/// `alpha` is empty for an opaque image, else width*height bytes (see the file comment).
struct Image {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb;
    std::vector<std::uint8_t> alpha;

    bool has_alpha() const { return !alpha.empty(); }
};

namespace detail {

inline void check_image_dimensions(std::int64_t width, std::int64_t height, const std::string& name) {
    if (width <= 0 || height <= 0) {
        throw ImageError(name + ": zero-size image (" + std::to_string(width) + "x" +
                         std::to_string(height) + "); the image has no pixels to process");
    }
    if (width > kMaxImageSide || height > kMaxImageSide || width * height > kMaxImagePixels) {
        throw ImageError(name + ": image too large (" + std::to_string(width) + "x" +
                         std::to_string(height) + " pixels; the limit is " +
                         std::to_string(kMaxImageSide) + " per side and " +
                         std::to_string(kMaxImagePixels) +
                         " pixels in all); downscale it first, or the header is corrupt");
    }
}

inline std::string stb_reason() {
    const char* r = stbi_failure_reason();
    return r ? std::string(r) : std::string("unknown reason");
}

/// Width and height from a PNG's IHDR chunk; false if `p` does not start like a PNG.
inline bool png_ihdr_size(const unsigned char* p, std::size_t size, std::int64_t& w, std::int64_t& h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 24) return false;
    for (int i = 0; i < 8; ++i) {
        if (p[i] != sig[i]) return false;
    }
    if (p[12] != 'I' || p[13] != 'H' || p[14] != 'D' || p[15] != 'R') return false;
    auto be32 = [&](std::size_t at) {
        return std::int64_t(p[at]) << 24 | std::int64_t(p[at + 1]) << 16 | std::int64_t(p[at + 2]) << 8 |
               std::int64_t(p[at + 3]);
    };
    w = be32(16);
    h = be32(20);
    return true;
}

struct StbFree {
    void operator()(void* p) const { stbi_image_free(p); }
};

/// Pillow's ImagingAlphaComposite (AlphaComposite.c, PRECISION_BITS 7) for an opaque
/// white destination: one colour value `c` of a source pixel with alpha `a`.
inline std::uint8_t composite_over_white(std::uint32_t c, std::uint32_t a) {
    if (a == 0) return 255;
    const std::uint32_t blend = 255u * (255u - a);              // dst.a * (255 - src.a)
    const std::uint32_t outa255 = a * 255u + blend;              // == 255 * 255 here
    const std::uint32_t coef1 = a * 255u * 255u * 128u / outa255;
    const std::uint32_t coef2 = 255u * 128u - coef1;
    const std::uint32_t tmp = c * coef1 + 255u * coef2 + (0x80u << 7);
    return static_cast<std::uint8_t>((((tmp >> 8) + tmp) >> 8) >> 7);  // SHIFTFORDIV255 >> 7
}

}  // namespace detail

/// Builds an Image from caller-decoded pixels: `channels` 1 (grey), 3 (RGB) or 4 (RGBA,
/// alpha kept for compositing); `row_stride_bytes` 0 means tightly packed rows.
inline Image image_from_pixels(const std::uint8_t* data, int width, int height, int channels,
                               std::ptrdiff_t row_stride_bytes = 0) {
    const std::string name = "image_from_pixels";
    if (channels != 1 && channels != 3 && channels != 4) {
        throw InvalidArgument(name + ": channels must be 1, 3 or 4, got " + std::to_string(channels));
    }
    detail::check_image_dimensions(width, height, name);
    if (data == nullptr) throw InvalidArgument(name + ": data is null");
    const std::ptrdiff_t packed = static_cast<std::ptrdiff_t>(width) * channels;
    if (row_stride_bytes == 0) row_stride_bytes = packed;
    if (row_stride_bytes < packed) {
        throw InvalidArgument(name + ": row_stride_bytes " + std::to_string(row_stride_bytes) +
                              " is smaller than width * channels = " + std::to_string(packed));
    }
    Image img;
    img.width = width;
    img.height = height;
    const std::size_t n = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    img.rgb.resize(n * 3);
    if (channels == 4) img.alpha.resize(n);
    for (int y = 0; y < height; ++y) {
        const std::uint8_t* row = data + y * row_stride_bytes;
        std::uint8_t* out = img.rgb.data() + static_cast<std::size_t>(y) * width * 3;
        for (int x = 0; x < width; ++x) {
            const std::uint8_t* px = row + static_cast<std::ptrdiff_t>(x) * channels;
            if (channels == 1) {
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = px[0];
            } else {
                out[3 * x] = px[0];
                out[3 * x + 1] = px[1];
                out[3 * x + 2] = px[2];
                if (channels == 4) img.alpha[static_cast<std::size_t>(y) * width + x] = px[3];
            }
        }
    }
    return img;
}

/// What the reference processor sees after `convert_to_rgb`: the RGB of `image` composited
/// on opaque white with Pillow's arithmetic if it has alpha, else `image.rgb` unchanged.
inline std::vector<std::uint8_t> composite_on_white(const Image& image) {
    if (!image.has_alpha()) return image.rgb;
    std::vector<std::uint8_t> out(image.rgb.size());
    const std::size_t n = image.alpha.size();
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t a = image.alpha[i];
        for (int c = 0; c < 3; ++c) out[3 * i + c] = detail::composite_over_white(image.rgb[3 * i + c], a);
    }
    return out;
}

/// Decodes an encoded image held in memory (JPEG, PNG, BMP, GIF first frame, TGA, PSD, PNM,
/// HDR, PIC: whatever stb_image reads). `name` is used in error messages. Throws ImageError.
inline Image decode_image(const void* bytes, std::size_t size, const std::string& name) {
    if (bytes == nullptr || size == 0) {
        throw ImageError(name + ": empty image file (0 bytes); check that it was written completely");
    }
    if (size > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw ImageError(name + ": image file too large (" + std::to_string(size) +
                         " bytes; stb_image reads at most 2 GiB)");
    }
    const auto* p = static_cast<const stbi_uc*>(bytes);
    const int len = static_cast<int>(size);
    int w = 0, h = 0, comp = 0;
    // Header only: the size is checked before any pixel buffer is allocated.
    if (!stbi_info_from_memory(p, len, &w, &h, &comp)) {
        // stb's PNG header scan itself refuses images over 2^30 bytes, with a misleading
        // "unknown image type"; read the IHDR size to say what is really wrong.
        std::int64_t pw = 0, ph = 0;
        if (detail::png_ihdr_size(p, size, pw, ph)) detail::check_image_dimensions(pw, ph, name);
        throw ImageError(name + ": not a decodable image (stb_image: " + detail::stb_reason() +
                         "); supported formats are JPEG, PNG, BMP, GIF, TGA, PSD, PNM and HDR");
    }
    detail::check_image_dimensions(w, h, name);

    int dw = 0, dh = 0, n = 0;
    if (comp == 1 && stbi_is_16_bit_from_memory(p, len)) {
        // 16-bit grey ("I;16"): Pillow's convert saturates at 255 (and ignores tRNS).
        std::unique_ptr<stbi_us, detail::StbFree> px(stbi_load_16_from_memory(p, len, &dw, &dh, &n, 1));
        if (!px) {
            throw ImageError(name + ": corrupt or truncated image (stb_image: " + detail::stb_reason() + ")");
        }
        detail::check_image_dimensions(dw, dh, name);
        const std::size_t count = static_cast<std::size_t>(dw) * static_cast<std::size_t>(dh);
        std::vector<std::uint8_t> grey(count);
        for (std::size_t i = 0; i < count; ++i) {
            grey[i] = static_cast<std::uint8_t>(px.get()[i] > 255 ? 255 : px.get()[i]);
        }
        return image_from_pixels(grey.data(), dw, dh, 1);
    }

    std::unique_ptr<stbi_uc, detail::StbFree> px(stbi_load_from_memory(p, len, &dw, &dh, &n, 0));
    if (!px) {
        throw ImageError(name + ": corrupt or truncated image (stb_image: " + detail::stb_reason() + ")");
    }
    detail::check_image_dimensions(dw, dh, name);
    Image img;
    if (n == 2) {  // grey + alpha
        const std::size_t count = static_cast<std::size_t>(dw) * static_cast<std::size_t>(dh);
        img.width = dw;
        img.height = dh;
        img.rgb.resize(count * 3);
        img.alpha.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = px.get()[2 * i];
            img.alpha[i] = px.get()[2 * i + 1];
        }
    } else if (n == 1 || n == 3 || n == 4) {
        img = image_from_pixels(px.get(), dw, dh, n);
    } else {
        throw ImageError(name + ": unsupported channel count " + std::to_string(n));
    }
    // stb gives GIFs (and some BMP/TGA) an alpha channel that is opaque everywhere;
    // compositing an opaque pixel is the identity, so drop it.
    if (img.has_alpha()) {
        bool opaque = true;
        for (std::uint8_t a : img.alpha) {
            if (a != 255) {
                opaque = false;
                break;
            }
        }
        if (opaque) img.alpha.clear();
    }
    return img;
}

/// Largest image file read (2 GiB - 1 bytes: what stb_image decodes).
inline constexpr std::size_t kMaxImageFileBytes = static_cast<std::size_t>(std::numeric_limits<int>::max());

/// Reads and decodes an image file. Throws IoError if it cannot be read (missing, no read
/// permission, a directory, FIFO or device, larger than kMaxImageFileBytes), ImageError if
/// it cannot be decoded.
inline Image load_image(const std::string& path) {
    const std::string bytes = detail::read_regular_file(
        path, kMaxImageFileBytes, "image file",
        "Give the path of an image file (JPEG, PNG, BMP, GIF, ...) that this process can read.");
    return decode_image(bytes.data(), bytes.size(), path);
}

}  // namespace altclip
