// altclip: CLIPImageProcessor, the PIL path of transformers (5.x class `CLIPImageProcessorPil`,
// backend `PilBackend._preprocess`; 4.x `CLIPImageProcessor`), reproduced exactly:
//   convert_to_rgb (composite on white if alpha) -> resize shortest edge (Pillow bicubic, uint8)
//   -> center crop (zero padding if smaller) -> rescale (float64 multiply, cast to float32)
//   -> normalize ((x - mean) / std in float32) -> CHW.
// Immutable after construction; safe to share between threads.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../errors.hpp"
#include "../format/json.hpp"
#include "../inputs.hpp"  // PixelValues
#include "../limits.hpp"
#include "image.hpp"
#include "pillow_resample.hpp"

namespace altclip {

/// Mirrors the keys of `preprocessor_config.json` that CLIPImageProcessor reads.
struct CLIPImageProcessorConfig {
    bool do_resize = true;
    /// Resize target: either the shortest edge (`shortest_edge` > 0, optionally with
    /// `longest_edge` > 0) or an exact size (`resize_height` and `resize_width` > 0, used
    /// only when shortest_edge is 0).
    int shortest_edge = 224;
    int longest_edge = 0;
    int resize_height = 0;
    int resize_width = 0;
    int resample = 3;  // PILImageResampling.BICUBIC; the only one supported
    bool do_center_crop = true;
    int crop_height = 224;
    int crop_width = 224;
    bool do_rescale = true;
    double rescale_factor = 1.0 / 255.0;
    bool do_normalize = true;
    std::vector<double> image_mean{0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
    std::vector<double> image_std{0.26862954, 0.26130258, 0.27577711};   // OPENAI_CLIP_STD
    /// true: transformers' convert_to_rgb, i.e. an image with alpha is composited on white.
    /// false: `Image::rgb` is used as is (alpha ignored); the reference would instead keep
    /// 1 or 4 channels and fail at normalize, so only RGB sources agree there.
    bool do_convert_rgb = true;

    /// Parses a preprocessor_config.json object. Absent keys keep transformers' defaults.
    /// Old style (`"size": 224`, `"crop_size": 224`, as BAAI/AltCLIP ships) and new style
    /// (`{"shortest_edge": 224}`, `{"height": 224, "width": 224}`) are both accepted, as
    /// transformers' `get_size_dict` does. Throws ConfigError.
    static CLIPImageProcessorConfig from_json(const json::Value& j);
};

namespace detail {

inline std::string json_where(const char* key) {
    return std::string("preprocessor config: \"") + key + "\"";
}

inline bool json_bool(const json::Value& j, const char* key, bool fallback) {
    const json::Value& v = j[key];
    if (v.is_null()) return fallback;
    if (!v.is_bool()) throw ConfigError(json_where(key) + " must be true or false, got " + v.dump_short());
    return v.as_bool();
}

inline double json_number(const json::Value& j, const char* key, double fallback) {
    const json::Value& v = j[key];
    if (v.is_null()) return fallback;
    if (!v.is_number()) throw ConfigError(json_where(key) + " must be a number, got " + v.dump_short());
    return v.as_double();
}

inline int json_positive_int(const json::Value& v, const std::string& what) {
    if (!v.is_unsigned() || v.as_uint64() == 0 || v.as_uint64() > static_cast<std::uint64_t>(kMaxImageSide)) {
        throw ConfigError("preprocessor config: " + what + " must be a positive integer up to " +
                          std::to_string(kMaxImageSide) + ", got " + v.dump_short());
    }
    return static_cast<int>(v.as_uint64());
}

inline std::vector<double> json_triple(const json::Value& j, const char* key, std::vector<double> fallback) {
    const json::Value& v = j[key];
    if (v.is_null()) return fallback;
    if (v.is_number()) return std::vector<double>(3, v.as_double());  // a scalar applies to all channels
    if (!v.is_array() || v.size() != 3) {
        throw ConfigError(json_where(key) + " must be a number or a list of 3 numbers (R, G, B), got " + v.dump_short());
    }
    std::vector<double> out;
    for (const json::Value& e : v.elements()) {
        if (!e.is_number()) throw ConfigError(json_where(key) + " must contain numbers, got " + v.dump_short());
        out.push_back(e.as_double());
    }
    return out;
}

}  // namespace detail

inline CLIPImageProcessorConfig CLIPImageProcessorConfig::from_json(const json::Value& j) {
    using detail::json_positive_int;
    if (!j.is_object()) throw ConfigError("preprocessor config must be a JSON object, got " + j.dump_short());
    CLIPImageProcessorConfig c;
    c.do_resize = detail::json_bool(j, "do_resize", c.do_resize);
    c.do_center_crop = detail::json_bool(j, "do_center_crop", c.do_center_crop);
    c.do_rescale = detail::json_bool(j, "do_rescale", c.do_rescale);
    c.do_normalize = detail::json_bool(j, "do_normalize", c.do_normalize);
    c.do_convert_rgb = detail::json_bool(j, "do_convert_rgb", c.do_convert_rgb);
    c.rescale_factor = detail::json_number(j, "rescale_factor", c.rescale_factor);
    c.image_mean = detail::json_triple(j, "image_mean", c.image_mean);
    c.image_std = detail::json_triple(j, "image_std", c.image_std);
    for (double s : c.image_std) {
        if (s == 0.0) throw ConfigError("preprocessor config: \"image_std\" has a zero entry (division by zero)");
    }

    // size: get_size_dict(size, default_to_square=False) - an int is the shortest edge.
    if (const json::Value& s = j["size"]; !s.is_null()) {
        c.shortest_edge = c.longest_edge = c.resize_height = c.resize_width = 0;
        if (s.is_integer()) {
            c.shortest_edge = json_positive_int(s, "\"size\"");
        } else if (s.is_array() && s.size() == 2) {  // (height, width)
            c.resize_height = json_positive_int(s[0], "\"size\"[0]");
            c.resize_width = json_positive_int(s[1], "\"size\"[1]");
        } else if (s.is_object() && s.size() == 2 && s.contains("height") && s.contains("width")) {
            c.resize_height = json_positive_int(s["height"], "\"size\".height");
            c.resize_width = json_positive_int(s["width"], "\"size\".width");
        } else if (s.is_object() && s.size() == 1 && s.contains("shortest_edge")) {
            c.shortest_edge = json_positive_int(s["shortest_edge"], "\"size\".shortest_edge");
        } else if (s.is_object() && s.size() == 2 && s.contains("shortest_edge") && s.contains("longest_edge")) {
            c.shortest_edge = json_positive_int(s["shortest_edge"], "\"size\".shortest_edge");
            c.longest_edge = json_positive_int(s["longest_edge"], "\"size\".longest_edge");
        } else {
            throw ConfigError("preprocessor config: \"size\" must be an int, [height, width], "
                              "{\"shortest_edge\"}, {\"shortest_edge\", \"longest_edge\"} or "
                              "{\"height\", \"width\"}; got " + s.dump_short());
        }
    }
    // crop_size: get_size_dict(crop_size) with default_to_square=True - an int is a square.
    if (const json::Value& s = j["crop_size"]; !s.is_null()) {
        if (s.is_integer()) {
            c.crop_height = c.crop_width = json_positive_int(s, "\"crop_size\"");
        } else if (s.is_array() && s.size() == 2) {
            c.crop_height = json_positive_int(s[0], "\"crop_size\"[0]");
            c.crop_width = json_positive_int(s[1], "\"crop_size\"[1]");
        } else if (s.is_object() && s.size() == 2 && s.contains("height") && s.contains("width")) {
            c.crop_height = json_positive_int(s["height"], "\"crop_size\".height");
            c.crop_width = json_positive_int(s["width"], "\"crop_size\".width");
        } else {
            throw ConfigError("preprocessor config: \"crop_size\" must be an int, [height, width] or "
                              "{\"height\", \"width\"}; got " + s.dump_short());
        }
    }
    if (const json::Value& r = j["resample"]; !r.is_null()) {
        if (!r.is_unsigned() || r.as_uint64() != 3) {
            throw ConfigError("preprocessor config: \"resample\" is " + r.dump_short() +
                              "; only 3 (PIL bicubic, what CLIP/AltCLIP use) is supported");
        }
        c.resample = 3;
    }
    return c;
}

/// transformers' CLIPImageProcessor (PIL path). Immutable; safe to share between threads.
class CLIPImageProcessor {
public:
    explicit CLIPImageProcessor(CLIPImageProcessorConfig config) : config_(std::move(config)) {
        if (config_.resample != 3) {
            throw ConfigError("CLIPImageProcessor: resample " + std::to_string(config_.resample) +
                              " is not supported; only 3 (bicubic)");
        }
        if (config_.do_resize && config_.shortest_edge <= 0 &&
            (config_.resize_height <= 0 || config_.resize_width <= 0)) {
            throw ConfigError("CLIPImageProcessor: do_resize needs shortest_edge or resize_height/resize_width");
        }
        if (config_.image_mean.size() != 3 || config_.image_std.size() != 3) {
            throw ConfigError("CLIPImageProcessor: image_mean and image_std need 3 values each");
        }
        if (config_.do_center_crop) {  // each image becomes 3 x crop_height x crop_width floats
            if (config_.crop_height <= 0 || config_.crop_width <= 0 ||
                static_cast<std::int64_t>(config_.crop_height) * config_.crop_width > kMaxImagePixels) {
                throw ConfigError("CLIPImageProcessor: crop size " + std::to_string(config_.crop_height) + "x" +
                                  std::to_string(config_.crop_width) + " is empty or above the limit of " +
                                  std::to_string(kMaxImagePixels) + " pixels (kMaxImagePixels); "
                                  "CLIP crops to 224x224: fix crop_size in the preprocessor config");
            }
        }
    }

    const CLIPImageProcessorConfig& config() const { return config_; }

    /// Output (height, width) of the resize step for an input of this size, as transformers
    /// computes it (`get_resize_output_image_size(..., default_to_square=False)`, or
    /// `get_size_with_aspect_ratio` when longest_edge is set).
    std::pair<int, int> resize_output_size(int height, int width) const {
        const auto& c = config_;
        if (c.resize_height > 0 && c.resize_width > 0 && c.shortest_edge <= 0) return {c.resize_height, c.resize_width};
        if (c.longest_edge > 0) {  // get_size_with_aspect_ratio(image_size, shortest, longest)
            double size = c.shortest_edge;
            double raw_size = -1.0;
            const double min_side = std::min(height, width), max_side = std::max(height, width);
            int isize = c.shortest_edge;
            if (max_side / min_side * size > c.longest_edge) {
                raw_size = c.longest_edge * min_side / max_side;
                isize = static_cast<int>(std::nearbyint(raw_size));  // Python round: half to even
            }
            if ((height <= width && height == isize) || (width <= height && width == isize)) return {height, width};
            if (width < height) {
                const int oh = raw_size >= 0 ? static_cast<int>(raw_size * height / width)
                                             : static_cast<int>(static_cast<double>(isize) * height / width);
                return {oh, isize};
            }
            const int ow = raw_size >= 0 ? static_cast<int>(raw_size * width / height)
                                         : static_cast<int>(static_cast<double>(isize) * width / height);
            return {isize, ow};
        }
        // short, long = (width, height) if width <= height else (height, width)
        // new_long = int(size * long / short)  (Python: int * int / int in double, truncated)
        const int s = c.shortest_edge;
        if (width <= height) {
            return {static_cast<int>(static_cast<double>(s) * height / width), s};
        }
        return {s, static_cast<int>(static_cast<double>(s) * width / height)};
    }

    /// The uint8 RGB image after conversion and resizing (interleaved HWC), for tests and
    /// callers who want the resized picture. `out_h`/`out_w` receive its size.
    std::vector<std::uint8_t> resized_rgb(const Image& image, int& out_h, int& out_w) const {
        check_image(image);
        std::vector<std::uint8_t> rgb = config_.do_convert_rgb ? composite_on_white(image) : image.rgb;
        out_h = image.height;
        out_w = image.width;
        if (!config_.do_resize) return rgb;
        const auto hw = resize_output_size(image.height, image.width);
        if (hw.first <= 0 || hw.second <= 0) {
            throw InvalidArgument("CLIPImageProcessor: a " + std::to_string(image.width) + "x" +
                                  std::to_string(image.height) + " image resizes to an empty image (" +
                                  std::to_string(hw.second) + "x" + std::to_string(hw.first) + ")");
        }
        detail::check_image_dimensions(hw.second, hw.first, "CLIPImageProcessor: resized image");
        out_h = hw.first;
        out_w = hw.second;
        return detail::pillow_resize_bicubic(rgb.data(), image.width, image.height, 3, out_w, out_h);
    }

    /// Preprocesses one image: CHW float32 [3, H, W] (H, W = crop size when center cropping).
    std::vector<float> preprocess(const Image& image) const {
        int h = 0, w = 0;
        return preprocess_impl(image, h, w);
    }

    /// Preprocesses a batch into [N, 3, H, W]. Images may differ in size; with center crop
    /// off, all must produce the same size. Throws InvalidArgument for an empty batch.
    PixelValues operator()(const std::vector<Image>& images) const try {
        if (images.empty()) throw InvalidArgument("CLIPImageProcessor: empty batch; pass at least one image");
        if (images.size() > static_cast<std::size_t>(kMaxBatchSize)) {
            throw InvalidArgument("CLIPImageProcessor: batch of " + std::to_string(images.size()) +
                                  " images exceeds the limit of " + std::to_string(kMaxBatchSize) +
                                  " (kMaxBatchSize); split it into several calls");
        }
        PixelValues pv;
        pv.batch = static_cast<std::int64_t>(images.size());
        pv.channels = 3;
        for (std::size_t i = 0; i < images.size(); ++i) {
            int h = 0, w = 0;
            std::vector<float> one = preprocess_impl(images[i], h, w);
            if (i == 0) {
                pv.height = h;
                pv.width = w;
                pv.data.reserve(images.size() * one.size());
            } else if (h != pv.height || w != pv.width) {
                throw InvalidArgument("CLIPImageProcessor: image " + std::to_string(i) + " preprocesses to " +
                                      std::to_string(w) + "x" + std::to_string(h) + " but image 0 to " +
                                      std::to_string(pv.width) + "x" + std::to_string(pv.height) +
                                      "; a batch needs one size (enable do_center_crop)");
            }
            pv.data.insert(pv.data.end(), one.begin(), one.end());
        }
        return pv;
    } catch (const std::bad_alloc&) {
        throw detail::out_of_memory("CLIPImageProcessor", "a batch of " + std::to_string(images.size()) + " images");
    }

private:
    static void check_image(const Image& image) {
        detail::check_image_dimensions(image.width, image.height, "CLIPImageProcessor: input image");
        const std::size_t n = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
        if (image.rgb.size() != n * 3 || (!image.alpha.empty() && image.alpha.size() != n)) {
            throw InvalidArgument("CLIPImageProcessor: input image of " + std::to_string(image.width) + "x" +
                                  std::to_string(image.height) + " has " + std::to_string(image.rgb.size()) +
                                  " rgb bytes and " + std::to_string(image.alpha.size()) +
                                  " alpha bytes; expected width*height*3 and 0 or width*height");
        }
    }

    std::vector<float> preprocess_impl(const Image& image, int& out_h, int& out_w) const {
        int h = 0, w = 0;
        const std::vector<std::uint8_t> rgb = resized_rgb(image, h, w);

        // center_crop (image_transforms.center_crop): crop the centre; where the image is
        // smaller than the crop, pad with zeros first (ceil of half the missing size before).
        int ch = h, cw = w;
        int top = 0, left = 0;        // source offset of output (0, 0), may be negative
        if (config_.do_center_crop) {
            ch = config_.crop_height;
            cw = config_.crop_width;
            top = floor_div(h - ch, 2);
            left = floor_div(w - cw, 2);
            if (!(top >= 0 && top + ch <= h && left >= 0 && left + cw <= w)) {
                const int new_h = std::max(ch, h), new_w = std::max(cw, w);
                const int top_pad = (new_h - h + 1) / 2, left_pad = (new_w - w + 1) / 2;  // ceil
                // The padded image starts top_pad rows before the source; numpy's clipped
                // slice [max(0, top + top_pad), ...) of it maps back to source rows:
                top = std::max(0, top + top_pad) - top_pad;
                left = std::max(0, left + left_pad) - left_pad;
            }
        }

        // rescale: image.astype(float64) * scale, then astype(float32);
        // normalize: float32 image, float32 mean/std, (x - mean) / std.
        float lut[3][256];
        for (int c = 0; c < 3; ++c) {
            const float mean = static_cast<float>(config_.image_mean[c]);
            const float stdv = static_cast<float>(config_.image_std[c]);
            for (int v = 0; v < 256; ++v) {
                float x = config_.do_rescale ? static_cast<float>(static_cast<double>(v) * config_.rescale_factor)
                                             : static_cast<float>(v);
                if (config_.do_normalize) x = (x - mean) / stdv;
                lut[c][v] = x;
            }
        }
        // A zero-padded pixel is value 0 before rescale/normalize.
        std::vector<float> out(static_cast<std::size_t>(3) * ch * cw);
        const std::size_t plane = static_cast<std::size_t>(ch) * cw;
        for (int y = 0; y < ch; ++y) {
            const int sy = y + top;
            for (int x = 0; x < cw; ++x) {
                const int sx = x + left;
                const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                const std::size_t si = inside ? (static_cast<std::size_t>(sy) * w + sx) * 3 : 0;
                for (int c = 0; c < 3; ++c) {
                    out[c * plane + static_cast<std::size_t>(y) * cw + x] = lut[c][inside ? rgb[si + c] : 0];
                }
            }
        }
        out_h = ch;
        out_w = cw;
        return out;
    }

    static int floor_div(int a, int b) {  // Python //
        int q = a / b;
        if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
        return q;
    }

    CLIPImageProcessorConfig config_;
};

}  // namespace altclip
