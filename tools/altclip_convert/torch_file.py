"""pytorch_model.bin without torch and without running code from the pickle: the torch zip
format (<archive>/data.pkl plus <archive>/data/N storages) and the legacy pre-1.6 format.

The pickle is read by a restricted unpickler that knows only collections.OrderedDict, torch's
_rebuild_tensor / _rebuild_tensor_v2 / _rebuild_parameter / _rebuild_parameter_with_state and
the torch.*Storage types, in numpy versions of its own: any other global is refused before
anything runs. Storage offsets, sizes and strides are honoured (a view past the end of its
storage is an error). Storages are located, not read: each tensor is a lazy.LazyTensor over the
mapped file (an inflated member for a compressed zip entry), read when it is converted.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from typing import Dict

import numpy as np

from . import ConvertError
from .lazy import LazyTensor, MappedFile, Storage, ZipMember
from .safetensors_file import is_int

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


class _Storage(Storage):
    __slots__ = ()

    def __setstate__(self, state):
        raise _Refused("BUILD on a storage")


class _Tensor(LazyTensor):
    __slots__ = ()

    def __setstate__(self, state):
        raise _Refused("BUILD on a tensor")


def _bad(msg):
    raise pickle.UnpicklingError(msg)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    if not isinstance(storage, _Storage):
        _bad("tensor rebuilt from something that is not a storage")
    if not (is_int(storage_offset) and storage_offset >= 0):
        _bad(f"bad storage offset {storage_offset!r}")
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)
            and all(is_int(s) and s >= 0 for s in size) and all(is_int(s) and s >= 0 for s in stride)):
        _bad(f"bad tensor size {size!r} / stride {stride!r} (negative strides are not supported)")
    if math.prod(size):
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            _bad(f"tensor of size {list(size)}, stride {list(stride)}, offset {storage_offset} reads past "
                 f"the end of its storage ({storage.numel} elements)")
    return _Tensor(storage, storage_offset, size, stride)


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
    """Knows the globals tensor rebuilding needs and nothing else; storages are found by
    `load_storage(key, numpy_dtype_str, numel) -> (source, byte offset)`, not read."""

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
        if not isinstance(stype, _StorageType) or not isinstance(key, (str, bytes)) or not is_int(numel) or numel < 0:
            _bad(f"bad storage reference {pid!r:.80}")
        key = key.decode("ascii") if isinstance(key, bytes) else key
        cache_key = (key, stype.name)
        if cache_key not in self._storages:
            dtype = TORCH_STORAGES[stype.name]
            source, start = self._load_storage(key, dtype, numel)
            self._storages[cache_key] = _Storage(source, start, dtype, numel, stype.name == "BFloat16Storage")
        st = self._storages[cache_key]
        if view is not None:  # legacy format: (view_key, offset, size) into the root storage
            if not (isinstance(view, tuple) and len(view) == 3 and is_int(view[1]) and is_int(view[2])
                    and 0 <= view[1] and 0 <= view[2] and view[1] + view[2] <= st.numel):
                _bad(f"bad storage view {view!r:.80}")
            st = _Storage(st.source, st.start + view[1] * st.dtype.itemsize, st.dtype, view[2], st.bf16)
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


def _collect_state_dict(label: str, obj) -> Dict[str, LazyTensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError(f"{label}: the pickle holds a {type(obj).__name__}, not a state_dict")
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, _Tensor):
            raise ConvertError(f"{label}: entry {k!r:.80} is not a tensor; expected a flat state_dict")
        out[k] = v
    return out


def _zip_member(path: str, mapped: MappedFile, info: zipfile.ZipInfo):
    """(source, byte offset) of a zip member's data: in the mapped file when stored."""
    if info.compress_type != zipfile.ZIP_STORED:
        return ZipMember(path, info.filename), 0
    buf = mapped.buf
    h = info.header_offset
    local = bytes(buf[h:h + 30])
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ConvertError(f"{os.path.basename(path)}: bad zip local header for {info.filename}")
    n_name, n_extra = struct.unpack("<HH", local[26:30])
    start = h + 30 + n_name + n_extra
    if start + info.file_size > len(buf):
        raise ConvertError(f"{os.path.basename(path)}: zip member {info.filename} runs past the end of the file")
    return mapped, start


def open_torch_bin(path: str) -> Dict[str, LazyTensor]:
    """The tensors of a torch.save()d state_dict, found without torch and not yet read;
    anything but tensor rebuilding is refused."""
    label = os.path.basename(path)
    if zipfile.is_zipfile(path):
        return _open_torch_zip(path, label)
    return _open_torch_legacy(path, label)


def read_torch_bin(path: str) -> Dict[str, np.ndarray]:
    """Read a torch.save()d state_dict without torch, refusing anything but tensor rebuilding."""
    return {k: t.array() for k, t in open_torch_bin(path).items()}


def _open_torch_zip(path: str, label: str) -> Dict[str, LazyTensor]:
    mapped = MappedFile(path)
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
            itemsize = np.dtype(dtype).itemsize
            if info.file_size < numel * itemsize:
                _bad(f"storage {key} has {info.file_size} bytes, {numel} x {itemsize} expected")
            return _zip_member(path, mapped, info)

        obj = _unpickle(label, io.BytesIO(zf.read(members[pkls[0]])), load_storage)
        return _collect_state_dict(label, obj)


def _open_torch_legacy(path: str, label: str) -> Dict[str, LazyTensor]:
    """The pre-1.6 torch.save format: pickles (magic, protocol, sys info, the object, the
    storage keys), then each storage as an int64 element count and its raw data."""
    mapped = MappedFile(path)
    buf = mapped.buf
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
            return None, 0

        start = f.tell()
        _unpickle(label, f, placeholder)
        keys = _unpickle(label, f)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConvertError(f"{label}: bad storage key list")
        pos = f.tell()
        real: Dict[str, tuple] = {}  # key -> (dtype, numel, byte offset)
        for k in keys:
            if k not in wanted:
                raise ConvertError(f"{label}: storage {k} listed but never used")
            dtype, numel = wanted[k]
            nbytes = numel * np.dtype(dtype).itemsize
            count = struct.unpack("<q", bytes(buf[pos:pos + 8]))[0] if pos + 8 <= len(buf) else None
            if count != numel or pos + 8 + nbytes > len(buf):
                raise ConvertError(f"{label}: storage {k}: bad or truncated data (expected {numel} elements)")
            real[k] = (np.dtype(dtype), numel, pos + 8)
            pos += 8 + nbytes
        missing = sorted(set(wanted) - set(real))
        if missing:
            raise ConvertError(f"{label}: storages without data: {', '.join(missing[:5])}")
        f.seek(start)
        obj = _unpickle(label, f, lambda k, d, n: (mapped, real[k][2]) if real[k][:2] == (np.dtype(d), n)
                        else _bad(f"storage {k} used with two types or sizes"))
    return _collect_state_dict(label, obj)
