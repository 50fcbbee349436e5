// AltCLIPProcessor, as transformers' AltCLIPProcessor: the XLM-R tokenizer and the CLIP
// image processor, both configured from the model file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "format/model_file.hpp"
#include "preprocessing/image.hpp"
#include "preprocessing/image_processor.hpp"
#include "preprocessing/tokenizer.hpp"

namespace altclip {

/// Immutable; safe to share between threads.
class AltCLIPProcessor {
public:
    static AltCLIPProcessor from_file(const std::string& path) { return AltCLIPProcessor(*ModelFile::open(path)); }

    /// The tokenizer from the file's SentencePiece model, truncating at the text tower's
    /// limit (max_position_embeddings - 2: 512 for the released model); the image processor
    /// from its preprocessor_config.
    explicit AltCLIPProcessor(const ModelFile& file)
        : tokenizer_(file.sentencepiece_model(), file.config().text_config.max_tokens()),
          image_processor_(CLIPImageProcessorConfig::from_json(file.preprocessor_config())) {}

    AltCLIPProcessor(XLMRobertaTokenizer tokenizer, CLIPImageProcessor image_processor)
        : tokenizer_(std::move(tokenizer)), image_processor_(std::move(image_processor)) {}

    /// `processor(text=texts, padding=True, truncation=True)`.
    BatchEncoding operator()(const std::vector<std::string>& texts) const { return tokenizer_(texts); }
    /// `processor(images=images)["pixel_values"]`.
    PixelValues operator()(const std::vector<Image>& images) const { return image_processor_(images); }
    /// Reads, decodes and preprocesses image files.
    PixelValues load_images(const std::vector<std::string>& paths) const {
        std::vector<Image> images;
        images.reserve(paths.size());
        for (const auto& p : paths) images.push_back(load_image(p));
        return image_processor_(images);
    }

    const XLMRobertaTokenizer& tokenizer() const { return tokenizer_; }
    const CLIPImageProcessor& image_processor() const { return image_processor_; }

private:
    XLMRobertaTokenizer tokenizer_;
    CLIPImageProcessor image_processor_;
};

}  // namespace altclip
