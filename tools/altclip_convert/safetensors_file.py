"""model.safetensors, read with the reference reader's checks: the header length is at most
100,000,000 and inside the file, the header is JSON, dtypes are known, shapes non-negative,
`end - begin == prod(shape) * itemsize`, and the tensors cover the data buffer exactly (no gap,
no overlap). Each error names the tensor. The data is mapped, not read (lazy.LazyTensor)."""
from __future__ import annotations

import json
import math
import os
import struct
from typing import Dict

import numpy as np

from . import ConvertError
from .lazy import LazyTensor, MappedFile, Storage

SAFETENSORS_MAX_HEADER = 100_000_000
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def open_safetensors(path: str) -> Dict[str, LazyTensor]:
    """The tensors of a .safetensors file, checked as the reference reader does, not yet read."""
    label = os.path.basename(path)
    mapped = MappedFile(path)
    buf, size = mapped.buf, mapped.size
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
        if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
            raise ConvertError(f"{label}: tensor {name}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(is_int(o) for o in offs)
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
    return {name: LazyTensor.contiguous(Storage(mapped, 8 + n + begin, SAFETENSORS_DTYPES[dt], math.prod(shape),
                                                bf16=dt == "BF16"), shape)
            for begin, end, name, dt, shape in sorted(entries, key=lambda e: e[2])}


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Read a .safetensors file with the reference reader's checks; bf16 widened to float32."""
    return {k: t.array() for k, t in open_safetensors(path).items()}
