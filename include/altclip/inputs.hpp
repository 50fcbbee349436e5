// The towers' inputs, apart from the preprocessing that makes them: a program with its own
// tokenizer or image pipeline includes text.hpp or vision.hpp without sentencepiece, stb_image
// or the Pillow resampler. BatchEncoding and PixelValues are what XLMRobertaTokenizer and
// CLIPImageProcessor return (preprocessing/); TokenView and PixelView are what the towers take.
#pragma once

#include <cstdint>
#include <vector>

namespace altclip {

/// Token ids of a batch, as `tokenizer(texts, padding=True, truncation=True)` returns them.
struct BatchEncoding {
    std::int64_t batch = 0, seq_len = 0;
    std::vector<std::int64_t> input_ids;       // row-major [batch, seq_len], right-padded with <pad>
    std::vector<std::int64_t> attention_mask;  // row-major [batch, seq_len], 1 on real tokens
    std::vector<std::int64_t> lengths;         // [batch]: real tokens per row (incl. <s> and </s>)
};

/// A batch of preprocessed images, [batch, channels, height, width], row-major float32.
struct PixelValues {
    std::int64_t batch = 0, channels = 0, height = 0, width = 0;
    std::vector<float> data;
};

/// A non-owning view of a tokenized, right-padded batch: input_ids and attention_mask [batch, seq].
struct TokenView {
    const std::int64_t* input_ids = nullptr;
    const std::int64_t* attention_mask = nullptr;  // nullptr: every token is real
    std::int64_t batch = 0, seq = 0;

    TokenView() = default;
    TokenView(const std::int64_t* ids, const std::int64_t* mask, std::int64_t b, std::int64_t s)
        : input_ids(ids), attention_mask(mask), batch(b), seq(s) {}
    /// What XLMRobertaTokenizer returns (must outlive the view).
    TokenView(const BatchEncoding& e)  // NOLINT: implicit on purpose
        : input_ids(e.input_ids.data()), attention_mask(e.attention_mask.data()), batch(e.batch), seq(e.seq_len) {}
};

/// A non-owning view of pixel values [batch, channels, height, width], row-major.
struct PixelView {
    const float* data = nullptr;
    std::int64_t batch = 0, channels = 0, height = 0, width = 0;

    PixelView() = default;
    PixelView(const float* d, std::int64_t b, std::int64_t c, std::int64_t h, std::int64_t w)
        : data(d), batch(b), channels(c), height(h), width(w) {}
    /// What CLIPImageProcessor returns (must outlive the view).
    PixelView(const PixelValues& p)  // NOLINT: implicit on purpose
        : data(p.data.data()), batch(p.batch), channels(p.channels), height(p.height), width(p.width) {}
};

}  // namespace altclip
