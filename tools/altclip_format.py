"""Read and write the altclip container (docs/format.md). Needs only numpy.

A tensor to write is either a numpy array (float32, float16, int64, int32, uint8), a
`Raw(dtype, shape, data)` with `data` a bytes-like object of exactly the right size
(used for bf16, which numpy has no type for), or a `Lazy(dtype, shape, chunks)` whose bytes
are made only while it is written (tools/convert.py: one tensor in memory at a time, a block of
rows at a time). `to_panels` stores an f32 or bf16 weight
matrix in the GEMM kernels' panel layout; `read_container` gives every tensor back
row-major whatever its layout.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np

MAGIC = b"ALTCLIP\0"
VERSION = 3          # written; 2 added the tensors' optional "layout", 3 the layout "panels64"
OLDEST_VERSION = 1   # still read
PANEL_LAYOUTS = {"panels64": 64, "panels": 32}  # layout name -> rows per panel ("panels": version 2)
PANEL_LAYOUT = "panels64"                        # what to_panels writes
PANEL_ROWS = PANEL_LAYOUTS[PANEL_LAYOUT]
ALIGN = 64
PREAMBLE = 24  # magic(8) + version(4) + reserved(4) + header size(8)

DTYPE_SIZES = {"f32": 4, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "u8": 1, "i8": 1}
NUMPY_DTYPES = {
    np.dtype("<f4"): "f32",
    np.dtype("<f2"): "f16",
    np.dtype("<i8"): "i64",
    np.dtype("<i4"): "i32",
    np.dtype("u1"): "u8",
    np.dtype("i1"): "i8",
}
# bf16 is read back as uint16 bit patterns; to_float32() widens them.
READ_DTYPES = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "i64": "<i8", "i32": "<i4", "u8": "u1", "i8": "i1"}


class FormatError(ValueError):
    pass


@dataclass
class Raw:
    dtype: str
    shape: Sequence[int]
    data: bytes
    layout: str = "rows"  # or a panel layout, "panels64" (see to_panels) or "panels"


@dataclass
class Lazy:
    """A tensor written from `chunks()`: bytes-like pieces, in order, that add up to exactly the
    size dtype, shape and layout imply (checked). Called once, while the file is written."""
    dtype: str
    shape: Sequence[int]
    chunks: Callable[[], Iterable]
    layout: str = "rows"


def panel_nbytes(dtype: str, shape: Sequence[int], rows_per_panel: int = PANEL_ROWS) -> int:
    """Bytes of a [shape[0], prod(shape[1:])] matrix in the panel layout."""
    g = 4 // DTYPE_SIZES[dtype]
    rows, cols = int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    return -(-rows // rows_per_panel) * -(-cols // g) * rows_per_panel * 4


def to_panels(dtype: str, a: np.ndarray, layout: str = PANEL_LAYOUT) -> Raw:
    """An f32 matrix (float32 values) or bf16 one (uint16 bit patterns), rank 2 or more, taken
    as [shape[0], prod(shape[1:])], in a panel layout of docs/format.md: 32-bit units of
    G = 4 / dtype size consecutive values of a row (lower column first), stored as
    [ceil(rows / P)][ceil(cols / G)][P] units, zero padded; P = 64 for "panels64" (written),
    32 for "panels" (version 2 files)."""
    if dtype not in ("f32", "bf16") or a.ndim < 2:
        raise FormatError(f"the panel layout holds f32 or bf16 matrices, not {dtype} of rank {a.ndim}")
    p = PANEL_LAYOUTS[layout]
    g = 4 // DTYPE_SIZES[dtype]
    rows = a.shape[0]
    m = np.ascontiguousarray(a).reshape(rows, -1)
    cols = m.shape[1]
    units, blocks = -(-cols // g), -(-rows // p)
    padded = np.zeros((blocks * p, units * g), dtype=m.dtype.newbyteorder("<"))
    padded[:rows, :cols] = m
    u32 = padded.view("<u4").reshape(blocks, p, units).transpose(0, 2, 1)
    return Raw(dtype, a.shape, np.ascontiguousarray(u32).reshape(-1).view(np.uint8), layout)


def from_panels(dtype: str, shape: Sequence[int], raw: bytes, layout: str = PANEL_LAYOUT) -> np.ndarray:
    """The row-major array (bf16 as uint16 bits) of a tensor stored by to_panels."""
    p = PANEL_LAYOUTS[layout]
    g = 4 // DTYPE_SIZES[dtype]
    rows, cols = int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    units, blocks = -(-cols // g), -(-rows // p)
    u32 = np.frombuffer(raw, dtype="<u4").reshape(blocks, units, p).transpose(0, 2, 1)
    values = np.ascontiguousarray(u32).view(READ_DTYPES[dtype]).reshape(blocks * p, units * g)
    return np.ascontiguousarray(values[:rows, :cols]).reshape(shape)


def align_up(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def float32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (as torch does)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    # In 32 bits: only a NaN's bits can wrap around, and NaNs are redone below.
    rounded = bits + np.uint32(0x7FFF)
    rounded += (bits >> 16) & np.uint32(1)
    rounded >>= 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)  # keep NaN a quiet NaN
    return out


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_float32(dtype: str, arr: np.ndarray) -> np.ndarray:
    if dtype == "bf16":
        return bf16_bits_to_float32(arr)
    return arr.astype(np.float32)


def _describe(value) -> tuple[str, list[int], object, str, int]:
    """(dtype, shape, data, layout, size): data a memoryview, or the Lazy itself."""
    if isinstance(value, (Raw, Lazy)):
        if value.dtype not in DTYPE_SIZES:
            raise FormatError(f"unknown dtype {value.dtype!r}")
        if value.layout != "rows" and value.layout not in PANEL_LAYOUTS:
            raise FormatError(f"unknown layout {value.layout!r}")
        shape = [int(d) for d in value.shape]
        if value.layout in PANEL_LAYOUTS:
            if value.dtype not in ("f32", "bf16") or len(shape) < 2:
                raise FormatError(f"the panel layout holds f32 or bf16 matrices, not {value.dtype} of rank {len(shape)}")
            nbytes = panel_nbytes(value.dtype, shape, PANEL_LAYOUTS[value.layout])
        else:
            nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[value.dtype]
        if isinstance(value, Lazy):
            return value.dtype, shape, value, value.layout, nbytes
        data = memoryview(value.data).cast("B")
        if len(data) != nbytes:
            raise FormatError(f"raw tensor has {len(data)} bytes, shape {shape} x {value.dtype} needs {nbytes}")
        return value.dtype, shape, data, value.layout, nbytes
    arr = np.asarray(value)
    if arr.dtype == np.float64:
        raise FormatError("float64 tensors are not part of the format; cast to float32 first")
    dt = NUMPY_DTYPES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
    if dt is None:
        raise FormatError(f"numpy dtype {arr.dtype} has no altclip dtype")
    shape = list(arr.shape)  # before ascontiguousarray, which turns 0-rank arrays into shape [1]
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    data = memoryview(arr.reshape(-1).view(np.uint8))
    return dt, shape, data, "rows", len(data)


def write_container(
    path: str,
    tensors: Mapping[str, object],
    *,
    blobs: Optional[Mapping[str, bytes]] = None,
    config: Optional[dict] = None,
    preprocessor_config: Optional[dict] = None,
    metadata: Optional[dict] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> None:
    """Write a container atomically: a temporary file in the same folder, renamed at the end.

    `tensors` may be a lazy mapping; each value is materialised once, in order. A `Lazy` value
    is made only while it is written, so only one is in memory at a time.
    `progress(done_bytes, total_bytes)` is called as data is written.
    """
    blobs = dict(blobs or {})
    described = {}
    for name in tensors:
        described[name] = _describe(tensors[name])

    header: dict = {"format": "altclip", "version": VERSION, "metadata": metadata or {}}
    if config is not None:
        header["config"] = config
    if preprocessor_config is not None:
        header["preprocessor_config"] = preprocessor_config
    if blobs:
        header["blobs"] = {}
    header["tensors"] = {}

    offset = 0
    order = []  # (name, data, size)
    for name, data in blobs.items():
        header["blobs"][name] = {"offset": offset, "size": len(data)}
        order.append((name, memoryview(data).cast("B"), len(data)))
        offset = align_up(offset + len(data))
    for name, (dt, shape, data, layout, nbytes) in described.items():
        header["tensors"][name] = {"dtype": dt, "shape": shape, "offset": offset, "size": nbytes}
        if layout != "rows":
            header["tensors"][name]["layout"] = layout
        order.append((name, data, nbytes))
        offset = align_up(offset + nbytes)

    header_bytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    data_start = align_up(PREAMBLE + len(header_bytes))
    total = sum(n for _, _, n in order)

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".altclip-", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + struct.pack("<IIQ", VERSION, 0, len(header_bytes)))
            f.write(header_bytes)
            f.write(b"\0" * (data_start - PREAMBLE - len(header_bytes)))
            done = 0
            pos = 0
            for name, data, nbytes in order:
                if pos % ALIGN:
                    pad = ALIGN - pos % ALIGN
                    f.write(b"\0" * pad)
                    pos += pad
                pieces = data.chunks() if isinstance(data, Lazy) else (data,)
                start = pos
                for piece in pieces:
                    piece = memoryview(piece).cast("B")
                    f.write(piece)
                    pos += len(piece)
                    done += len(piece)
                    if progress is not None:
                        progress(done, total)
                if pos - start != nbytes:
                    raise FormatError(f"tensor {name}: {pos - start} bytes were made, its header says {nbytes}")
            f.flush()
            os.fsync(f.fileno())
            # The written pages leave the page cache (they are on disk now). Written, they sit
            # there in small folios, which every process that maps the file must map 4 KB at
            # a time; read back by the first process that maps it (the loader asks for
            # MADV_HUGEPAGE), they come in 2 MB folios, mapped 2 MB at a time: for a fresh
            # `image_search query` ~45 ms less faulting and ~25 ms less unmapping per 600 MB
            # tower. Advice only, where the OS has it.
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@dataclass
class Container:
    header: dict
    tensors: Dict[str, tuple]  # name -> (dtype, row-major numpy array: bf16 as uint16 bits)
    blobs: Dict[str, bytes]

    def f32(self, name: str) -> np.ndarray:
        dt, arr = self.tensors[name]
        return to_float32(dt, arr)


def read_container(path: str) -> Container:
    """Read and validate a container (the same checks as the C++ reader's container layer)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < PREAMBLE:
        raise FormatError(f"{path}: {len(buf)} bytes, shorter than the {PREAMBLE}-byte preamble")
    if buf[:8] != MAGIC:
        raise FormatError(f"{path}: bad magic {buf[:8]!r}")
    version, _, n = struct.unpack("<IIQ", buf[8:24])
    if not OLDEST_VERSION <= version <= VERSION:
        raise FormatError(f"{path}: version {version}, expected {OLDEST_VERSION} to {VERSION}")
    if PREAMBLE + n > len(buf):
        raise FormatError(f"{path}: header of {n} bytes runs past the end of the file ({len(buf)} bytes)")
    header = json.loads(buf[PREAMBLE:PREAMBLE + n].decode("utf-8"))
    data_start = align_up(PREAMBLE + n)
    spans = []
    tensors, blobs = {}, {}
    for kind, table in (("blob", header.get("blobs", {})), ("tensor", header.get("tensors", {}))):
        for name, item in table.items():
            off, size = item["offset"], item["size"]
            if off % ALIGN:
                raise FormatError(f"{path}: {kind} {name} offset {off} not aligned to {ALIGN}")
            if data_start + off + size > len(buf):
                raise FormatError(f"{path}: {kind} {name} runs past the end of the file")
            spans.append((off, off + size, name))
            raw = buf[data_start + off:data_start + off + size]
            if kind == "blob":
                blobs[name] = raw
            else:
                dt, shape = item["dtype"], item["shape"]
                if dt not in DTYPE_SIZES:
                    raise FormatError(f"{path}: tensor {name} has unknown dtype {dt}")
                layout = item.get("layout", "rows")
                if layout in PANEL_LAYOUTS:
                    if dt not in ("f32", "bf16") or len(shape) < 2:
                        raise FormatError(f"{path}: tensor {name}: panels hold f32 or bf16 matrices")
                    if panel_nbytes(dt, shape, PANEL_LAYOUTS[layout]) != size:
                        raise FormatError(f"{path}: tensor {name} size {size} does not match panels of {shape} x {dt}")
                    tensors[name] = (dt, from_panels(dt, shape, raw, layout))
                    continue
                if layout != "rows":
                    raise FormatError(f"{path}: tensor {name} has unknown layout {layout!r}")
                if int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[dt] != size:
                    raise FormatError(f"{path}: tensor {name} size {size} does not match shape {shape} x {dt}")
                tensors[name] = (dt, np.frombuffer(raw, dtype=READ_DTYPES[dt]).reshape(shape))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            raise FormatError(f"{path}: {a[2]} and {b[2]} overlap")
    end = max([data_start] + [data_start + s[1] for s in spans])
    if end != len(buf):
        raise FormatError(f"{path}: file is {len(buf)} bytes, its items end at {end}")
    return Container(header, tensors, blobs)
