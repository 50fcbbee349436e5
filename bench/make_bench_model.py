#!/usr/bin/env python3
"""Build the benchmark model: a random transformers `AltCLIPModel` with the real BAAI/AltCLIP
shapes, saved hub-style and converted to altclip files in every dtype tools/convert.py offers.

    python3 bench/make_bench_model.py [--cache DIR] [--dtypes f32,bf16,...] [--force]

Shapes (/work/shared/reference/ALTCLIP_REFERENCE.md, section 1): vision ViT-L/14 at 224
(hidden 1024, 24 layers, 16 heads, MLP 4096), text XLM-R large (vocab 250002, hidden 1024,
24 layers, 16 heads, MLP 4096, max_position_embeddings 514, project_dim 768), projection_dim
768: 864M parameters, 3.46 GB in f32. The tokenizer is the small test SentencePiece model
(tests/data/sentencepiece.bpe.model, ~2.4k pieces): token ids stay below its size, but the
embedding table has the real 250002 rows, so memory and load times are the real ones.

Layout of the cache (default bench/.cache/altclip-large/, git-ignored):
    hub/                      config.json, model.safetensors, tokenizer and preprocessor files
    altclip-large-f32.altclip, altclip-large-bf16.altclip, ...   (one per dtype)
    spec.json                 what was built (a different spec rebuilds everything)
Nothing is rebuilt when the files for the wanted dtypes exist and spec.json matches; a file
converted by another version of tools/convert.py (FILE.converter holds its digest) is converted again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = os.path.join(ROOT, "tools")
SPM = os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model")
DEFAULT_CACHE = os.path.join(HERE, ".cache", "altclip-large")
NAME = "altclip-large"
SEED = 20240501

sys.path.insert(0, TOOLS)
import convert  # noqa: E402

# The real BAAI/AltCLIP shapes.
TEXT = dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
            intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
            project_dim=768, hidden_act="gelu", layer_norm_eps=1e-5)
VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
              num_channels=3, image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5)
PROJECTION_DIM = 768
# The real BAAI/AltCLIP preprocessor_config.json.
PREPROCESSOR = {
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "size": 224,
}
SPEC = {"version": 1, "seed": SEED, "text": TEXT, "vision": VISION, "projection_dim": PROJECTION_DIM}


def log(msg: str) -> None:
    print(f"[make_bench_model {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def model_path(cache: str, dtype: str) -> str:
    return os.path.join(cache, f"{NAME}-{dtype}.altclip")


def hub_path(cache: str) -> str:
    return os.path.join(cache, "hub")


def available_dtypes() -> tuple:
    return tuple(convert.DTYPES)


def converter_digest() -> str:
    """sha256 of the converter's sources: a converted file made by another version is redone."""
    import hashlib
    h = hashlib.sha256()
    tools = os.path.dirname(convert.__file__)
    package = sorted(os.path.join("altclip_convert", n) for n in os.listdir(os.path.join(tools, "altclip_convert"))
                     if n.endswith(".py"))
    for name in ["convert.py", "altclip_format.py"] + package:
        with open(os.path.join(tools, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _converted_ok(out: str) -> bool:
    try:
        with open(out + ".converter") as f:
            return os.path.exists(out) and f.read().strip() == converter_digest()
    except OSError:
        return False


def _spec_ok(cache: str) -> bool:
    try:
        with open(os.path.join(cache, "spec.json")) as f:
            return json.load(f) == SPEC
    except (OSError, ValueError):
        return False


def build_hub(folder: str) -> None:
    """Random AltCLIPModel with the real shapes, saved as the hub repo is laid out."""
    import torch
    from transformers import AltCLIPConfig, AltCLIPModel, XLMRobertaTokenizer

    t0 = time.monotonic()
    torch.manual_seed(SEED)
    config = AltCLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJECTION_DIM)
    log("initialising a random AltCLIPModel (864M parameters) ...")
    model = AltCLIPModel(config).eval()
    # Non-trivial LayerNorms (default init is 1/0), so the dtype accuracy numbers mean something.
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("LayerNorm" in name or "layer_norm" in name or "layrnorm" in name
                                 or "pre_LN" in name):
                if name.endswith(".weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
    n = sum(p.numel() for p in model.parameters())
    log(f"initialised {n:,} parameters in {time.monotonic() - t0:.1f}s; saving to {folder} ...")
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    del model
    # transformers 5: from_pretrained on a folder holding only the SentencePiece model builds the
    # vocabulary properly (XLMRobertaTokenizer(vocab_file=...) would not); see tools/make_test_models.py.
    with tempfile.TemporaryDirectory() as spm_only:
        shutil.copyfile(SPM, os.path.join(spm_only, "sentencepiece.bpe.model"))
        XLMRobertaTokenizer.from_pretrained(spm_only).save_pretrained(folder)
    shutil.copyfile(SPM, os.path.join(folder, "sentencepiece.bpe.model"))
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
    log(f"saved the hub folder in {time.monotonic() - t0:.1f}s")


class _Progress:
    def __init__(self, label: str):
        self.label, self.last = label, 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 2.0:
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        log(f"{self.label}: {phase} {done / 1e9:.2f} / {total / 1e9:.2f} GB ({pct:.0f}%)")


def ensure_hub(cache: str = DEFAULT_CACHE, force: bool = False) -> str:
    """Makes the hub folder if it is missing or was built to another spec (dropping the converted
    files made from the old one); returns the folder."""
    os.makedirs(cache, exist_ok=True)
    hub = hub_path(cache)
    if force or not _spec_ok(cache):
        if os.path.isdir(hub) or any(os.path.exists(model_path(cache, d)) for d in available_dtypes()):
            log("cache spec differs or --force: rebuilding")
        shutil.rmtree(hub, ignore_errors=True)
        for d in available_dtypes():
            if os.path.exists(model_path(cache, d)):
                os.remove(model_path(cache, d))
        try:
            os.remove(os.path.join(cache, "spec.json"))
        except FileNotFoundError:
            pass
        build_hub(hub)
        with open(os.path.join(cache, "spec.json"), "w") as f:
            json.dump(SPEC, f, indent=2)
    return hub


def ensure(cache: str = DEFAULT_CACHE, dtypes=None, force: bool = False) -> dict:
    """Makes whatever is missing; returns {"hub": folder, "files": {dtype: path}}."""
    dtypes = tuple(dtypes) if dtypes else available_dtypes()
    for d in dtypes:
        if d not in available_dtypes():
            raise SystemExit(f"make_bench_model: tools/convert.py offers {', '.join(available_dtypes())}, not {d!r}")
    hub = ensure_hub(cache, force)
    files = {}
    for d in dtypes:
        out = model_path(cache, d)
        if not _converted_ok(out):
            t0 = time.monotonic()
            why = "tools/convert.py changed since" if os.path.exists(out) else "no file yet"
            log(f"converting to {os.path.basename(out)} ({why}) ...")
            convert.convert(hub, out, dtype=d, progress=_Progress(d))
            with open(out + ".converter", "w") as f:
                f.write(converter_digest() + "\n")
            log(f"wrote {out} ({os.path.getsize(out) / 1e9:.2f} GB) in {time.monotonic() - t0:.1f}s")
        files[d] = out
    return {"hub": hub, "files": files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=DEFAULT_CACHE, help=f"cache folder (default {os.path.relpath(DEFAULT_CACHE)})")
    ap.add_argument("--dtypes", default=",".join(available_dtypes()),
                    help=f"comma-separated dtypes to convert to (default: all of {','.join(available_dtypes())})")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is complete")
    args = ap.parse_args(argv)
    got = ensure(args.cache, [d for d in args.dtypes.split(",") if d], args.force)
    log("ready: " + ", ".join(f"{d}: {p}" for d, p in got["files"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
