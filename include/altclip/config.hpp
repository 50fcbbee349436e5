// Model configs, mirroring transformers' AltCLIPTextConfig, AltCLIPVisionConfig and
// AltCLIPConfig (models/altclip/configuration_altclip.py). The converter resolves
// config.json (class defaults, the legacy text_config_dict override) and writes every
// field below into the model file, so nothing here has a default that could hide a
// wrong file: a missing field is a ConfigError.
#pragma once

#include <cstdint>
#include <string>

#include "errors.hpp"
#include "format/json.hpp"

namespace altclip {

namespace detail {

inline const json::Value& config_field(const json::Value& j, const char* key, const std::string& where) {
    const json::Value* v = j.find(key);
    if (!v) {
        throw ConfigError(where + ": missing field '" + key + "'. Re-run tools/convert.py on the checkpoint.");
    }
    return *v;
}

/// Largest value of an integer config field (16,777,216): far above any real model's (XLM-R's
/// vocab_size is 250,002), and small enough that sizes computed from two or three fields
/// (patches per image, positions, shapes) cannot overflow 64 bits.
inline constexpr std::int64_t kMaxConfigValue = std::int64_t(1) << 24;

inline std::int64_t config_int(const json::Value& j, const char* key, const std::string& where,
                               std::int64_t min_value = 1) {
    const auto& v = config_field(j, key, where);
    const bool fits = v.is_integer() && !(v.is_unsigned() && v.as_uint64() > std::uint64_t(kMaxConfigValue));
    if (!fits || v.as_int64() < min_value || v.as_int64() > kMaxConfigValue) {
        throw ConfigError(where + ": field '" + key + "' must be an integer >= " +
                          std::to_string(min_value) + " and <= " + std::to_string(kMaxConfigValue) +
                          ", got " + v.dump_short());
    }
    return v.as_int64();
}

inline double config_double(const json::Value& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_number()) throw ConfigError(where + ": field '" + key + "' must be a number, got " + v.dump_short());
    return v.as_double();
}

inline std::string config_string(const json::Value& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_string()) throw ConfigError(where + ": field '" + key + "' must be a string, got " + v.dump_short());
    return v.as_string();
}

inline const json::Value& config_object(const json::Value& j, const char* key, const std::string& where) {
    const auto& v = config_field(j, key, where);
    if (!v.is_object()) throw ConfigError(where + ": field '" + key + "' must be an object");
    return v;
}

/// The fields both towers' configs have (transformers' AltCLIPTextConfig and
/// AltCLIPVisionConfig each define them), read and checked in one place.
struct TowerConfigFields {
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_hidden_layers = 0;
    std::int64_t num_attention_heads = 0;
    std::string hidden_act;
    double layer_norm_eps = 0;

    std::int64_t head_dim() const { return hidden_size / num_attention_heads; }

    /// Reads the fields from `j` and checks them: the heads split hidden_size evenly, and
    /// hidden_act is `activation`, the one this tower (`tower`, for the message) implements.
    void read_tower_fields(const json::Value& j, const std::string& where, const char* tower, const char* activation) {
        hidden_size = config_int(j, "hidden_size", where);
        intermediate_size = config_int(j, "intermediate_size", where);
        num_hidden_layers = config_int(j, "num_hidden_layers", where, 0);
        num_attention_heads = config_int(j, "num_attention_heads", where);
        hidden_act = config_string(j, "hidden_act", where);
        layer_norm_eps = config_double(j, "layer_norm_eps", where);
        if (hidden_size % num_attention_heads != 0) {
            throw ConfigError(where + ": hidden_size " + std::to_string(hidden_size) +
                              " is not a multiple of num_attention_heads " + std::to_string(num_attention_heads));
        }
        if (hidden_act != activation) {
            throw ConfigError(where + ": hidden_act '" + hidden_act + "' is not supported; AltCLIP's " + tower +
                              " tower uses '" + activation + "'");
        }
    }
};

}  // namespace detail

/// transformers.AltCLIPTextConfig: the XLM-RoBERTa text tower. hidden_size,
/// intermediate_size, num_hidden_layers, num_attention_heads, hidden_act, layer_norm_eps and
/// head_dim() come from detail::TowerConfigFields.
struct AltCLIPTextConfig : detail::TowerConfigFields {
    std::int64_t vocab_size = 0;
    std::int64_t max_position_embeddings = 0;
    std::int64_t type_vocab_size = 0;
    std::int64_t pad_token_id = 0;
    std::int64_t project_dim = 0;

    /// Longest tokenized text, `<s>` and `</s>` included (positions start at pad_token_id + 1).
    std::int64_t max_tokens() const { return max_position_embeddings - pad_token_id - 1; }

    static AltCLIPTextConfig from_json(const json::Value& j, const std::string& where = "text_config") {
        using namespace detail;
        AltCLIPTextConfig c;
        c.vocab_size = config_int(j, "vocab_size", where);
        c.read_tower_fields(j, where, "text", "gelu");
        c.max_position_embeddings = config_int(j, "max_position_embeddings", where);
        c.type_vocab_size = config_int(j, "type_vocab_size", where);
        c.pad_token_id = config_int(j, "pad_token_id", where, 0);
        c.project_dim = config_int(j, "project_dim", where);
        if (c.pad_token_id >= c.vocab_size || c.max_position_embeddings < c.pad_token_id + 2) {
            throw ConfigError(where + ": pad_token_id " + std::to_string(c.pad_token_id) +
                              " does not fit vocab_size/max_position_embeddings");
        }
        return c;
    }
};

/// transformers.AltCLIPVisionConfig: the CLIP ViT vision tower. The fields it shares with the
/// text tower's config come from detail::TowerConfigFields.
struct AltCLIPVisionConfig : detail::TowerConfigFields {
    std::int64_t num_channels = 0;
    std::int64_t image_size = 0;
    std::int64_t patch_size = 0;

    std::int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
    std::int64_t num_positions() const { return num_patches() + 1; }

    static AltCLIPVisionConfig from_json(const json::Value& j, const std::string& where = "vision_config") {
        using namespace detail;
        AltCLIPVisionConfig c;
        c.read_tower_fields(j, where, "vision", "quick_gelu");
        c.num_channels = config_int(j, "num_channels", where);
        c.image_size = config_int(j, "image_size", where);
        c.patch_size = config_int(j, "patch_size", where);
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

    static AltCLIPConfig from_json(const json::Value& j, const std::string& where = "config") {
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
