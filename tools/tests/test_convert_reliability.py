"""Converter robustness cases not covered by test_convert.py (docs/reliability.md): torch
checkpoints that lie about their storages, an existing output kept when a conversion fails,
and absurd config values. python -m pytest -q tools/tests
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import zipfile

import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import convert  # noqa: E402
from convert import ConvertError  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_convert import model, spm_bytes, st_folder  # noqa: E402,F401  (fixtures)


def _torch_zip(tmp_path, edit_pickle=None, edit_storage=None, name="x.bin"):
    """torch.save({"w": zeros(7)}) with its data.pkl and storage member optionally rewritten."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(7)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl") and edit_pickle:
                data = edit_pickle(data)
            if info.filename.endswith("/data/0") and edit_storage:
                data = edit_storage(data)
                if data is None:
                    continue
            z.writestr(info.filename, data)
    return str(path)


# The pickle rebuilds w with storage offset 0 ("K\x00"), size (7,) ("K\x07\x85"), stride (1,) ("K\x01\x85").
HONEST = b"K\x00K\x07\x85q\x08K\x01\x85"


def _patch(new):
    def edit(data):
        assert data.count(HONEST) == 1, "torch's pickle layout changed; update HONEST"
        return data.replace(HONEST, new)
    return edit


def test_honest_checkpoint_reads(tmp_path):
    got = convert.read_torch_bin(_torch_zip(tmp_path, _patch(HONEST)))
    assert got["w"].shape == (7,)


@pytest.mark.parametrize("new, expect", [
    # stride 5: element 6 would be at 30, past the 7-element storage
    (b"K\x00K\x07\x85q\x08K\x05\x85", r"tensor of size \[7\], stride \[5\], offset 0 reads past the end of its storage"),
    # offset 3 with size 7
    (b"K\x03K\x07\x85q\x08K\x01\x85", r"offset 3 reads past the end of its storage \(7 elements\)"),
    # negative offset (BININT -1)
    (b"J\xff\xff\xff\xffK\x07\x85q\x08K\x01\x85", r"bad storage offset -1"),
    # negative stride
    (b"K\x00K\x07\x85q\x08J\xff\xff\xff\xff\x85", r"negative strides are not supported"),
])
def test_tensor_that_reads_outside_its_storage(tmp_path, new, expect):
    with pytest.raises(ConvertError, match=expect):
        convert.read_torch_bin(_torch_zip(tmp_path, _patch(new)))


def test_storage_member_truncated_or_missing(tmp_path):
    with pytest.raises(ConvertError, match=r"storage 0 has 12 bytes, 7 x 4 expected"):
        convert.read_torch_bin(_torch_zip(tmp_path, edit_storage=lambda d: d[:12], name="a.bin"))
    with pytest.raises(ConvertError, match=r"storage 0 missing from the archive"):
        convert.read_torch_bin(_torch_zip(tmp_path, edit_storage=lambda d: None, name="b.bin"))


def test_failed_conversion_keeps_an_existing_output(tmp_path, st_folder):  # noqa: F811
    folder = str(tmp_path / "bad")
    shutil.copytree(st_folder, folder)
    with open(os.path.join(folder, "config.json")) as f:
        hf = json.load(f)
    hf["text_config"]["hidden_size"] = 64  # no longer matches the tensors
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf, f)
    out = tmp_path / "model.altclip"
    out.write_bytes(b"the previous model file")
    with pytest.raises(ConvertError, match="does not match config.json"):
        convert.convert(folder, str(out))
    assert out.read_bytes() == b"the previous model file"
    assert sorted(os.listdir(tmp_path)) == ["bad", "model.altclip"]  # no temporary left


@pytest.mark.parametrize("section, key", [("text_config", "vocab_size"), ("vision_config", "image_size"),
                                          ("text_config", "max_position_embeddings")])
def test_absurd_config_value_fails_cleanly(tmp_path, st_folder, section, key):  # noqa: F811
    # 10**12 is far past what the C++ library accepts (2**24); the converter must refuse it
    # by comparing shapes, without allocating anything of that size.
    folder = str(tmp_path / "absurd")
    shutil.copytree(st_folder, folder)
    with open(os.path.join(folder, "config.json")) as f:
        hf = json.load(f)
    hf[section][key] = 10**12
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf, f)
    out = str(tmp_path / "o.altclip")
    with pytest.raises(ConvertError):
        convert.convert(folder, out)
    assert not os.path.exists(out)
