"""A checkpoint folder (or a hub repo id, downloaded with huggingface_hub): its small files
(config.json, the image processor's settings, sentencepiece.bpe.model), its weights
(model.safetensors, pytorch_model.bin, or either sharded with an *.index.json; safetensors
preferred), the keys renamed to the released spelling, and the check against the schema."""
from __future__ import annotations

import json
import os
import re
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from . import ConvertError
from .config import resolve_config
from .lazy import LazyTensor
from .safetensors_file import open_safetensors
from .schema import canonical_name, expected_tensors, is_ignored_key
from .torch_file import open_torch_bin

def _merge(into: dict, new: dict, label: str):
    dup = sorted(set(into) & set(new))
    if dup:
        raise ConvertError(f"{label}: tensors present in more than one shard: {', '.join(dup[:10])}")
    into.update(new)


def _open_sharded(folder: str, index_name: str, reader) -> Dict[str, LazyTensor]:
    path = os.path.join(folder, index_name)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        assert isinstance(weight_map, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise ConvertError(f"{index_name}: not a valid shard index ({e})") from None
    out: Dict[str, LazyTensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or os.path.basename(shard) != shard:
            raise ConvertError(f"{index_name}: bad shard file name {shard!r}")
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise ConvertError(f"{index_name}: shard {shard} is missing from {folder}")
        _merge(out, reader(shard_path), shard)
    for name, shard in weight_map.items():
        if name not in out:
            raise ConvertError(f"{index_name}: {name} is listed in {shard} but not found there")
    return out


def find_weights(folder: str) -> str:
    """The weights file (or shard index) open_checkpoint will read; safetensors preferred."""
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(folder, name)):
            return name
    raise ConvertError(
        f"{folder}: no weights found (expected model.safetensors, pytorch_model.bin or a sharded "
        f"*.index.json)")


def open_checkpoint(folder: str) -> Dict[str, LazyTensor]:
    """All tensors of the checkpoint in `folder` as stored (keys not renamed), not yet read."""
    name = find_weights(folder)
    path = os.path.join(folder, name)
    reader = open_safetensors if name.startswith("model.safetensors") else open_torch_bin
    if name.endswith(".index.json"):
        return _open_sharded(folder, name, reader)
    return reader(path)


def load_checkpoint(folder: str) -> Dict[str, np.ndarray]:
    """All tensors of the checkpoint in `folder`, name -> numpy array (bf16 widened to f32)."""
    return {k: t.array() for k, t in open_checkpoint(folder).items()}


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConvertError(f"{path}: not found") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# processor_config.json: the image processor's settings as transformers 5 saves them.
_SMALL_FILES = ["config.json", "preprocessor_config.json", "processor_config.json", "sentencepiece.bpe.model"]


def resolve_input(input: str, revision: Optional[str] = None) -> str:
    """A local folder for INPUT: the folder itself, or a hub snapshot for a repo id."""
    if os.path.isdir(input):
        if revision is not None:
            raise ConvertError("--revision applies only to hub repo ids, not to a local folder")
        return input
    if os.path.exists(input):
        raise ConvertError(f"{input}: not a folder (pass the checkpoint folder, not a file in it)")
    if not _REPO_ID.match(input):
        raise ConvertError(f"{input}: no such folder, and not a hub repo id like BAAI/AltCLIP")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConvertError(
            f"{input} is not a local folder; to download it from the hub, `pip install huggingface_hub`, "
            f"or download the repo yourself and pass the local folder") from None
    try:
        # Small files and safetensors first; pytorch_model.bin only if there is no safetensors.
        folder = snapshot_download(input, revision=revision,
                                   allow_patterns=_SMALL_FILES + ["model.safetensors", "model*.safetensors.index.json",
                                                                  "model-*.safetensors"])
        has_st = any(n.startswith("model") and n.endswith((".safetensors", ".safetensors.index.json"))
                     for n in os.listdir(folder))
        if not has_st:
            folder = snapshot_download(input, revision=revision,
                                       allow_patterns=_SMALL_FILES + ["pytorch_model*.bin", "pytorch_model.bin.index.json"])
    except Exception as e:  # network, auth, missing repo or revision
        raise ConvertError(f"{input}: download failed: {type(e).__name__}: {e}") from None
    return folder


def read_small_files(folder: str) -> Tuple[dict, dict, dict, bytes]:
    """config.json (as found, and resolved), the image processor's settings and the
    SentencePiece model of `folder`.

    The image processor's settings are preprocessor_config.json, or (as transformers 5 saves
    an AltCLIPProcessor) the "image_processor" object of processor_config.json."""
    hf_config = _read_json(os.path.join(folder, "config.json"))
    config = resolve_config(hf_config)
    pre_path = os.path.join(folder, "preprocessor_config.json")
    proc_path = os.path.join(folder, "processor_config.json")
    if not os.path.exists(pre_path) and not os.path.exists(proc_path):
        raise ConvertError(f"{pre_path}: not found (nor processor_config.json, as transformers 5 saves an "
                           f"AltCLIPProcessor): the image processor's settings are required")
    if os.path.exists(pre_path):
        preprocessor = _read_json(pre_path)
        if not isinstance(preprocessor, dict):
            raise ConvertError("preprocessor_config.json must hold a JSON object")
    else:
        preprocessor = _read_json(proc_path)
        preprocessor = preprocessor.get("image_processor") if isinstance(preprocessor, dict) else None
        if not isinstance(preprocessor, dict):
            raise ConvertError(f"{proc_path}: no \"image_processor\" object (and no preprocessor_config.json)")
    spm_path = os.path.join(folder, "sentencepiece.bpe.model")
    try:
        with open(spm_path, "rb") as f:
            spm = f.read()
    except FileNotFoundError:
        has_json = os.path.exists(os.path.join(folder, "tokenizer.json"))
        raise ConvertError(
            f"{spm_path}: not found; the altclip tokenizer needs this SentencePiece model"
            + (" (tokenizer.json, which transformers 5's save_pretrained writes instead, cannot stand in for it)"
               if has_json else "")
            + f". Copy sentencepiece.bpe.model from the checkpoint the tokenizer came from into {folder}; for "
            f"BAAI/AltCLIP: `huggingface-cli download BAAI/AltCLIP sentencepiece.bpe.model --local-dir {folder}`, "
            f"or https://huggingface.co/BAAI/AltCLIP/resolve/main/sentencepiece.bpe.model") from None
    return hf_config, config, preprocessor, spm


def canonicalize(state: Mapping[str, LazyTensor]) -> Dict[str, LazyTensor]:
    """Rename keys with canonical_name; two keys that collapse to one are an error."""
    out: Dict[str, LazyTensor] = {}
    origin: Dict[str, str] = {}
    for k, v in state.items():
        c = canonical_name(k)
        if c in out:
            raise ConvertError(f"checkpoint holds both {origin[c]} and {k} (the same tensor)")
        out[c], origin[c] = v, k
    return out


def check_tensors(state: Mapping[str, LazyTensor], config: dict) -> Dict[str, Tuple[int, ...]]:
    """Compare a checkpoint against what the config implies; raise ConvertError listing problems."""
    expected = expected_tensors(config)
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in expected and not is_ignored_key(k))
    wrong = [(k, tuple(state[k].shape), s) for k, s in expected.items()
             if k in state and tuple(state[k].shape) != s]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): " + ", ".join(missing[:20])
                        + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): " + ", ".join(unexpected[:20])
                        + (" ..." if len(unexpected) > 20 else ""))
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) with a shape config.json does not imply: " + "; ".join(
            f"{k} is {list(a)} in the checkpoint, config.json implies {list(b)}" for k, a, b in wrong[:10])
            + (" ..." if len(wrong) > 10 else ""))
    if problems:
        t, v = config["text_config"], config["vision_config"]
        raise ConvertError(
            "checkpoint does not match config.json (resolved: text hidden_size={}, layers={}, vocab={}; "
            "vision hidden_size={}, layers={}, patch={}, image={}; projection_dim={}):\n  ".format(
                t["hidden_size"], t["num_hidden_layers"], t["vocab_size"], v["hidden_size"],
                v["num_hidden_layers"], v["patch_size"], v["image_size"], config["projection_dim"])
            + "\n  ".join(problems))
    bad_types = [f"{k} ({state[k].dtype})" for k in expected
                 if state[k].dtype not in (np.float32, np.float16)]
    if bad_types:
        raise ConvertError("tensors with a dtype other than f32/f16/bf16: " + ", ".join(bad_types[:10]))
    return expected
