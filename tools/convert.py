#!/usr/bin/env python3
"""Convert a Hugging Face AltCLIP checkpoint (BAAI/AltCLIP and siblings) to the altclip
model file (docs/format.md). Usage and checks: docs/converter.md.

    tools/convert.py INPUT OUTPUT [--dtype f32|f16|bf16|q8] [--revision REV] [--quiet]

Needs only numpy and the standard library (huggingface_hub, if installed, for hub ids).
It never imports torch and never executes code from a pickle: `pytorch_model.bin` is read
with a restricted unpickler that only knows how to rebuild tensors.

Importable pieces (put tools/ on sys.path, then `import convert`):

    resolve_config(hf_config: dict) -> dict
    expected_tensors(config: dict) -> dict[str, tuple[int, ...]]
    canonical_name(key) -> str / canonicalize(state) -> dict   (layer/layers spellings, see below)
    check_tensors(state, config) -> dict[str, tuple]        (raises ConvertError listing problems)
    read_safetensors(path) -> dict[str, np.ndarray]
    read_torch_bin(path) -> dict[str, np.ndarray]
    load_checkpoint(folder) -> dict[str, np.ndarray]
    resolve_input(input, revision=None) -> str            (a local folder)
    convert(input, output, dtype="f32", progress=None, revision=None) -> dict  (the header's metadata)

Arrays returned by the readers are read-only views of memory-mapped files where possible;
bf16 sources are widened to float32. The readers return keys as stored; convert() renames
them with canonicalize() to the released checkpoint's spelling before checking them.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import math
import mmap
import os
import pickle
import re
import struct
import sys
import time
import zipfile
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import altclip_format  # noqa: E402

CONVERTER_VERSION = "1.1"
DTYPES = ("f32", "f16", "bf16", "q8")

# --dtype q8: the weight matrices of the layers, the patch embedding and the projections
# become int8 with one float32 scale per output row (symmetric: w ~ q * scale, |q| <= 127),
# stored as KEY (i8) and KEY + "_scale" (f32 [out]). The word embedding table is only read
# row by row, so it stays in bf16 (8 bits would cost accuracy and buy no speed); the other
# embeddings, norms, biases and logit_scale stay f32.
Q8_SCALE_SUFFIX = "_scale"

# --dtype f32 and bf16: the same weight matrices are stored in the GEMM kernels' panel layout
# (docs/format.md, "layout": "panels"), so that no product repacks them: a ViT-L/14 image's
# matrix products 11-12% faster than packing 32-row panels per call, a 16-token text's up to 20%
# (bench/gemm_bench.cpp shapes). q8 matrices stay row-major: three kernels read them in three
# different unit types (int8 quads, bfloat16 pairs, float32).


def is_reduced(name: str, shape) -> bool:
    """Tensors that --dtype f16/bf16 store in 16 bits: the layers' weight matrices, the patch
    embedding, the projections and the word embedding table. Biases, norms, the class and
    position embeddings stay float32: they are a few MB in all, and rounding them costs
    accuracy for nothing (text cosine 0.99985 -> 0.99997 against f32 on the bench model)."""
    return is_q8_matrix(name, shape) or name.endswith("word_embeddings.weight")


def is_q8_matrix(name: str, shape) -> bool:
    tables = ("word_embeddings.", "position_embeddings.", "token_type_embeddings.", "position_embedding.")
    return name.endswith(".weight") and len(shape) in (2, 4) and not any(t in name for t in tables)


def quantize_q8(a: np.ndarray):
    """Per-row symmetric int8: returns (q int8 [rows, ...], scale float32 [rows])."""
    rows = a.reshape(a.shape[0], -1)
    amax = np.max(np.abs(rows), axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(a.shape), scale


class ConvertError(Exception):
    """An expected failure: bad input, unsafe pickle, mismatching config. No traceback."""


# --------------------------------------------------------------------------------------
# config

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


def expected_tensors(config: dict) -> Dict[str, Tuple[int, ...]]:
    """Every tensor name of AltCLIPModel.state_dict() (minus unused buffers) and its shape."""
    t, v, P = config["text_config"], config["vision_config"], config["projection_dim"]
    out: Dict[str, Tuple[int, ...]] = {}
    H, I = t["hidden_size"], t["intermediate_size"]

    def linear(prefix, n_out, n_in, bias=True):
        out[prefix + ".weight"] = (n_out, n_in)
        if bias:
            out[prefix + ".bias"] = (n_out,)

    def norm(prefix, n):
        out[prefix + ".weight"] = (n,)
        out[prefix + ".bias"] = (n,)

    e = "text_model.roberta.embeddings."
    out[e + "word_embeddings.weight"] = (t["vocab_size"], H)
    out[e + "position_embeddings.weight"] = (t["max_position_embeddings"], H)
    out[e + "token_type_embeddings.weight"] = (t["type_vocab_size"], H)
    norm(e + "LayerNorm", H)
    for i in range(t["num_hidden_layers"]):
        p = f"text_model.roberta.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            linear(p + "attention.self." + name, H, H)
        linear(p + "attention.output.dense", H, H)
        norm(p + "attention.output.LayerNorm", H)
        linear(p + "intermediate.dense", I, H)
        linear(p + "output.dense", H, I)
        norm(p + "output.LayerNorm", H)
    norm("text_model.pre_LN", H)
    linear("text_model.transformation", t["project_dim"], H)

    Hv, Iv, ps = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    e = "vision_model.embeddings."
    out[e + "class_embedding"] = (Hv,)
    out[e + "patch_embedding.weight"] = (Hv, v["num_channels"], ps, ps)
    out[e + "position_embedding.weight"] = ((v["image_size"] // ps) ** 2 + 1, Hv)
    norm("vision_model.pre_layrnorm", Hv)
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(p + "self_attn." + name, Hv, Hv)
        norm(p + "layer_norm1", Hv)
        linear(p + "mlp.fc1", Iv, Hv)
        linear(p + "mlp.fc2", Hv, Iv)
        norm(p + "layer_norm2", Hv)
    norm("vision_model.post_layernorm", Hv)

    linear("visual_projection", P, Hv, bias=False)
    linear("text_projection", P, t["project_dim"], bias=False)
    out["logit_scale"] = ()
    return out


# transformers 5 names the layer lists `layers` for both towers in memory (so
# torch.save(model.state_dict()) writes text `...encoder.layers.N`), and its save_pretrained
# writes vision `...encoder.layer.N`. The released checkpoints, and the model file, use text
# `text_model.roberta.encoder.layer.N` and vision `vision_model.encoder.layers.N`.
_KEY_RENAMES = [
    (re.compile(r"^text_model\.roberta\.encoder\.layers\.(\d+)\."), r"text_model.roberta.encoder.layer.\1."),
    (re.compile(r"^vision_model\.encoder\.layer\.(\d+)\."), r"vision_model.encoder.layers.\1."),
]


def canonical_name(name: str) -> str:
    """The released checkpoint's spelling of a state_dict key (see _KEY_RENAMES)."""
    for pattern, repl in _KEY_RENAMES:
        name = pattern.sub(repl, name)
    return name


def canonicalize(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Rename keys with canonical_name; two keys that collapse to one are an error."""
    out: Dict[str, np.ndarray] = {}
    origin: Dict[str, str] = {}
    for k, v in state.items():
        c = canonical_name(k)
        if c in out:
            raise ConvertError(f"checkpoint holds both {origin[c]} and {k} (the same tensor)")
        out[c], origin[c] = v, k
    return out


def is_ignored_key(name: str) -> bool:
    """Keys some checkpoints carry that the model does not use."""
    return name.endswith(".position_ids") or name.startswith("text_model.roberta.pooler.dense.")


# --------------------------------------------------------------------------------------
# safetensors

SAFETENSORS_MAX_HEADER = 100_000_000
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def _map_file(path: str) -> np.ndarray:
    """The whole file as a read-only uint8 array backed by mmap (empty files: empty array)."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, np.uint8)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mm, dtype=np.uint8)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Read a .safetensors file with the reference reader's checks; bf16 widened to float32."""
    label = os.path.basename(path)
    buf = _map_file(path)
    size = len(buf)
    if size < 8:
        raise ConvertError(f"{label}: {size} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", bytes(buf[:8]))
    if n > SAFETENSORS_MAX_HEADER:
        raise ConvertError(f"{label}: header length {n} exceeds the {SAFETENSORS_MAX_HEADER}-byte limit")
    if 8 + n > size:
        raise ConvertError(f"{label}: header length {n} runs past the end of the file ({size} bytes)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{label}: header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{label}: header is not a JSON object")
    data = buf[8 + n:]
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ConvertError(f"{label}: tensor {name}: entry is not an object")
        dt, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dt not in SAFETENSORS_DTYPES:
            raise ConvertError(f"{label}: tensor {name}: unsupported dtype {dt!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ConvertError(f"{label}: tensor {name}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)
                or not 0 <= offs[0] <= offs[1]):
            raise ConvertError(f"{label}: tensor {name}: bad data_offsets {offs!r}")
        itemsize = np.dtype(SAFETENSORS_DTYPES[dt]).itemsize
        nbytes = math.prod(shape) * itemsize
        if offs[1] - offs[0] != nbytes:
            raise ConvertError(
                f"{label}: tensor {name}: data_offsets {offs} span {offs[1] - offs[0]} bytes, "
                f"but shape {shape} x {dt} needs {nbytes}")
        entries.append((offs[0], offs[1], name, dt, shape))
    entries.sort()
    expected = 0
    for begin, end, name, _, _ in entries:
        if begin != expected:
            what = "a gap" if begin > expected else "an overlap"
            raise ConvertError(
                f"{label}: tensor {name}: data_offsets start at {begin}, expected {expected} ({what} "
                f"between tensors)")
        expected = end
    if expected != len(data):
        raise ConvertError(
            f"{label}: tensors cover {expected} bytes of data, but the file has {len(data)} bytes after "
            f"the header (truncated or padded file)")
    out = {}
    for begin, end, name, dt, shape in sorted(entries, key=lambda e: e[2]):
        arr = data[begin:end].view(SAFETENSORS_DTYPES[dt]).reshape(shape)
        if dt == "BF16":
            arr = altclip_format.bf16_bits_to_float32(arr)
        out[name] = arr
    return out


# --------------------------------------------------------------------------------------
# pytorch_model.bin (torch zip format, legacy format), without torch and without exec

TORCH_STORAGES = {
    "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "<u2", "DoubleStorage": "<f8",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PROTOCOL = 1001


class _Refused(Exception):
    pass


class _StorageType:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __setstate__(self, state):
        raise _Refused("BUILD on a storage type")


class _Storage:
    __slots__ = ("array", "bf16")

    def __init__(self, array, bf16):
        self.array, self.bf16 = array, bf16

    def __setstate__(self, state):
        raise _Refused("BUILD on a storage")


class _Tensor:
    __slots__ = ("array", "bf16")

    def __init__(self, array, bf16):
        self.array, self.bf16 = array, bf16

    def __setstate__(self, state):
        raise _Refused("BUILD on a tensor")


def _bad(msg):
    raise pickle.UnpicklingError(msg)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    if not isinstance(storage, _Storage):
        _bad("tensor rebuilt from something that is not a storage")
    if not (_is_int(storage_offset) and storage_offset >= 0):
        _bad(f"bad storage offset {storage_offset!r}")
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)
            and all(_is_int(s) and s >= 0 for s in size) and all(_is_int(s) and s >= 0 for s in stride)):
        _bad(f"bad tensor size {size!r} / stride {stride!r} (negative strides are not supported)")
    base = storage.array
    numel = math.prod(size)
    if numel:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= len(base):
            _bad(f"tensor of size {list(size)}, stride {list(stride)}, offset {storage_offset} reads past "
                 f"the end of its storage ({len(base)} elements)")
        arr = np.lib.stride_tricks.as_strided(
            base[storage_offset:], shape=tuple(size), strides=tuple(s * base.itemsize for s in stride),
            writeable=False)
    else:
        arr = np.zeros(tuple(size), base.dtype)
    return _Tensor(arr, storage.bf16)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if backward_hooks:
        _bad("tensor with backward hooks")
    if metadata:
        _bad("tensor with extra metadata")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, _Tensor):
        _bad("parameter rebuilt from something that is not a tensor")
    if backward_hooks or state:
        _bad("parameter with hooks or extra state")
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _TensorUnpickler(pickle.Unpickler):
    """Knows the globals tensor rebuilding needs and nothing else; storages come from
    `load_storage(key, numpy_dtype_str, numel)`."""

    def __init__(self, file, load_storage=None):
        super().__init__(file)
        self._load_storage = load_storage
        self._storages: dict = {}

    def find_class(self, module, name):
        fn = _ALLOWED_GLOBALS.get((module, name))
        if fn is not None:
            return fn
        if module == "torch" and name in TORCH_STORAGES:
            return _StorageType(name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if self._load_storage is None:
            _bad("persistent id outside a checkpoint")
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] not in ("storage", b"storage"):
            _bad(f"unknown persistent id {pid!r:.80}")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(stype, _StorageType) or not isinstance(key, (str, bytes)) or not _is_int(numel) or numel < 0:
            _bad(f"bad storage reference {pid!r:.80}")
        key = key.decode("ascii") if isinstance(key, bytes) else key
        cache_key = (key, stype.name)
        if cache_key not in self._storages:
            dtype = TORCH_STORAGES[stype.name]
            arr = self._load_storage(key, dtype, numel)
            self._storages[cache_key] = _Storage(arr, stype.name == "BFloat16Storage")
        st = self._storages[cache_key]
        if view is not None:  # legacy format: (view_key, offset, size) into the root storage
            if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1]) and _is_int(view[2])
                    and 0 <= view[1] and 0 <= view[2] and view[1] + view[2] <= len(st.array)):
                _bad(f"bad storage view {view!r:.80}")
            st = _Storage(st.array[view[1]:view[1] + view[2]], st.bf16)
        return st


def _unpickle(label: str, file, load_storage=None):
    try:
        return _TensorUnpickler(file, load_storage).load()
    except _Refused as e:
        raise ConvertError(
            f"{label}: refusing to load: the pickle calls {e}, which is not tensor rebuilding. "
            f"Convert from model.safetensors instead, or re-save the checkpoint with "
            f"save_pretrained(safe_serialization=True)") from None
    except ConvertError:
        raise
    except Exception as e:  # malformed pickles raise all sorts of things
        raise ConvertError(f"{label}: not a valid torch checkpoint: {type(e).__name__}: {e}") from None


def _collect_state_dict(label: str, obj) -> Dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError(f"{label}: the pickle holds a {type(obj).__name__}, not a state_dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, _Tensor):
            raise ConvertError(f"{label}: entry {k!r:.80} is not a tensor; expected a flat state_dict")
        out[k] = altclip_format.bf16_bits_to_float32(v.array) if v.bf16 else v.array
    return out


def _zip_member_data(path: str, buf: np.ndarray, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    if info.compress_type != zipfile.ZIP_STORED:
        return np.frombuffer(zf.read(info), np.uint8)
    h = info.header_offset
    local = bytes(buf[h:h + 30])
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ConvertError(f"{os.path.basename(path)}: bad zip local header for {info.filename}")
    n_name, n_extra = struct.unpack("<HH", local[26:30])
    start = h + 30 + n_name + n_extra
    if start + info.file_size > len(buf):
        raise ConvertError(f"{os.path.basename(path)}: zip member {info.filename} runs past the end of the file")
    return buf[start:start + info.file_size]


def read_torch_bin(path: str) -> Dict[str, np.ndarray]:
    """Read a torch.save()d state_dict without torch, refusing anything but tensor rebuilding."""
    label = os.path.basename(path)
    if zipfile.is_zipfile(path):
        return _read_torch_zip(path, label)
    return _read_torch_legacy(path, label)


def _read_torch_zip(path: str, label: str) -> Dict[str, np.ndarray]:
    buf = _map_file(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ConvertError(f"{label}: bad zip file: {e}") from None
    with zf:
        members = {i.filename: i for i in zf.infolist()}
        pkls = [n for n in members if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ConvertError(f"{label}: zip file without exactly one <archive>/data.pkl: not a torch checkpoint")
        prefix = pkls[0][: -len("data.pkl")]
        bo = members.get(prefix + "byteorder")
        if bo is not None and zf.read(bo).strip() not in (b"little", b""):
            raise ConvertError(f"{label}: big-endian checkpoints are not supported")

        def load_storage(key, dtype, numel):
            info = members.get(f"{prefix}data/{key}")
            if info is None:
                _bad(f"storage {key} missing from the archive")
            raw = _zip_member_data(path, buf, zf, info)
            itemsize = np.dtype(dtype).itemsize
            if len(raw) < numel * itemsize:
                _bad(f"storage {key} has {len(raw)} bytes, {numel} x {itemsize} expected")
            return raw[: numel * itemsize].view(dtype)

        obj = _unpickle(label, io.BytesIO(zf.read(members[pkls[0]])), load_storage)
        return _collect_state_dict(label, obj)


def _read_torch_legacy(path: str, label: str) -> Dict[str, np.ndarray]:
    """The pre-1.6 torch.save format: pickles (magic, protocol, sys info, the object, the
    storage keys), then each storage as an int64 element count and its raw data."""
    buf = _map_file(path)
    with open(path, "rb") as f:
        magic = _unpickle(label, f)
        if magic != TORCH_LEGACY_MAGIC:
            raise ConvertError(f"{label}: neither a torch zip checkpoint nor a legacy torch checkpoint "
                               f"(a plain pickle holding a {type(magic).__name__})")
        if _unpickle(label, f) != TORCH_LEGACY_PROTOCOL:
            raise ConvertError(f"{label}: unknown legacy torch protocol version")
        _unpickle(label, f)  # sys info: a dict of plain values
        # The storage data comes after the object pickle: read the pickle once with
        # placeholders to learn the storages, locate their data, then read it again.
        wanted: Dict[str, tuple] = {}

        def placeholder(key, dtype, numel):
            wanted[key] = (dtype, numel)
            return np.broadcast_to(np.zeros(1, dtype), (numel,))

        start = f.tell()
        _unpickle(label, f, placeholder)
        keys = _unpickle(label, f)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConvertError(f"{label}: bad storage key list")
        pos = f.tell()
        real: Dict[str, np.ndarray] = {}
        for k in keys:
            if k not in wanted:
                raise ConvertError(f"{label}: storage {k} listed but never used")
            dtype, numel = wanted[k]
            nbytes = numel * np.dtype(dtype).itemsize
            count = struct.unpack("<q", bytes(buf[pos:pos + 8]))[0] if pos + 8 <= len(buf) else None
            if count != numel or pos + 8 + nbytes > len(buf):
                raise ConvertError(f"{label}: storage {k}: bad or truncated data (expected {numel} elements)")
            real[k] = buf[pos + 8:pos + 8 + nbytes].view(dtype)
            pos += 8 + nbytes
        missing = sorted(set(wanted) - set(real))
        if missing:
            raise ConvertError(f"{label}: storages without data: {', '.join(missing[:5])}")
        f.seek(start)
        obj = _unpickle(label, f, lambda k, d, n: real[k] if real[k].dtype == np.dtype(d) and len(real[k]) == n
                        else _bad(f"storage {k} used with two types or sizes"))
    return _collect_state_dict(label, obj)


# --------------------------------------------------------------------------------------
# checkpoint folder

def _merge(into: dict, new: dict, label: str):
    dup = sorted(set(into) & set(new))
    if dup:
        raise ConvertError(f"{label}: tensors present in more than one shard: {', '.join(dup[:10])}")
    into.update(new)


def _load_sharded(folder: str, index_name: str, reader) -> Dict[str, np.ndarray]:
    path = os.path.join(folder, index_name)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        assert isinstance(weight_map, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise ConvertError(f"{index_name}: not a valid shard index ({e})") from None
    out: Dict[str, np.ndarray] = {}
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
    """The weights file (or shard index) load_checkpoint will read; safetensors preferred."""
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(folder, name)):
            return name
    raise ConvertError(
        f"{folder}: no weights found (expected model.safetensors, pytorch_model.bin or a sharded "
        f"*.index.json)")


def load_checkpoint(folder: str) -> Dict[str, np.ndarray]:
    """All tensors of the checkpoint in `folder`, name -> numpy array (bf16 widened to f32)."""
    name = find_weights(folder)
    path = os.path.join(folder, name)
    if name == "model.safetensors":
        return read_safetensors(path)
    if name == "pytorch_model.bin":
        return read_torch_bin(path)
    if name.startswith("model.safetensors"):
        return _load_sharded(folder, name, read_safetensors)
    return _load_sharded(folder, name, read_torch_bin)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConvertError(f"{path}: not found") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SMALL_FILES = ["config.json", "preprocessor_config.json", "sentencepiece.bpe.model"]


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


# --------------------------------------------------------------------------------------
# conversion

def check_tensors(state: Mapping[str, np.ndarray], config: dict) -> Dict[str, Tuple[int, ...]]:
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


class _Converted(Mapping):
    """Lazy name -> converted tensor, reporting conversion progress."""

    def __init__(self, state, names, dtype, report):
        self.state, self.dtype, self.report = state, dtype, report
        self.names = list(names)
        self.total = sum(int(state[k].size) * 4 for k in names)
        self.done = 0
        if dtype == "q8":  # each int8 matrix is followed by its per-row scales
            self.names = [m for k in names for m in
                          ((k, k + Q8_SCALE_SUFFIX) if is_q8_matrix(k, state[k].shape) else (k,))]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name):
        if self.dtype == "q8" and name not in self.state and name.endswith(Q8_SCALE_SUFFIX):
            base = name[: -len(Q8_SCALE_SUFFIX)]
            return quantize_q8(np.asarray(self.state[base], dtype=np.float32))[1]
        src = self.state[name]
        self.done += int(src.size) * 4
        if self.report:
            self.report("converting", self.done, self.total)
        a = np.asarray(src, dtype=np.float32)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")  # (np.ascontiguousarray would turn a 0-rank array into [1])
        if self.dtype == "f32" and is_q8_matrix(name, a.shape):
            return altclip_format.to_panels("f32", a)
        if name == "logit_scale" or self.dtype == "f32" or (self.dtype in ("f16", "bf16") and not is_reduced(name, a.shape)):
            return a
        if self.dtype == "q8":
            if is_q8_matrix(name, a.shape):
                return quantize_q8(a)[0]
            if not name.endswith("word_embeddings.weight"):
                return a
            bits = altclip_format.float32_to_bf16_bits(a)
            return altclip_format.Raw("bf16", a.shape, bits.reshape(-1).view(np.uint8))
        if self.dtype == "f16":
            with np.errstate(over="ignore"):
                out = a.astype(np.float16)
            if not np.array_equal(np.isfinite(out), np.isfinite(a)):
                big = float(np.max(np.abs(a[np.isfinite(a)])))
                raise ConvertError(f"{name}: values up to {big:g} overflow f16 (max 65504); use --dtype bf16 or f32")
            return out
        bits = altclip_format.float32_to_bf16_bits(a)
        if is_q8_matrix(name, a.shape):
            return altclip_format.to_panels("bf16", bits)
        return altclip_format.Raw("bf16", a.shape, bits.reshape(-1).view(np.uint8))


def convert(input: str, output: str, dtype: str = "f32",
            progress: Optional[Callable[[str, int, int], None]] = None,
            revision: Optional[str] = None) -> dict:
    """Convert INPUT (folder or hub repo id) to the altclip model file OUTPUT, atomically.

    `progress(phase, done_bytes, total_bytes)` with phase "converting" or "writing".
    Returns the metadata written to the header.
    """
    if dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{output}: folder {out_dir} does not exist")
    if os.path.isdir(output):
        raise ConvertError(f"{output}: is a folder; give a file name")
    folder = resolve_input(input, revision)

    hf_config = _read_json(os.path.join(folder, "config.json"))
    config = resolve_config(hf_config)
    preprocessor = _read_json(os.path.join(folder, "preprocessor_config.json"))
    if not isinstance(preprocessor, dict):
        raise ConvertError("preprocessor_config.json must hold a JSON object")
    spm_path = os.path.join(folder, "sentencepiece.bpe.model")
    try:
        with open(spm_path, "rb") as f:
            spm = f.read()
    except FileNotFoundError:
        raise ConvertError(f"{spm_path}: not found (the tokenizer model is required)") from None

    weights = find_weights(folder)
    state = canonicalize(load_checkpoint(folder))
    expected = check_tensors(state, config)

    metadata = {
        "converter": "tools/convert.py",
        "converter_version": CONVERTER_VERSION,
        "source": input if not os.path.isdir(input) else os.path.basename(os.path.abspath(input)),
        "source_weights": weights,
        "dtype": dtype,
        "logit_scale_dtype": "f32",
        # SOURCE_DATE_EPOCH (reproducible builds) pins the date, so regenerated test files are identical.
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
            int(os.environ["SOURCE_DATE_EPOCH"]) if os.environ.get("SOURCE_DATE_EPOCH") else None)),
        "hf_config": hf_config,
    }
    if revision is not None:
        metadata["revision"] = revision

    tensors = _Converted(state, list(expected), dtype, progress)
    altclip_format.write_container(
        output, tensors, blobs={"sentencepiece.bpe.model": spm}, config=config,
        preprocessor_config=preprocessor, metadata=metadata,
        progress=(lambda d, t: progress("writing", d, t)) if progress else None)
    return metadata


# --------------------------------------------------------------------------------------
# CLI

class _Progress:
    def __init__(self, stream=None):
        self.stream, self.last, self.phase, self.open = stream or sys.stderr, 0.0, None, False

    def end_line(self):
        if self.open:
            self.stream.write("\n")
            self.open = False

    def __call__(self, phase, done, total):
        now = time.monotonic()
        final = done >= total
        if phase == self.phase and not final and now - self.last < 0.2:
            return
        self.phase, self.last = phase, now
        pct = 100.0 * done / total if total else 100.0
        self.stream.write(f"\r{phase}: {done / 1e6:9.1f} / {total / 1e6:.1f} MB ({pct:5.1f}%)")
        self.open = True
        if final:
            self.end_line()
        self.stream.flush()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="convert.py", description=(
        "Convert a Hugging Face AltCLIP checkpoint (local folder or hub repo id) to an altclip model file."))
    ap.add_argument("input", help="checkpoint folder (config.json, preprocessor_config.json, "
                    "sentencepiece.bpe.model, model.safetensors or pytorch_model.bin) or a hub repo id")
    ap.add_argument("output", help="the .altclip file to write")
    ap.add_argument("--dtype", choices=DTYPES, default="f32", help="weight dtype (default f32; logit_scale stays f32)")
    ap.add_argument("--revision", help="hub revision (branch, tag, commit or refs/pr/N) for a repo id")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    progress = None if args.quiet else _Progress()
    try:
        meta = convert(args.input, args.output, args.dtype, progress, args.revision)
    except ConvertError as e:
        if progress:
            progress.end_line()
        sys.stderr.write(f"convert.py: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        if progress:
            progress.end_line()
        sys.stderr.write(f"convert.py: interrupted; {args.output} was not written\n")
        return 130
    if not args.quiet:
        sys.stderr.write(f"wrote {args.output} ({meta['dtype']}, {os.path.getsize(args.output) / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
