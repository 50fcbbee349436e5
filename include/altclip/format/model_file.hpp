// An altclip model file (docs/format.md): the validated container plus the parsed model
// config, the image-processor config and the tokenizer's SentencePiece model.
// Tensor names and shapes are checked against the config when a model is built from the
// file (modules/weights.hpp): every missing, unexpected or wrongly shaped tensor is reported.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "../config.hpp"
#include "../errors.hpp"
#include "container.hpp"
#include "json.hpp"

namespace altclip {

inline constexpr const char* kSentencePieceBlob = "sentencepiece.bpe.model";

class ModelFile {
public:
    /// Maps and validates `path`. Throws IoError, FormatError or ConfigError.
    static std::shared_ptr<const ModelFile> open(const std::string& path) {
        return std::shared_ptr<const ModelFile>(new ModelFile(Container(path)));
    }
    /// Validates a model file held in memory (copied); `name` is used in messages.
    static std::shared_ptr<const ModelFile> from_bytes(std::string_view bytes, const std::string& name) {
        return std::shared_ptr<const ModelFile>(new ModelFile(Container::from_bytes(bytes, name)));
    }

    const Container& container() const { return container_; }
    const std::string& path() const { return container_.path(); }
    const AltCLIPConfig& config() const { return config_; }
    /// preprocessor_config.json as stored (CLIPImageProcessorConfig::from_json parses it).
    const json::Value& preprocessor_config() const { return container_.header().at("preprocessor_config"); }
    /// The SentencePiece model bytes (XLMRobertaTokenizer takes them).
    std::string_view sentencepiece_model() const { return container_.blob(kSentencePieceBlob).bytes(); }
    /// The header's free-form "metadata" object (docs/format.md), or an empty object.
    const json::Value& metadata() const { return metadata_; }

private:
    explicit ModelFile(Container c) : container_(std::move(c)) {
        const auto& h = container_.header();
        const std::string& p = container_.path();
        const json::Value* cfg = h.find("config");
        if (!cfg || !cfg->is_object()) {
            throw FormatError(p + ": no \"config\" in the header; this is not a model file (a reference "
                              "file?). Convert a checkpoint with tools/convert.py.");
        }
        config_ = AltCLIPConfig::from_json(*cfg, p + ": config");
        const json::Value* pp = h.find("preprocessor_config");
        if (!pp || !pp->is_object()) {
            throw FormatError(p + ": no \"preprocessor_config\" object in the header. Re-run tools/convert.py.");
        }
        if (!container_.has_blob(kSentencePieceBlob)) {
            throw FormatError(p + ": no blob '" + kSentencePieceBlob + "' (the tokenizer). Re-run tools/convert.py "
                              "on a folder that has sentencepiece.bpe.model.");
        }
        const json::Value* md = h.find("metadata");
        if (md && md->is_object()) metadata_ = *md;
    }

    Container container_;
    AltCLIPConfig config_;
    json::Value metadata_ = json::Value::object();
};

}  // namespace altclip
