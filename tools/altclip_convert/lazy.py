"""Tensors inside files, read on demand. A checkpoint is mapped, not read: a `LazyTensor` is a
(possibly strided) view of a `Storage` (a run of elements at a byte offset of a file), and
`float32_chunks` reads it a few rows at a time, giving each range's pages back to the kernel
after use (they stay in the page cache, not in this process), so converting a checkpoint of
any size needs memory for one chunk, not for the file."""
from __future__ import annotations

import math
import mmap
import os
import zipfile
from typing import Iterator, Optional, Sequence

import numpy as np

import altclip_format

CHUNK_BYTES = 8 << 20  # float32 bytes per chunk of rows


class MappedFile:
    """A whole file mapped read-only; `view` gives a byte range, `drop` lets it go again."""

    def __init__(self, path: str):
        self.path = path
        self.size = os.path.getsize(path)
        self.mm: Optional[mmap.mmap] = None
        self.buf = np.zeros(0, np.uint8)
        if self.size:
            with open(path, "rb") as f:
                self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self.buf = np.frombuffer(self.mm, dtype=np.uint8)

    def view(self, start: int, nbytes: int) -> np.ndarray:
        return self.buf[start:start + nbytes]

    def drop(self, start: int, nbytes: int) -> None:
        """Unmap the pages of [start, start + nbytes) from this process (they are mapped again,
        from the page cache, if read again): resident memory stays at what is in use."""
        if self.mm is None or nbytes <= 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        lo = start - start % mmap.PAGESIZE
        hi = min(self.size, start + nbytes)
        if hi > lo:
            self.mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def done(self) -> None:
        pass


class ZipMember:
    """A compressed zip member (torch never writes one, but a re-zipped checkpoint may hold
    them): inflated when first read, kept until `done`."""

    def __init__(self, path: str, name: str):
        self.path, self.name, self._data = path, name, None

    def view(self, start: int, nbytes: int) -> np.ndarray:
        if self._data is None:
            with zipfile.ZipFile(self.path) as zf:
                self._data = np.frombuffer(zf.read(self.name), np.uint8)
        return self._data[start:start + nbytes]

    def drop(self, start: int, nbytes: int) -> None:
        pass

    def done(self) -> None:
        self._data = None


class Storage:
    """`numel` elements of numpy dtype `dtype` at byte `start` of `source` (bf16: uint16 bits)."""
    __slots__ = ("source", "start", "dtype", "numel", "bf16")

    def __init__(self, source, start: int, dtype, numel: int, bf16: bool = False):
        self.source, self.start, self.dtype, self.numel, self.bf16 = source, start, np.dtype(dtype), numel, bf16

    def _bytes(self, lo: int, hi: int):
        return self.start + lo * self.dtype.itemsize, (hi - lo) * self.dtype.itemsize

    def elements(self, lo: int, hi: int) -> np.ndarray:
        return self.source.view(*self._bytes(lo, hi)).view(self.dtype)

    def drop(self, lo: int, hi: int) -> None:
        self.source.drop(*self._bytes(lo, hi))


class LazyTensor:
    """A tensor of `shape` whose element (i, j, ...) is storage element offset + i*strides[0] +
    j*strides[1] + ... (strides in elements, all >= 0, checked to stay inside the storage)."""
    __slots__ = ("storage", "offset", "shape", "strides")

    def __init__(self, storage: Storage, offset: int, shape: Sequence[int], strides: Sequence[int]):
        self.storage, self.offset, self.shape, self.strides = storage, offset, tuple(shape), tuple(strides)

    @classmethod
    def contiguous(cls, storage: Storage, shape: Sequence[int]) -> "LazyTensor":
        strides, n = [], 1
        for d in reversed(tuple(shape)):
            strides.append(n)
            n *= d
        return cls(storage, 0, shape, strides[::-1])

    @property
    def dtype(self) -> np.dtype:
        """The dtype of `array()`: bf16 is widened to float32."""
        return np.dtype(np.float32) if self.storage.bf16 else self.storage.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def _span(self, r0: int, r1: int):
        """Storage elements [lo, hi) that rows r0..r1 of the first dimension read."""
        if not self.shape:
            return self.offset, self.offset + 1
        lo = self.offset + r0 * self.strides[0]
        last = lo + (r1 - r0 - 1) * self.strides[0] + sum((n - 1) * s for n, s in zip(self.shape[1:], self.strides[1:]))
        return lo, last + 1

    def _rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 as a read-only view of the storage (bf16 widened: a copy)."""
        shape = (r1 - r0,) + self.shape[1:] if self.shape else ()
        if math.prod(shape) == 0:
            return np.zeros(shape, self.dtype)
        lo, hi = self._span(r0, r1)
        base = self.storage.elements(lo, hi)
        item = base.itemsize
        arr = np.lib.stride_tricks.as_strided(base, shape=shape, strides=tuple(s * item for s in self.strides),
                                              writeable=False)
        return altclip_format.bf16_bits_to_float32(arr) if self.storage.bf16 else arr

    def array(self) -> np.ndarray:
        """The whole tensor (a view of the mapped file where possible)."""
        return self._rows(0, self.shape[0] if self.shape else 1)

    def float32_chunks(self, multiple: int = 1) -> Iterator[np.ndarray]:
        """The tensor as C-contiguous float32 blocks of whole rows (a multiple of `multiple`
        rows each but the last), read one at a time; a 0-rank tensor is one block."""
        rows = self.shape[0] if self.shape else 1
        row_bytes = 4 * max(1, math.prod(self.shape[1:]))
        step = max(multiple, CHUNK_BYTES // row_bytes // multiple * multiple)
        try:
            for r0 in range(0, max(rows, 1), step):
                r1 = min(rows, r0 + step)
                a = np.asarray(self._rows(r0, r1), dtype=np.float32)
                if not a.flags.c_contiguous:
                    a = a.copy(order="C")  # (np.ascontiguousarray would turn a 0-rank array into [1])
                yield a
                if r1 > r0 and self.size:
                    self.storage.drop(*self._span(r0, r1))
        finally:
            self.storage.source.done()
