"""Conversion a block of rows at a time (tools/altclip_convert/lazy.py, encode.py): the blocks
give the same bytes as whole tensors, and the converter's memory does not grow with a tensor's
size. Needs numpy only. python -m pytest -q tools/tests
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import altclip_format  # noqa: E402
from altclip_convert import encode, lazy  # noqa: E402
from altclip_convert.schema import Stored  # noqa: E402
from test_schema import _write_safetensors  # noqa: E402


class _Memory:
    """An in-memory source for lazy.Storage."""

    def __init__(self, data: bytes):
        self.buf = np.frombuffer(data, np.uint8)

    def view(self, start, nbytes):
        return self.buf[start:start + nbytes]

    def drop(self, start, nbytes):
        pass

    def done(self):
        pass


def _lazy(a: np.ndarray, transpose=False) -> lazy.LazyTensor:
    if transpose:  # the same values, stored column-major: strides (1, rows)
        storage = lazy.Storage(_Memory(np.ascontiguousarray(a.T).tobytes()), 0, "<f4", a.size)
        return lazy.LazyTensor(storage, 0, a.shape, (1, a.shape[0]))
    return lazy.LazyTensor.contiguous(lazy.Storage(_Memory(a.tobytes()), 0, "<f4", a.size), a.shape)


def _whole(item: Stored, a: np.ndarray) -> bytes:
    if item.scale:
        return encode.quantize_q8(a)[1].tobytes()
    if item.dtype == "i8":
        return encode.quantize_q8(a)[0].tobytes()
    out = {"f32": a, "f16": a.astype(np.float16), "bf16": altclip_format.float32_to_bf16_bits(a)}[item.dtype]
    if item.layout in altclip_format.PANEL_LAYOUTS:
        return bytes(altclip_format.to_panels(item.dtype, out, item.layout).data)
    return out.tobytes()


CASES = [(shape, dtype, layout, transpose)
         for shape in [(1, 1), (33, 7), (70, 130), (100, 3, 2, 2), (5,), ()]
         for dtype, layout in [("f32", "rows"), ("f32", "panels"), ("f32", "panels64"), ("f16", "rows"),
                               ("bf16", "rows"), ("bf16", "panels"), ("bf16", "panels64"), ("i8", "rows")]
         for transpose in (False, True)
         if not ((layout != "rows" or dtype == "i8") and len(shape) < 2 or transpose and len(shape) != 2)]


@pytest.mark.parametrize("shape, dtype, layout, transpose", CASES)
def test_blocks_give_the_bytes_of_the_whole_tensor(monkeypatch, shape, dtype, layout, transpose):
    monkeypatch.setattr(lazy, "CHUNK_BYTES", 64)  # a block of 1 row (64 in panels) at a time
    a = (np.random.default_rng(len(shape)).standard_normal(shape) * 3).astype(np.float32)
    item = Stored("w", "w", dtype, shape, layout)
    enc = encode.Encoder()
    got = b"".join(bytes(c) for c in enc.chunks(item, _lazy(a, transpose)))
    assert got == _whole(item, a)
    if dtype == "i8":  # the scales: kept from the matrix's pass, or computed when asked for alone
        scale = Stored("w_scale", "w", "f32", shape[:1], scale=True)
        assert b"".join(bytes(c) for c in enc.chunks(scale, _lazy(a))) == _whole(scale, a)
        assert b"".join(bytes(c) for c in encode.Encoder().chunks(scale, _lazy(a))) == _whole(scale, a)


def test_memory_does_not_grow_with_the_tensors(tmp_path):
    """A 256 MB word embedding table converts in far less memory than the table (the peak of
    the converter process, VmHWM, which a fork does not inherit)."""
    from test_schema import HF_CONFIG
    from altclip_convert.config import resolve_config
    from altclip_convert.schema import model_tensors
    hf = json.loads(json.dumps(HF_CONFIG))
    hf["text_config"].update(vocab_size=65536, hidden_size=1024, num_attention_heads=8, num_hidden_layers=1)
    config = resolve_config(hf)
    folder = tmp_path / "big"
    folder.mkdir()
    _write_safetensors(folder / "model.safetensors",
                       {t.key: np.full(t.shape, 0.25, np.float32) for t in model_tensors(config)})
    (folder / "config.json").write_text(json.dumps(hf))
    (folder / "preprocessor_config.json").write_text("{}")
    shutil.copyfile(os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model"), folder / "sentencepiece.bpe.model")
    table = 65536 * 1024 * 4
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import convert; rc = convert.main(sys.argv[2:]); "
            "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); sys.exit(rc)")
    for dtype in ("f32", "q8"):
        r = subprocess.run([sys.executable, "-c", code, TOOLS, str(folder), str(tmp_path / "o.altclip"), "--dtype",
                            dtype, "--quiet"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        peak = int(r.stdout.split()[-1]) * 1024
        print(f"{dtype}: peak {peak / 1e6:.0f} MB")
        assert peak < table / 2, f"{dtype}: peak {peak / 1e6:.0f} MB converting a {table / 1e6:.0f} MB table"
