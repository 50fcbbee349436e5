// The fuzz targets' bodies, shared by the libFuzzer entry points (fuzz_*.cpp) and the
// regression test that replays saved inputs (tests/test_fuzz_regressions.cpp).
// Each catches altclip::Error only: the typed errors are the expected outcome of bad input.
// Anything else escaping (std::bad_alloc, the std::logic_error thrown here when an output
// breaks an invariant), a crash or a sanitizer report is a bug.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <stb/stb_image.h>

#include <altclip/altclip.hpp>

#ifndef ALTCLIP_TEST_DATA
#error "ALTCLIP_TEST_DATA must name tests/data"
#endif

namespace altclip_fuzz {

inline void expect(bool ok, const char* what) {
    if (!ok) throw std::logic_error(std::string("fuzz invariant broken: ") + what);
}

// ---------------------------------------------------------------------------------------------
// Model files: ModelFile::from_bytes; if it validates, AltCLIPProcessor and AltCLIPModel, and
// for small configs a forward pass of both towers.

namespace detail {

// Forward passes only for configs this small (the tensors must be in the file anyway, but a
// valid big config would make each execution slow).
inline bool small(const altclip::AltCLIPConfig& c) {
    const auto& t = c.text_config;
    const auto& v = c.vision_config;
    return t.hidden_size <= 64 && t.intermediate_size <= 256 && t.num_hidden_layers <= 2 && t.project_dim <= 64 &&
           v.hidden_size <= 64 && v.intermediate_size <= 256 && v.num_hidden_layers <= 2 && v.image_size <= 64 &&
           v.num_channels <= 4 && c.projection_dim <= 64;
}

inline void run_small(const altclip::AltCLIPModel& model) {
    const auto& c = model.config();
    const auto& t = c.text_config;
    const auto& v = c.vision_config;
    // Text: a short sequence of in-vocabulary ids, with a padded second row.
    const std::int64_t seq = std::min<std::int64_t>(4, t.max_tokens());
    std::vector<std::int64_t> ids(2 * seq), mask(2 * seq, 1);
    for (std::int64_t i = 0; i < 2 * seq; ++i) ids[i] = (i * 7 + 1) % t.vocab_size;
    ids[2 * seq - 1] = t.pad_token_id;
    mask[2 * seq - 1] = 0;
    // Vision: one image at the config's size, and one of another size with interpolation.
    const std::int64_t s = v.image_size;
    std::vector<float> px(static_cast<std::size_t>(v.num_channels * s * s), 0.25f);
    const auto out = model.forward(altclip::TokenView(ids.data(), mask.data(), 2, seq),
                                   altclip::PixelView(px.data(), 1, v.num_channels, s, s));
    expect(out.logits_per_image.shape == std::vector<std::int64_t>({1, 2}), "logits_per_image shape");
    const std::int64_t s2 = 2 * v.patch_size;
    if (s2 <= 64) {
        std::vector<float> px2(static_cast<std::size_t>(v.num_channels * s2 * (s2 + 1)), -0.5f);
        const auto f = model.get_image_features(altclip::PixelView(px2.data(), 1, v.num_channels, s2, s2 + 1), true);
        expect(f.shape == std::vector<std::int64_t>({1, c.projection_dim}), "image features shape");
    }
}

}  // namespace detail

inline void model_file(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    std::shared_ptr<const altclip::ModelFile> file;
    try {
        file = altclip::ModelFile::from_bytes(bytes, "fuzz.altclip");
    } catch (const altclip::Error&) {
        return;
    }
    try {  // the processor: preprocessor config and the SentencePiece blob
        const altclip::AltCLIPProcessor processor(*file);
        const auto b = processor({std::string("a photo of a cat"), std::string()});
        expect(b.batch == 2, "processor batch");
    } catch (const altclip::Error&) {
    }
    try {
        const altclip::AltCLIPModel model(file);
        if (detail::small(model.config())) detail::run_small(model);
    } catch (const altclip::Error&) {
    }
}

// ---------------------------------------------------------------------------------------------
// Images: decode_image -> CLIPImageProcessor with BAAI/AltCLIP's preprocessor_config.json
// (shortest edge 224, center crop 224).

inline const altclip::CLIPImageProcessor& image_processor() {
    static const altclip::CLIPImageProcessor p(altclip::CLIPImageProcessorConfig::from_json(altclip::json::parse(R"({
        "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": 224})")));
    return p;
}

// Images between this and kMaxImagePixels are valid and just slow (a 40-byte JPEG header
// can ask for 100 M pixels, which stb then fills); the fuzzer skips decoding them so that
// it spends its time on parsing. Larger ones are decoded: the cap must reject them early.
inline constexpr std::int64_t kFuzzMaxPixels = 1 << 18;

inline void image(const std::uint8_t* data, std::size_t size) {
    int w = 0, h = 0, comp = 0;
    if (size > 0 && size < (1u << 30) && stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &comp)) {
        const std::int64_t pixels = std::int64_t(w) * h;
        if (pixels > kFuzzMaxPixels && pixels <= altclip::kMaxImagePixels) return;
    }
    try {
        const altclip::Image img = altclip::decode_image(data, size, "fuzz");
        expect(img.width > 0 && img.height > 0, "decoded size");
        const std::size_t n = static_cast<std::size_t>(img.width) * img.height;
        expect(img.rgb.size() == n * 3 && (img.alpha.empty() || img.alpha.size() == n), "decoded buffers");
        // An extreme aspect ratio (2x513) resizes to 224x57456 before the crop, as in the
        // reference: valid, bounded by kMaxImageSide, but seconds under ASan. Skipped here
        // for throughput unless a side is over the limit (then the check must fire).
        const auto hw = image_processor().resize_output_size(img.height, img.width);
        if (std::int64_t(hw.first) * hw.second > kFuzzMaxPixels && hw.first <= altclip::kMaxImageSide &&
            hw.second <= altclip::kMaxImageSide) {
            return;
        }
        const std::vector<float> px = image_processor().preprocess(img);
        expect(px.size() == std::size_t(3) * 224 * 224, "pixel_values size");
    } catch (const altclip::Error&) {
    }
}

// ---------------------------------------------------------------------------------------------
// JSON: altclip::json::parse (the model file's header reader) on any bytes; what it accepts
// must dump to JSON that reads back to the same text; tight depth and value limits too.

inline void json(const std::uint8_t* data, std::size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    try {
        const altclip::json::Value v = altclip::json::parse(text, text + size);
        const std::string once = v.dump();
        expect(altclip::json::parse(once).dump() == once, "dump() reads back to the same text");
        expect(v.dump_short(16).size() <= 16 + 3, "dump_short length");
    } catch (const altclip::Error&) {
    }
    altclip::json::Limits tight;
    tight.max_depth = 2;
    tight.max_values = 8;
    try {
        (void)altclip::json::parse(text, text + size, tight);
    } catch (const altclip::Error&) {
    }
}

// ---------------------------------------------------------------------------------------------
// Texts: the tokenizer of tests/data/sentencepiece.bpe.model (max length 512, and 8, which
// truncates): encode, and a batch of the '\n'-separated parts; the output's invariants.

inline const altclip::XLMRobertaTokenizer& text_tokenizer(int which) {
    static const auto full = altclip::XLMRobertaTokenizer::from_file(ALTCLIP_TEST_DATA "/sentencepiece.bpe.model");
    static const auto short_ = altclip::XLMRobertaTokenizer::from_file(ALTCLIP_TEST_DATA "/sentencepiece.bpe.model", 8);
    return which == 0 ? full : short_;
}

inline void check_ids(const altclip::XLMRobertaTokenizer& tok, const std::int64_t* ids, std::size_t n) {
    expect(n >= 2 && n <= static_cast<std::size_t>(tok.model_max_length()), "token count");
    expect(ids[0] == tok.bos_token_id() && ids[n - 1] == tok.eos_token_id(), "<s> ... </s>");
    for (std::size_t i = 0; i < n; ++i) expect(ids[i] >= 0 && ids[i] < tok.vocab_size(), "id in vocabulary");
}

inline void tokenizer(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (int which = 0; which < 2; ++which) {
        const auto& tok = text_tokenizer(which);
        try {
            const auto ids = tok.encode(text);
            check_ids(tok, ids.data(), ids.size());
        } catch (const altclip::Error&) {
        }
        std::vector<std::string> texts;
        std::size_t start = 0;
        for (std::size_t i = 0; i <= text.size(); ++i) {
            if (i == text.size() || text[i] == '\n') {
                texts.emplace_back(text.substr(start, i - start));
                start = i + 1;
            }
        }
        try {
            const auto b = tok(texts);
            expect(b.batch == static_cast<std::int64_t>(texts.size()), "batch size");
            for (std::int64_t r = 0; r < b.batch; ++r) {
                check_ids(tok, b.input_ids.data() + r * b.seq_len, static_cast<std::size_t>(b.lengths[r]));
            }
        } catch (const altclip::Error&) {
        }
    }
}

}  // namespace altclip_fuzz
