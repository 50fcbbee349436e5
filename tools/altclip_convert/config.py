"""config.json resolved as transformers.AltCLIPConfig does (class defaults for the keys
save_pretrained leaves out; a legacy text_config_dict / vision_config_dict completed with the
defaults and replacing text_config / vision_config), checked against what the C++ code
implements, and returned as the `config` of docs/format.md."""
from __future__ import annotations

import math

from . import ConvertError

# Class defaults of transformers' AltCLIPTextConfig / AltCLIPVisionConfig / AltCLIPConfig
# (configuration_altclip.py), for the fields the C++ side reads.
TEXT_DEFAULTS = {
    "vocab_size": 250002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "project_dim": 768,
}
VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 512,
}
TOP_DEFAULTS = {"projection_dim": 768}
SUPPORTED_ACT = {"text_config": "gelu", "vision_config": "quick_gelu"}


def _sub_config(hf: dict, key: str, defaults: dict) -> dict:
    base = hf.get(key)
    if base is not None and not isinstance(base, dict):
        raise ConvertError(f"config.json: {key} must be an object, got {type(base).__name__}")
    out = dict(defaults)
    out.update({k: v for k, v in (base or {}).items() if k in defaults})
    legacy = hf.get(key + "_dict")
    if legacy is not None:
        if not isinstance(legacy, dict):
            raise ConvertError(f"config.json: {key}_dict must be an object")
        # transformers builds a full config from the legacy dict (class defaults for the
        # keys it lacks) and lets it override `key` entirely, key by key.
        out = dict(defaults)
        out.update({k: v for k, v in legacy.items() if k in defaults})
    return out


def _check_int(where: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConvertError(f"config.json: {where} must be an integer >= {minimum}, got {value!r}")
    return value


def resolve_config(hf_config: dict) -> dict:
    """Resolve config.json as transformers.AltCLIPConfig does; return the format.md `config`."""
    if not isinstance(hf_config, dict):
        raise ConvertError("config.json must hold a JSON object")
    mt = hf_config.get("model_type")
    if mt is not None and mt != "altclip":
        raise ConvertError(f"config.json: model_type is {mt!r}, expected 'altclip' (an AltCLIPModel checkpoint)")
    text = _sub_config(hf_config, "text_config", TEXT_DEFAULTS)
    vision = _sub_config(hf_config, "vision_config", VISION_DEFAULTS)
    projection_dim = hf_config.get("projection_dim", TOP_DEFAULTS["projection_dim"])

    _check_int("projection_dim", projection_dim)
    for name, sub in (("text_config", text), ("vision_config", vision)):
        for k, v in sub.items():
            if k == "hidden_act":
                if v != SUPPORTED_ACT[name]:
                    raise ConvertError(
                        f"config.json: {name}.hidden_act is {v!r}; the altclip C++ code implements only "
                        f"{SUPPORTED_ACT[name]!r} for the {name.split('_')[0]} tower")
            elif k == "layer_norm_eps":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0) or not math.isfinite(v):
                    raise ConvertError(f"config.json: {name}.layer_norm_eps must be a positive number, got {v!r}")
                sub[k] = float(v)
            elif k in ("pad_token_id", "num_hidden_layers"):
                _check_int(f"{name}.{k}", v, 0)
            elif k == "image_size" or k == "patch_size":
                if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
                    v = sub[k] = v[0]
                _check_int(f"{name}.{k} (a single integer)", v)
            else:
                _check_int(f"{name}.{k}", v)
        if sub["hidden_size"] % sub["num_attention_heads"]:
            raise ConvertError(
                f"config.json: {name}.hidden_size ({sub['hidden_size']}) is not a multiple of "
                f"num_attention_heads ({sub['num_attention_heads']})")
    if text["pad_token_id"] >= text["max_position_embeddings"]:
        raise ConvertError("config.json: text_config.pad_token_id must be < max_position_embeddings")
    if vision["patch_size"] > vision["image_size"]:
        raise ConvertError("config.json: vision_config.patch_size is larger than image_size")
    return {"projection_dim": projection_dim, "text_config": text, "vision_config": vision}
