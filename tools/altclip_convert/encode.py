"""A tensor's stored bytes for each (dtype, layout) of the schema, made from float32 blocks of
whole rows (lazy.LazyTensor.float32_chunks), so that no tensor is ever held whole.

Every source (f32, f16 or bf16) is widened to float32 first, then:
    f32           the values (row-major, or in panels: 64-row blocks, so blocks of 64 rows map to
                  contiguous output)
    f16           round to nearest even, as torch .half(); a value beyond +-65504 is an error
    bf16          round to nearest even, as torch .bfloat16()
    i8 + scale    per output row, symmetric: scale = max|w| / 127, q = round(w / scale) (half
                  to even); the scales are kept from the matrix's pass for the KEY_scale tensor
"""
from __future__ import annotations

from typing import Dict, Iterator, List

import numpy as np

import altclip_format

from . import ConvertError
from .lazy import LazyTensor
from .schema import Stored


def quantize_q8(a: np.ndarray):
    """Per-row symmetric int8: returns (q int8 [rows, ...], scale float32 [rows])."""
    rows = a.reshape(a.shape[0], -1)
    amax = np.max(np.abs(rows), axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(a.shape), scale


def _f16(name: str, a: np.ndarray, tensor: LazyTensor) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = a.astype(np.float16)
    if not np.array_equal(np.isfinite(out), np.isfinite(a)):
        big = max(float(np.max(np.abs(c[np.isfinite(c)]), initial=0)) for c in tensor.float32_chunks())
        raise ConvertError(f"{name}: values up to {big:g} overflow f16 (max 65504); use --dtype bf16 or f32")
    return out


class Encoder:
    """Encodes the stored tensors of one file, in file order; keeps each q8 matrix's scales
    until its KEY_scale tensor is written."""

    def __init__(self):
        self._scales: Dict[str, List[np.ndarray]] = {}

    def chunks(self, item: Stored, tensor: LazyTensor) -> Iterator[np.ndarray]:
        """The bytes of `item` (made from `tensor`) as uint8 arrays, a block of rows at a time."""
        if item.scale:
            if item.source not in self._scales:  # (its matrix was not written just before)
                for a in tensor.float32_chunks():
                    self._scales.setdefault(item.source, []).append(quantize_q8(a)[1])
            yield np.concatenate(self._scales.pop(item.source)).view(np.uint8)
            return
        panels = item.layout in altclip_format.PANEL_LAYOUTS
        multiple = altclip_format.PANEL_LAYOUTS[item.layout] if panels else 1
        for a in tensor.float32_chunks(multiple):
            if item.dtype == "f32":
                out = a
            elif item.dtype == "f16":
                out = _f16(item.key, a, tensor)
            elif item.dtype == "bf16":
                out = altclip_format.float32_to_bf16_bits(a)
            elif item.dtype == "i8":
                out, scale = quantize_q8(a)
                self._scales.setdefault(item.key, []).append(scale)
            else:
                raise ValueError(f"{item.key}: no encoding for {item.dtype}")
            if panels:
                yield np.frombuffer(altclip_format.to_panels(item.dtype, out, item.layout).data, np.uint8)
            else:
                yield out.reshape(-1).view(np.uint8)
