// Model configs, mirroring transformers' AltCLIPTextConfig, AltCLIPVisionConfig and
// AltCLIPConfig (models/altclip/configuration_altclip.py). The converter resolves
// config.json (class defaults, the legacy text_config_dict override) and writes every
// field below into the model file, so nothing here has a default that could hide a
// wrong file: a missing field is a ConfigError.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "errors.hpp"

namespace altclip {

namespace detail {

inline const nlohmann::json& config_field(const nlohmann::json& j, const char* key, const std::string& where) {
    auto it = j.find(key);
    if (it == j.end()) {
        throw ConfigError(where + ": missing field '" + key + "'. Re-run tools/convert.py on the checkpoint.");
    }
    return *it;
}

/// Largest value of an integer config field (16,777,216): far above any real model's (XLM-R's
/// vocab_size is 250,002), and small enough that sizes computed from two or three fields
/// (patches per image, positions, shapes) cannot overflow 64 bits.
inline constexpr std::int64_t kMaxConfigValue = std::int64_t(1) << 24;

inline std::int64_t config_int(const nlohmann::json& j, const char* key, const std::string& where,
                               std::int64_t min_value = 1) {
    const auto& v = config_field(j, key, where);
    if (!v.is_number_integer() || v.get<std::int64_t>() < min_value || v.get<std::int64_t>() > kMaxConfigValue) {
        throw ConfigError(where + ": field '" + key + "' must be an integer >= " +
                          std::to_string(min_value) + " and <= " + std::to_string(kMaxConfigValue) +
                          ", got " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    return v.get<std::int64_t>();
}

inline double config_double(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_number()) throw ConfigError(where + ": field '" + key + "' must be a number, got " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return v.get<double>();
}

inline std::string config_string(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_string()) throw ConfigError(where + ": field '" + key + "' must be a string, got " + v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return v.get<std::string>();
}

inline const nlohmann::json& config_object(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_object()) throw ConfigError(where + ": field '" + key + "' must be an object");
    return v;
}

/// Throws ConfigError unless the heads split hidden_size evenly.
inline void check_heads(std::int64_t hidden_size, std::int64_t num_attention_heads, const std::string& where) {
    if (hidden_size % num_attention_heads != 0) {
        throw ConfigError(where + ": hidden_size " + std::to_string(hidden_size) +
                          " is not a multiple of num_attention_heads " + std::to_string(num_attention_heads));
    }
}

}  // namespace detail

/// transformers.AltCLIPTextConfig: the XLM-RoBERTa text tower.
struct AltCLIPTextConfig {
    std::int64_t vocab_size = 0;
    std::int64_t hidden_size = 0;
    std::int64_t num_hidden_layers = 0;
    std::int64_t num_attention_heads = 0;
    std::int64_t intermediate_size = 0;
    std::string hidden_act;
    std::int64_t max_position_embeddings = 0;
    std::int64_t type_vocab_size = 0;
    double layer_norm_eps = 0;
    std::int64_t pad_token_id = 0;
    std::int64_t project_dim = 0;

    std::int64_t head_dim() const { return hidden_size / num_attention_heads; }
    /// Longest tokenized text, `<s>` and `</s>` included (positions start at pad_token_id + 1).
    std::int64_t max_tokens() const { return max_position_embeddings - pad_token_id - 1; }

    static AltCLIPTextConfig from_json(const nlohmann::json& j, const std::string& where = "text_config") {
        using namespace detail;
        AltCLIPTextConfig c;
        c.vocab_size = config_int(j, "vocab_size", where);
        c.hidden_size = config_int(j, "hidden_size", where);
        c.num_hidden_layers = config_int(j, "num_hidden_layers", where, 0);
        c.num_attention_heads = config_int(j, "num_attention_heads", where);
        c.intermediate_size = config_int(j, "intermediate_size", where);
        c.hidden_act = config_string(j, "hidden_act", where);
        c.max_position_embeddings = config_int(j, "max_position_embeddings", where);
        c.type_vocab_size = config_int(j, "type_vocab_size", where);
        c.layer_norm_eps = config_double(j, "layer_norm_eps", where);
        c.pad_token_id = config_int(j, "pad_token_id", where, 0);
        c.project_dim = config_int(j, "project_dim", where);
        check_heads(c.hidden_size, c.num_attention_heads, where);
        if (c.hidden_act != "gelu") {
            throw ConfigError(where + ": hidden_act '" + c.hidden_act +
                              "' is not supported; AltCLIP's text tower uses 'gelu'");
        }
        if (c.pad_token_id >= c.vocab_size || c.max_position_embeddings < c.pad_token_id + 2) {
            throw ConfigError(where + ": pad_token_id " + std::to_string(c.pad_token_id) +
                              " does not fit vocab_size/max_position_embeddings");
        }
        return c;
    }
};

/// transformers.AltCLIPVisionConfig: the CLIP ViT vision tower.
struct AltCLIPVisionConfig {
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_hidden_layers = 0;
    std::int64_t num_attention_heads = 0;
    std::int64_t num_channels = 0;
    std::int64_t image_size = 0;
    std::int64_t patch_size = 0;
    std::string hidden_act;
    double layer_norm_eps = 0;

    std::int64_t head_dim() const { return hidden_size / num_attention_heads; }
    std::int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
    std::int64_t num_positions() const { return num_patches() + 1; }

    static AltCLIPVisionConfig from_json(const nlohmann::json& j, const std::string& where = "vision_config") {
        using namespace detail;
        AltCLIPVisionConfig c;
        c.hidden_size = config_int(j, "hidden_size", where);
        c.intermediate_size = config_int(j, "intermediate_size", where);
        c.num_hidden_layers = config_int(j, "num_hidden_layers", where, 0);
        c.num_attention_heads = config_int(j, "num_attention_heads", where);
        c.num_channels = config_int(j, "num_channels", where);
        c.image_size = config_int(j, "image_size", where);
        c.patch_size = config_int(j, "patch_size", where);
        c.hidden_act = config_string(j, "hidden_act", where);
        c.layer_norm_eps = config_double(j, "layer_norm_eps", where);
        check_heads(c.hidden_size, c.num_attention_heads, where);
        if (c.hidden_act != "quick_gelu") {
            throw ConfigError(where + ": hidden_act '" + c.hidden_act +
                              "' is not supported; AltCLIP's vision tower uses 'quick_gelu'");
        }
        if (c.patch_size > c.image_size) {
            throw ConfigError(where + ": patch_size " + std::to_string(c.patch_size) + " exceeds image_size " +
                              std::to_string(c.image_size));
        }
        return c;
    }
};

/// transformers.AltCLIPConfig: both towers and the projection heads.
struct AltCLIPConfig {
    AltCLIPTextConfig text_config;
    AltCLIPVisionConfig vision_config;
    std::int64_t projection_dim = 0;

    static AltCLIPConfig from_json(const nlohmann::json& j, const std::string& where = "config") {
        if (!j.is_object()) throw ConfigError(where + " is not a JSON object");
        AltCLIPConfig c;
        c.text_config = AltCLIPTextConfig::from_json(detail::config_object(j, "text_config", where),
                                                     where + ".text_config");
        c.vision_config = AltCLIPVisionConfig::from_json(detail::config_object(j, "vision_config", where),
                                                         where + ".vision_config");
        c.projection_dim = detail::config_int(j, "projection_dim", where);
        return c;
    }
};

}  // namespace altclip
