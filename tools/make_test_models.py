#!/usr/bin/env python3
"""Build the small random AltCLIP test models and the reference values the C++ tests read.

For each configuration below this script
  1. builds a random `transformers.AltCLIPModel` (fixed seed, every parameter perturbed so
     that LayerNorms and biases matter), saves it hub-style (`save_pretrained`, plus
     `preprocessor_config.json` and the tokenizer files, with tests/data/sentencepiece.bpe.model),
  2. converts that folder with tools/convert.py to tests/data/models/NAME.altclip (and, for
     the first configuration, NAME-f16.altclip and NAME-bf16.altclip),
  3. runs the reference in float32 and writes tests/data/models/NAME.ref: inputs and the
     output of every module (embeddings, each encoder layer, pooler, projections, logits).
     For f16/bf16 the reference is run once more on the weights rounded through that dtype
     (what the C++ code computes with), stored under the prefix `f16.` / `bf16.`.

Rerun: python3 tools/make_test_models.py  (needs torch, transformers, sentencepiece).
The hub folder of the first configuration is kept in tests/data/hub/tiny-altclip for the
end-to-end tests (the local hub server, the main-job script).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import altclip_format  # noqa: E402
import convert  # noqa: E402

from transformers import (  # noqa: E402
    AltCLIPConfig,
    AltCLIPModel,
    AltCLIPProcessor,
    CLIPImageProcessor,
    XLMRobertaTokenizer,
)

DATA = os.path.join(ROOT, "tests", "data")
SPM = os.path.join(DATA, "sentencepiece.bpe.model")
OUT = os.path.join(DATA, "models")
HUB = os.path.join(DATA, "hub")

# The real BAAI/AltCLIP preprocessor_config.json (old style: plain ints).
from make_image_reference import ALTCLIP_CONFIG as REAL_PREPROCESSOR  # noqa: E402

TEXTS = [
    "a photo of a cat",
    "一张猫的照片",
    "Фотография собаки на пляже",
    "صورة لقطة",
    "a",
    "",
    "Ein Hund läuft über die Wiese, während die Sonne untergeht und Kinder spielen.",
]


def spm_size() -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=SPM).get_piece_size()


def _text(vocab, hidden, layers, heads, mlp, positions, project_dim) -> dict:
    return dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=mlp, max_position_embeddings=positions, project_dim=project_dim)


def _vision(hidden, mlp, layers, heads, image, patch) -> dict:
    return dict(hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=heads,
                image_size=image, patch_size=patch)


def configs():
    vocab = spm_size() + 2  # fairseq offset (+1) and <mask>
    return [
        # Legacy override (legacy_text_config_dict), as the real config.json carries: must win over text_config.
        dict(name="tiny", seed=1, projection_dim=16, interpolate=(48, 40), dtypes=("f16", "bf16", "q8"),
             text=_text(vocab, hidden=32, layers=2, heads=4, mlp=64, positions=40, project_dim=24),
             vision=_vision(hidden=32, mlp=64, layers=2, heads=4, image=32, patch=8),
             preprocessor={"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},
             legacy_text_config_dict=True),
        dict(name="wide", seed=2, projection_dim=32, interpolate=(70, 42), dtypes=(),
             text=_text(vocab, hidden=48, layers=3, heads=6, mlp=96, positions=514, project_dim=40),
             vision=_vision(hidden=48, mlp=80, layers=3, heads=3, image=56, patch=14),
             preprocessor={"size": 56, "crop_size": 56}),
        dict(name="real224", seed=3, projection_dim=32, interpolate=None, dtypes=(), pipeline=True,
             text=_text(vocab, hidden=64, layers=2, heads=4, mlp=128, positions=514, project_dim=48),
             vision=_vision(hidden=64, mlp=128, layers=2, heads=2, image=224, patch=32),
             preprocessor=None),  # the real one
    ]


def build_model(cfg) -> AltCLIPModel:
    torch.manual_seed(cfg["seed"])
    config = AltCLIPConfig(text_config=cfg["text"], vision_config=cfg["vision"], projection_dim=cfg["projection_dim"])
    model = AltCLIPModel(config).eval()
    g = torch.Generator().manual_seed(cfg["seed"] + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(2.0 + 0.5 * cfg["seed"])
            elif name.endswith("LayerNorm.weight") or "layer_norm" in name or "layrnorm" in name or "pre_LN" in name:
                if name.endswith(".weight"):
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def save_hub(model: AltCLIPModel, cfg, folder: str):
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    if cfg.get("legacy_text_config_dict"):
        # The real config.json carries both text_config and the legacy text_config_dict,
        # the latter overriding key by key: write it the same way.
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            hf = json.load(f)
        hf["text_config_dict"] = dict(hf.get("text_config", {}))
        hf["text_config_dict"]["hidden_size"] = cfg["text"]["hidden_size"]
        hf.setdefault("text_config", {})["hidden_size"] = 999  # wrong on purpose: the dict must win
        with open(path, "w") as f:
            json.dump(hf, f, indent=2)
    # The hub layout of BAAI/AltCLIP: tokenizer files and preprocessor_config.json side by
    # side (transformers 5's processor.save_pretrained would nest them in processor_config.json).
    # transformers 5's XLMRobertaTokenizer(vocab_file=...) builds an empty vocabulary;
    # from_pretrained on a folder holding only the SentencePiece model converts it properly.
    with tempfile.TemporaryDirectory() as spm_only:
        shutil.copyfile(SPM, os.path.join(spm_only, "sentencepiece.bpe.model"))
        XLMRobertaTokenizer.from_pretrained(spm_only).save_pretrained(folder)
    preprocessor = REAL_PREPROCESSOR if cfg["preprocessor"] is None else \
        CLIPImageProcessor(**cfg["preprocessor"]).to_dict()
    if cfg["preprocessor"] is not None and "size" in cfg["preprocessor"] and isinstance(cfg["preprocessor"]["size"], int):
        preprocessor = dict(REAL_PREPROCESSOR, size=cfg["preprocessor"]["size"], crop_size=cfg["preprocessor"]["crop_size"])
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor, f, indent=2)
    shutil.copyfile(SPM, os.path.join(folder, "sentencepiece.bpe.model"))


def rounded_copy(model: AltCLIPModel, dtype: str) -> AltCLIPModel:
    """The model with its weights as the converted file holds them (logit_scale stays f32):
    f16/bf16 rounding of the matrices and the word embeddings (convert.is_reduced), or q8's
    int8 matrices (times their scales) and bf16 word embeddings."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "logit_scale":
                continue
            key = convert.canonical_name(name)
            if dtype == "q8":
                if convert.is_q8_matrix(key, tuple(p.shape)):
                    q, scale = convert.quantize_q8(p.detach().numpy())
                    shape = (-1,) + (1,) * (q.ndim - 1)
                    p.copy_(torch.from_numpy(q.astype(np.float32) * scale.reshape(shape)))
                elif key.endswith("word_embeddings.weight"):
                    p.copy_(p.to(torch.bfloat16).to(torch.float32))
                continue
            if convert.is_reduced(key, tuple(p.shape)):
                tdt = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype]
                p.copy_(p.to(tdt).to(torch.float32))
    return m


def capture(model: AltCLIPModel, pixel_values, input_ids, attention_mask, interpolate=False):
    """Runs the reference with hooks on every module whose output the C++ tests compare."""
    got = {}
    hooks = []

    def hook(name):
        def fn(_mod, _inp, out):
            got[name] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return fn

    vm, tm = model.vision_model, model.text_model
    hooks.append(vm.embeddings.register_forward_hook(hook("vision.embeddings")))
    hooks.append(vm.pre_layrnorm.register_forward_hook(hook("vision.hidden_states.0")))
    for i, layer in enumerate(vm.encoder.layers):
        hooks.append(layer.register_forward_hook(hook(f"vision.hidden_states.{i + 1}")))
    hooks.append(tm.roberta.embeddings.register_forward_hook(hook("text.hidden_states.0")))
    text_layers = getattr(tm.roberta.encoder, "layers", None) or tm.roberta.encoder.layer
    for i, layer in enumerate(text_layers):
        hooks.append(layer.register_forward_hook(hook(f"text.hidden_states.{i + 1}")))
    try:
        with torch.inference_mode():
            vis = vm(pixel_values=pixel_values, interpolate_pos_encoding=interpolate)
            txt = tm(input_ids=input_ids, attention_mask=attention_mask)
            image_features = model.get_image_features(pixel_values=pixel_values, interpolate_pos_encoding=interpolate)
            text_features = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            out = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                        interpolate_pos_encoding=interpolate)
    finally:
        for h in hooks:
            h.remove()

    def features(x):  # transformers 5 returns a ModelOutput from get_*_features
        return x if isinstance(x, torch.Tensor) else x.pooler_output

    got["vision.last_hidden_state"] = vis.last_hidden_state
    got["vision.pooler_output"] = vis.pooler_output
    got["text.last_hidden_state"] = txt.last_hidden_state
    got["text.pooler_output"] = txt.pooler_output
    got["image_embeds"] = features(image_features)
    got["text_embeds"] = features(text_features)
    got["forward.logits_per_image"] = out.logits_per_image
    got["forward.logits_per_text"] = out.logits_per_text
    got["forward.image_embeds"] = out.image_embeds
    got["forward.text_embeds"] = out.text_embeds
    return {k: v.float().numpy().copy() for k, v in got.items()}


# Image files -> AltCLIPProcessor -> AltCLIPModel.forward, and CLIP-style template averaging,
# for the processor + model tests and the zero_shot example. PNGs only: they decode
# identically in Pillow and stb_image (JPEG decoders differ by a few levels).
PIPELINE_IMAGES = ["images/chelsea.png", "images/camera.png", "images/rgb_500x7.png"]
PIPELINE_LABELS = ["a cat", "一只狗", "une tasse de café", "ein Astronaut", "кошка", "صاروخ"]
PIPELINE_TEMPLATES = ["a photo of a {}", "{}", "una foto de {}"]


def pipeline_reference(model, processor, tensors) -> dict:
    from PIL import Image

    images = [Image.open(os.path.join(DATA, p)) for p in PIPELINE_IMAGES]
    inputs = processor(text=PIPELINE_LABELS, images=images, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(**inputs)
        # Template averaging: mean of the normalised template embeddings per label, renormalised.
        texts = [t.replace("{}", label) for label in PIPELINE_LABELS for t in PIPELINE_TEMPLATES]
        enc = processor.tokenizer(texts, padding=True, return_tensors="pt")
        te = model.get_text_features(**enc).pooler_output
        te = te / te.norm(dim=-1, keepdim=True)
        te = te.reshape(len(PIPELINE_LABELS), len(PIPELINE_TEMPLATES), -1).mean(dim=1)
        te = te / te.norm(dim=-1, keepdim=True)
        ie = out.image_embeds
        templ_logits = model.logit_scale.exp() * ie @ te.t()
    tensors["pipeline.pixel_values"] = inputs["pixel_values"].numpy()
    tensors["pipeline.input_ids"] = inputs["input_ids"].numpy().astype(np.int64)
    tensors["pipeline.logits_per_image"] = out.logits_per_image.numpy()
    tensors["pipeline.probs"] = out.logits_per_image.softmax(dim=-1).numpy()
    tensors["pipeline.template_probs"] = templ_logits.softmax(dim=-1).numpy()
    return {"images": PIPELINE_IMAGES, "labels": PIPELINE_LABELS, "templates": PIPELINE_TEMPLATES}


def make(cfg):
    name = cfg["name"]
    print(f"== {name}", file=sys.stderr)
    model = build_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, name)
        save_hub(model, cfg, folder)
        processor = AltCLIPProcessor.from_pretrained(folder)
        for dtype in ("f32",) + tuple(cfg["dtypes"]):
            suffix = "" if dtype == "f32" else f"-{dtype}"
            convert.convert(folder, os.path.join(OUT, f"{name}{suffix}.altclip"), dtype=dtype)
        if name == "tiny":
            keep = os.path.join(HUB, "tiny-altclip")
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(folder, keep)

    vc = cfg["vision"]
    g = torch.Generator().manual_seed(cfg["seed"] + 200)
    pixel_values = torch.randn(3, 3, vc["image_size"], vc["image_size"], generator=g)
    # Truncated to the model's limit (max_position_embeddings - 2), as the C++ tokenizer does.
    max_tokens = cfg["text"]["max_position_embeddings"] - 2
    enc = processor.tokenizer(TEXTS, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]

    tensors = {
        "vision.pixel_values": pixel_values.numpy(),
        "text.input_ids": input_ids.numpy().astype(np.int64),
        "text.attention_mask": attention_mask.numpy().astype(np.int64),
    }
    for k, v in capture(model, pixel_values, input_ids, attention_mask).items():
        tensors[k] = v

    # Each text alone (no padding) must give the same numbers as in the padded batch.
    single = processor.tokenizer([TEXTS[-1]], truncation=True, max_length=max_tokens, return_tensors="pt")
    with torch.inference_mode():
        tensors["single.text_embeds"] = model.get_text_features(**single).pooler_output.numpy()
    tensors["single.input_ids"] = single["input_ids"].numpy().astype(np.int64)

    if cfg["interpolate"]:
        h, w = cfg["interpolate"]
        px = torch.randn(2, 3, h, w, generator=g)
        cap = capture(model, px, input_ids, attention_mask, interpolate=True)
        tensors["interp.pixel_values"] = px.numpy()
        for k in ("vision.embeddings", "vision.last_hidden_state", "vision.pooler_output", "image_embeds"):
            tensors["interp." + k] = cap[k]

    for dtype in cfg["dtypes"]:
        cap = capture(rounded_copy(model, dtype), pixel_values, input_ids, attention_mask)
        for k in ("image_embeds", "text_embeds", "forward.logits_per_image", "vision.last_hidden_state",
                  "text.last_hidden_state"):
            tensors[f"{dtype}.{k}"] = cap[k]

    pipeline_meta = None
    if cfg.get("pipeline"):
        pipeline_meta = pipeline_reference(model, processor, tensors)

    metadata = {
        "generator": "tools/make_test_models.py",
        "model": f"{name}.altclip",
        "texts": TEXTS,
        "single_text": TEXTS[-1],
        "interpolate": list(cfg["interpolate"]) if cfg["interpolate"] else None,
        "dtypes": list(cfg["dtypes"]),
        "torch": torch.__version__,
        "pipeline": pipeline_meta,
    }
    import transformers

    metadata["transformers"] = transformers.__version__
    altclip_format.write_container(os.path.join(OUT, f"{name}.ref"),
                                   {k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                   metadata=metadata)


def main():
    torch.set_num_threads(1)  # deterministic reductions
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")  # byte-identical model files on every run
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(HUB, exist_ok=True)
    for cfg in configs():
        make(cfg)
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
