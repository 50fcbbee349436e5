"""Tests for tools/convert.py: python -m pytest -q tools/tests

Tiny random AltCLIPModels are built with transformers (torch is needed here, not by the
converter) and saved the ways checkpoints reach users.
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOOLS)

import altclip_format  # noqa: E402
import convert  # noqa: E402
from convert import ConvertError  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SPM_LINES = [
    "a photo of a cat", "a photo of a dog", "一张猫的照片", "一张狗的照片",
    "the quick brown fox jumps over the lazy dog", "hello world", "altclip converter test",
]


def tiny_config(**overrides):
    text = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, max_position_embeddings=40, project_dim=24)
    vision = dict(hidden_size=48, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                  image_size=32, patch_size=8, projection_dim=16)
    text.update(overrides.pop("text", {}))
    vision.update(overrides.pop("vision", {}))
    return transformers.AltCLIPConfig(text_config=text, vision_config=vision,
                                      projection_dim=overrides.pop("projection_dim", 16), **overrides)


def canonical_state_dict(model):
    return {convert.canonical_name(k): v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def spm_bytes():
    try:
        import sentencepiece as spm
    except ImportError:  # the converter only copies the bytes
        return b"not a real sentencepiece model"
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SPM_LINES * 20), model_writer=buf, vocab_size=48, hard_vocab_limit=False,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2)
    return buf.getvalue()


@pytest.fixture(scope="session")
def model():
    torch.manual_seed(1234)
    m = transformers.AltCLIPModel(tiny_config()).eval()
    with torch.no_grad():  # random values everywhere (init leaves biases 0, norms 1)
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        m.logit_scale.fill_(2.75)
    return m


def write_aux(folder, model, spm_bytes):
    os.makedirs(folder, exist_ok=True)
    model.config.save_pretrained(folder)
    transformers.CLIPImageProcessor().save_pretrained(folder)
    with open(os.path.join(folder, "sentencepiece.bpe.model"), "wb") as f:
        f.write(spm_bytes)
    return str(folder)


@pytest.fixture(scope="session")
def st_folder(tmp_path_factory, model, spm_bytes):
    """save_pretrained: model.safetensors (transformers 5 always writes safetensors)."""
    folder = write_aux(tmp_path_factory.mktemp("st"), model, spm_bytes)
    model.save_pretrained(folder)
    assert os.path.exists(os.path.join(folder, "model.safetensors"))
    return folder


@pytest.fixture(scope="session")
def bin_folder(tmp_path_factory, model, spm_bytes):
    """pytorch_model.bin. transformers 5 dropped save_pretrained(safe_serialization=False); what
    it did was torch.save(model.state_dict(), path), which is what we do. We also add the unused
    keys older files carry (position_ids, the RoBERTa pooler) and one non-contiguous tensor."""
    folder = write_aux(tmp_path_factory.mktemp("bin"), model, spm_bytes)
    sd = model.state_dict()
    sd["text_model.roberta.embeddings.position_ids"] = torch.arange(40).expand((1, -1))
    sd["text_model.roberta.pooler.dense.weight"] = torch.randn(32, 32)
    sd["text_model.roberta.pooler.dense.bias"] = torch.randn(32)
    w = sd["vision_model.encoder.layers.0.mlp.fc1.weight"]
    sd["vision_model.encoder.layers.0.mlp.fc1.weight"] = w.t().contiguous().t()  # same values, strides (1, 40)
    assert not sd["vision_model.encoder.layers.0.mlp.fc1.weight"].is_contiguous()
    torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    return folder


@pytest.fixture(scope="session")
def converted(tmp_path_factory, st_folder, bin_folder):
    out = {}
    d = tmp_path_factory.mktemp("out")
    for dtype in convert.DTYPES:
        for name, folder in (("st", st_folder), ("bin", bin_folder)):
            path = str(d / f"{name}-{dtype}.altclip")
            convert.convert(folder, path, dtype)
            out[name, dtype] = altclip_format.read_container(path)
    return out


# ----------------------------------------------------------------------------- conversion

FLOAT_DTYPES = ("f32", "f16", "bf16")  # every tensor kept under its name, matrices rounded; q8 is tested below


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_values_match_state_dict(converted, model, dtype):
    ref = canonical_state_dict(model)
    for source in ("st", "bin"):
        c = converted[source, dtype]
        assert set(c.tensors) == set(ref), source
        for name, t in ref.items():
            dt, arr = c.tensors[name]
            assert list(arr.shape) == list(t.shape), name
            if name == "logit_scale" or dtype == "f32" or not convert.is_reduced(name, tuple(t.shape)):
                assert dt == "f32", name
                np.testing.assert_array_equal(arr, t.numpy(), err_msg=name)
            elif dtype == "f16":
                assert dt == "f16"
                np.testing.assert_array_equal(arr, t.half().numpy(), err_msg=name)
            else:
                assert dt == "bf16"
                np.testing.assert_array_equal(arr, t.bfloat16().view(torch.int16).numpy().view(np.uint16),
                                              err_msg=name)
    assert float(converted["st", dtype].f32("logit_scale")) == 2.75


@pytest.mark.parametrize("dtype", convert.DTYPES)
def test_matrices_stored_in_panels_for_f32_and_bf16(converted, dtype):
    """f32 and bf16 files store the weight matrices in the kernels' panel layout (read back
    row-major above); f16 and q8 files store every tensor row-major."""
    c = converted["st", dtype]
    for name, item in c.header["tensors"].items():
        dt, arr = c.tensors[name]
        panels = {"f32": "panels", "bf16": "panels64"}.get(dtype)  # 32-row panels for f32, 64 (oneDNN's) for bf16
        want = panels if panels and convert.is_q8_matrix(name, tuple(arr.shape)) else "rows"
        assert item.get("layout", "rows") == want, name
        if want != "rows":
            assert item["size"] == altclip_format.panel_nbytes(dt, arr.shape, altclip_format.PANEL_LAYOUTS[want]), name


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (32, 64), (33, 7), (70, 1030), (130, 9), (5, 3, 2, 2)])
@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("layout, p", [("panels64", 64), ("panels", 32)])
def test_panel_layout(shape, dtype, layout, p):
    """to_panels puts value (r, c) where docs/format.md says, for the layout written (64-row
    panels) and the one version 2 files hold (32); from_panels undoes it."""
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(np.float32)
    if dtype == "bf16":
        a = altclip_format.float32_to_bf16_bits(a)
    raw = altclip_format.to_panels(dtype, a, layout)
    data = bytes(raw.data)
    assert raw.layout == layout and len(data) == altclip_format.panel_nbytes(dtype, shape, p)
    size = altclip_format.DTYPE_SIZES[dtype]
    g = 4 // size
    m = a.reshape(shape[0], -1)
    units = -(-m.shape[1] // g)
    for r in range(m.shape[0]):
        for c in range(m.shape[1]):
            at = 4 * ((r // p * units + c // g) * p + r % p) + (c % g) * size
            assert data[at:at + size] == m[r, c].tobytes(), (r, c)
    padded = np.zeros(len(data), dtype=bool)  # every other byte is zero padding
    for r in range(m.shape[0]):
        for c in range(m.shape[1]):
            at = 4 * ((r // p * units + c // g) * p + r % p) + (c % g) * size
            padded[at:at + size] = True
    assert not any(np.frombuffer(data, dtype=np.uint8)[~padded])
    np.testing.assert_array_equal(altclip_format.from_panels(dtype, shape, data, layout), a)
    with pytest.raises(altclip_format.FormatError):
        altclip_format.to_panels("i8", a.astype(np.int8))
    with pytest.raises(altclip_format.FormatError):
        altclip_format.to_panels(dtype, a.reshape(-1))


@pytest.mark.parametrize("dtype", convert.DTYPES)
def test_safetensors_and_bin_give_identical_files(converted, dtype):
    a, b = converted["st", dtype], converted["bin", dtype]
    assert list(a.tensors) == list(b.tensors)
    for name in a.tensors:
        assert a.tensors[name][0] == b.tensors[name][0]
        np.testing.assert_array_equal(a.tensors[name][1], b.tensors[name][1])
    assert a.header["config"] == b.header["config"]
    assert a.blobs == b.blobs


def test_q8_holds_int8_matrices_with_row_scales(converted, model):
    """--dtype q8: layer matrices, patch embedding and projections as int8 + per-row f32 scale
    (|w - q * scale| <= scale / 2), word embeddings bf16, everything else f32 unchanged."""
    ref = canonical_state_dict(model)
    c = converted["st", "q8"]
    matrices = {n for n, t in ref.items() if convert.is_q8_matrix(n, tuple(t.shape))}
    assert "vision_model.embeddings.patch_embedding.weight" in matrices
    assert "text_model.roberta.encoder.layer.0.attention.self.query.weight" in matrices
    assert "text_model.roberta.embeddings.word_embeddings.weight" not in matrices
    assert set(c.tensors) == set(ref) | {n + convert.Q8_SCALE_SUFFIX for n in matrices}
    for name, t in ref.items():
        w = t.numpy()
        dt, arr = c.tensors[name]
        if name in matrices:
            assert dt == "i8" and list(arr.shape) == list(w.shape), name
            scale = c.f32(name + convert.Q8_SCALE_SUFFIX)
            assert scale.shape == (w.shape[0],) and scale.dtype == np.float32
            rows = w.reshape(w.shape[0], -1)
            assert np.all(np.abs(arr.reshape(w.shape[0], -1)).max(axis=1) == 127)
            err = np.abs(rows - arr.reshape(w.shape[0], -1).astype(np.float32) * scale[:, None])
            assert np.all(err <= scale[:, None] * 0.5 + 1e-6), name
        elif name.endswith("word_embeddings.weight"):
            assert dt == "bf16"
            np.testing.assert_array_equal(arr, t.bfloat16().view(torch.int16).numpy().view(np.uint16))
        else:
            assert dt == "f32"
            np.testing.assert_array_equal(arr, w, err_msg=name)


def test_header_contents(converted, st_folder, spm_bytes):
    c = converted["st", "f16"]
    h = c.header
    with open(os.path.join(st_folder, "config.json")) as f:
        hf = json.load(f)
    with open(os.path.join(st_folder, "preprocessor_config.json")) as f:
        pre = json.load(f)
    assert h["metadata"]["hf_config"] == hf
    assert h["metadata"]["dtype"] == "f16"
    assert h["metadata"]["source_weights"] == "model.safetensors"
    assert h["metadata"]["converter"] == "tools/convert.py"
    assert h["preprocessor_config"] == pre
    assert c.blobs["sentencepiece.bpe.model"] == spm_bytes
    assert h["config"] == {
        "projection_dim": 16,
        "text_config": {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 37, "hidden_act": "gelu", "max_position_embeddings": 40,
                        "type_vocab_size": 1, "layer_norm_eps": 1e-05, "pad_token_id": 1, "project_dim": 24},
        "vision_config": {"hidden_size": 48, "intermediate_size": 40, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "num_channels": 3, "image_size": 32, "patch_size": 8,
                          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 16},
    }
    # tensor order is the config-implied order, independent of the source
    assert list(c.tensors) == list(convert.expected_tensors(h["config"]))


def test_legacy_torch_format(tmp_path, model, st_folder, converted):
    folder = str(tmp_path / "legacy")
    shutil.copytree(st_folder, folder)
    os.remove(os.path.join(folder, "model.safetensors"))
    torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(os.path.join(folder, "pytorch_model.bin"))
    out = str(tmp_path / "legacy.altclip")
    convert.convert(folder, out, "f32")
    c = altclip_format.read_container(out)
    ref = converted["st", "f32"]
    for name in ref.tensors:
        np.testing.assert_array_equal(c.tensors[name][1], ref.tensors[name][1])


def test_bf16_and_f16_sources(tmp_path, model, st_folder, spm_bytes):
    """Source tensors in f16/bf16 are widened to f32 first; f32 output equals torch's .float()."""
    import safetensors.torch
    for tdtype in (torch.float16, torch.bfloat16):
        folder = str(tmp_path / str(tdtype))
        shutil.copytree(st_folder, folder)
        sd = {k: v.to(tdtype) for k, v in model.state_dict().items()}
        safetensors.torch.save_file(sd, os.path.join(folder, "model.safetensors"))
        for dtype in FLOAT_DTYPES:
            out = str(tmp_path / f"{tdtype}-{dtype}.altclip")
            convert.convert(folder, out, dtype)
            c = altclip_format.read_container(out)
            for k, v in sd.items():
                name = convert.canonical_name(k)
                got = c.f32(name)
                keep = dtype == "f32" or name == "logit_scale" or not convert.is_reduced(name, tuple(v.shape))
                want = v.float() if keep else (
                    v.half().float() if dtype == "f16" else v.bfloat16().float())
                np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{tdtype} {dtype} {name}")


def test_prefers_safetensors(tmp_path, st_folder, model):
    folder = str(tmp_path / "both")
    shutil.copytree(st_folder, folder)
    sd = {k: v * 0 for k, v in model.state_dict().items()}  # different values in the .bin
    torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    out = str(tmp_path / "o.altclip")
    meta = convert.convert(folder, out)
    assert meta["source_weights"] == "model.safetensors"
    assert float(altclip_format.read_container(out).f32("logit_scale")) == 2.75


def test_sharded_safetensors(tmp_path, st_folder, model, converted):
    from safetensors.numpy import save_file
    folder = str(tmp_path / "sharded")
    shutil.copytree(st_folder, folder)
    os.remove(os.path.join(folder, "model.safetensors"))
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for fn, ks in shards.items():
        save_file({k: sd[k] for k in ks}, os.path.join(folder, fn))
        weight_map.update({k: fn for k in ks})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    out = str(tmp_path / "o.altclip")
    convert.convert(folder, out)
    c = altclip_format.read_container(out)
    for name in converted["st", "f32"].tensors:
        np.testing.assert_array_equal(c.tensors[name][1], converted["st", "f32"].tensors[name][1])


# ----------------------------------------------------------------------------- config

def _hf_resolved(folder):
    cfg = transformers.AltCLIPConfig.from_pretrained(folder)
    t, v = cfg.text_config, cfg.vision_config
    return {
        "projection_dim": cfg.projection_dim,
        "text_config": {k: getattr(t, k) for k in convert.TEXT_DEFAULTS},
        "vision_config": {k: getattr(v, k) for k in convert.VISION_DEFAULTS},
    }


@pytest.mark.parametrize("hf", [
    {"model_type": "altclip"},
    {"model_type": "altclip", "projection_dim": 32, "text_config": {"hidden_size": 64, "num_attention_heads": 8},
     "vision_config": {"patch_size": 14, "image_size": 28}},
    # the legacy dicts: transformers builds a full config from them (defaults for absent keys)
    {"model_type": "altclip", "text_config": {"hidden_size": 64, "vocab_size": 99},
     "text_config_dict": {"vocab_size": 77, "num_attention_heads": 4}},
    {"model_type": "altclip", "vision_config": {"hidden_size": 1024, "patch_size": 14, "num_hidden_layers": 24},
     "vision_config_dict": {"hidden_size": 1024, "num_attention_heads": 16, "patch_size": 14,
                            "intermediate_size": 4096, "projection_dim": 768}},
    {"model_type": "altclip", "text_config_dict": {"hidden_size": 128, "num_attention_heads": 2}},
])
def test_resolve_config_matches_transformers(tmp_path, hf):
    with open(tmp_path / "config.json", "w") as f:
        json.dump(hf, f)
    assert convert.resolve_config(hf) == _hf_resolved(str(tmp_path))


@pytest.mark.parametrize("overrides", [
    {},
    {"text": {"type_vocab_size": 2, "max_position_embeddings": 20}, "vision": {"image_size": 30, "num_channels": 1}},
    {"projection_dim": 8, "text": {"project_dim": 12}},
])
def test_expected_tensors_match_transformers(overrides):
    cfg = tiny_config(**overrides)
    m = transformers.AltCLIPModel(cfg)
    got = convert.expected_tensors(convert.resolve_config(cfg.to_dict()))
    want = {k: tuple(v.shape) for k, v in canonical_state_dict(m).items()}
    assert got == want


def test_text_config_dict_override_applied(tmp_path, st_folder):
    folder = str(tmp_path / "legacy_cfg")
    shutil.copytree(st_folder, folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        hf = json.load(f)
    good = dict(hf["text_config"])
    hf["text_config"]["hidden_size"] = 999  # wrong, overridden by the legacy dict
    hf["text_config"]["num_attention_heads"] = 9
    hf["text_config_dict"] = {k: good[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                    "num_attention_heads", "intermediate_size",
                                                    "max_position_embeddings", "project_dim")}
    with open(path, "w") as f:
        json.dump(hf, f)
    out = str(tmp_path / "o.altclip")
    convert.convert(folder, out)
    h = altclip_format.read_container(out).header
    assert h["config"]["text_config"]["hidden_size"] == 32
    assert h["metadata"]["hf_config"]["text_config"]["hidden_size"] == 999


@pytest.mark.parametrize("change, expect", [
    ({"text_config": {"hidden_act": "relu"}}, "text_config.hidden_act is 'relu'"),
    ({"vision_config": {"hidden_act": "gelu"}}, "only 'quick_gelu'"),
    ({"text_config": {"hidden_size": 30, "num_attention_heads": 4}}, "not a multiple"),
    ({"vision_config": {"image_size": [32, 16]}}, "vision_config.image_size"),
    ({"model_type": "clip"}, "model_type is 'clip'"),
])
def test_bad_config_values(change, expect):
    hf = {"model_type": "altclip", "text_config": {}, "vision_config": {}}
    for k, v in change.items():
        if isinstance(v, dict):
            hf[k].update(v)
        else:
            hf[k] = v
    with pytest.raises(ConvertError, match=expect.replace("(", r"\(").replace("[", r"\[")):
        convert.resolve_config(hf)


def _edit_config(folder, section, **kv):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        hf = json.load(f)
    hf[section].update(kv)
    with open(path, "w") as f:
        json.dump(hf, f)


def test_config_not_matching_tensors(tmp_path, st_folder):
    folder = str(tmp_path / "mismatch")
    shutil.copytree(st_folder, folder)
    _edit_config(folder, "text_config", hidden_size=64)
    out = str(tmp_path / "o.altclip")
    with pytest.raises(ConvertError) as e:
        convert.convert(folder, out)
    msg = str(e.value)
    assert "does not match config.json" in msg
    assert "text_model.roberta.embeddings.word_embeddings.weight is [50, 32] in the checkpoint, " \
           "config.json implies [50, 64]" in msg
    assert not os.path.exists(out)

    _edit_config(folder, "text_config", hidden_size=32, num_hidden_layers=1)
    with pytest.raises(ConvertError, match=r"unexpected tensor\(s\): text_model\.roberta\.encoder\.layer\.1\."):
        convert.convert(folder, out)
    _edit_config(folder, "text_config", num_hidden_layers=2)
    _edit_config(folder, "vision_config", num_hidden_layers=3)
    with pytest.raises(ConvertError, match=r"missing tensor\(s\): vision_model\.encoder\.layers\.2\."):
        convert.convert(folder, out)
    assert not os.path.exists(out)


def _folder_with(tmp_path, st_folder, model, edit):
    from safetensors.numpy import save_file
    folder = str(tmp_path / "edited")
    shutil.copytree(st_folder, folder)
    sd = {convert.canonical_name(k): v.numpy() for k, v in model.state_dict().items()}
    edit(sd)
    save_file(sd, os.path.join(folder, "model.safetensors"))
    return folder


def test_missing_tensor(tmp_path, st_folder, model):
    folder = _folder_with(tmp_path, st_folder, model, lambda sd: sd.pop("text_model.pre_LN.bias"))
    with pytest.raises(ConvertError, match=r"1 missing tensor\(s\): text_model\.pre_LN\.bias"):
        convert.convert(folder, str(tmp_path / "o.altclip"))
    assert not os.path.exists(tmp_path / "o.altclip")


def test_extra_tensor(tmp_path, st_folder, model):
    def edit(sd):
        sd["text_model.foo.weight"] = np.zeros(3, np.float32)
        sd["text_model.roberta.pooler.dense.bias"] = np.zeros(32, np.float32)  # known unused: skipped
    folder = _folder_with(tmp_path, st_folder, model, edit)
    with pytest.raises(ConvertError, match=r"1 unexpected tensor\(s\): text_model\.foo\.weight$"):
        convert.convert(folder, str(tmp_path / "o.altclip"))


def test_wrong_dtype_and_f16_overflow(tmp_path, st_folder, model):
    def edit(sd):
        sd["text_model.pre_LN.bias"] = sd["text_model.pre_LN.bias"].astype(np.int32)
    folder = _folder_with(tmp_path, st_folder, model, edit)
    with pytest.raises(ConvertError, match=r"text_model\.pre_LN\.bias \(int32\)"):
        convert.convert(folder, str(tmp_path / "o.altclip"))

    def edit2(sd):  # (a matrix: biases and norms stay float32 in f16 files)
        sd["text_model.transformation.weight"] = sd["text_model.transformation.weight"] * 0 + 1e6
    folder = _folder_with(tmp_path / "b", st_folder, model, edit2)
    with pytest.raises(ConvertError, match=r"text_model\.transformation\.weight: values up to 1e\+06 overflow f16"):
        convert.convert(folder, str(tmp_path / "o.altclip"), "f16")
    convert.convert(folder, str(tmp_path / "o.altclip"), "bf16")  # fine in bf16


def test_duplicate_spellings_rejected(tmp_path, st_folder, model):
    def edit(sd):
        sd["text_model.roberta.encoder.layers.0.output.dense.bias"] = sd[
            "text_model.roberta.encoder.layer.0.output.dense.bias"]
    folder = _folder_with(tmp_path, st_folder, model, edit)
    with pytest.raises(ConvertError, match="both text_model.roberta.encoder.layer.0.output.dense.bias and "
                                           "text_model.roberta.encoder.layers.0.output.dense.bias"):
        convert.convert(folder, str(tmp_path / "o.altclip"))


# ----------------------------------------------------------------------------- safetensors lies

def _st_file(path, entries, data, header_len=None, raw_header=None):
    header = raw_header if raw_header is not None else json.dumps(entries).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if header_len is None else header_len))
        f.write(header)
        f.write(data)
    return str(path)


def test_safetensors_valid_roundtrip(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array(1.5, np.float32)
    p = _st_file(tmp_path / "ok.safetensors", {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "F32", "shape": [], "data_offsets": [24, 28]},
        "c": {"dtype": "BF16", "shape": [1], "data_offsets": [28, 30]},
    }, a.tobytes() + b.tobytes() + struct.pack("<H", 0x3FC0))
    got = convert.read_safetensors(p)
    np.testing.assert_array_equal(got["a"], a)
    assert got["b"].shape == () and float(got["b"]) == 1.5
    assert got["c"].dtype == np.float32 and float(got["c"][0]) == 1.5


@pytest.mark.parametrize("entries, data_len, expect", [
    ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, 20,
     r"tensor w: data_offsets \[0, 20\] span 20 bytes, but shape \[2, 3\] x F32 needs 24"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 4, r"cover 8 bytes .* has 4 bytes"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 12, r"cover 8 bytes .* has 12 bytes"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "v": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, 12, r"tensor v: .*a gap"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, r"tensor v: .*an overlap"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, 4, r"tensor w: bad data_offsets"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, 4, r"tensor w: bad shape"),
    ({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, 8, r"tensor w: unsupported dtype 'C64'"),
])
def test_safetensors_lies(tmp_path, entries, data_len, expect):
    p = _st_file(tmp_path / "bad.safetensors", entries, b"\0" * data_len)
    with pytest.raises(ConvertError, match=expect):
        convert.read_safetensors(p)


def test_safetensors_bad_header_length(tmp_path):
    p = _st_file(tmp_path / "a.safetensors", None, b"", header_len=100_000_001, raw_header=b"{}")
    with pytest.raises(ConvertError, match="exceeds the 100000000-byte limit"):
        convert.read_safetensors(p)
    p = _st_file(tmp_path / "b.safetensors", None, b"", header_len=1000, raw_header=b"{}")
    with pytest.raises(ConvertError, match="runs past the end of the file"):
        convert.read_safetensors(p)
    p = _st_file(tmp_path / "c.safetensors", None, b"", raw_header=b"{not json")
    with pytest.raises(ConvertError, match="not valid UTF-8 JSON"):
        convert.read_safetensors(p)


def test_lying_safetensors_in_folder_leaves_no_output(tmp_path, st_folder):
    folder = str(tmp_path / "lie")
    shutil.copytree(st_folder, folder)
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header["logit_scale"]["shape"] = [2]
    _st_file(path, header, data)
    out = str(tmp_path / "o.altclip")
    with pytest.raises(ConvertError, match="tensor logit_scale: data_offsets"):
        convert.convert(folder, out)
    assert os.listdir(tmp_path) == ["lie"]


# ----------------------------------------------------------------------------- unsafe pickles

class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_zip(path, marker):
    """A torch-zip layout whose data.pkl rebuilds one tensor, then calls os.system."""
    good = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, good)
    src = zipfile.ZipFile(io.BytesIO(good.getvalue()))
    payload = pickle.dumps(collections.OrderedDict([("x", Evil(marker))]), protocol=2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = payload if info.filename.endswith("/data.pkl") else src.read(info)
            z.writestr(info.filename, data)


@pytest.mark.parametrize("kind", ["zip", "plain", "legacy"])
def test_malicious_pickle_refused(tmp_path, st_folder, kind):
    marker = tmp_path / "PWNED"
    folder = str(tmp_path / "evil")
    shutil.copytree(st_folder, folder)
    os.remove(os.path.join(folder, "model.safetensors"))
    binp = os.path.join(folder, "pytorch_model.bin")
    if kind == "zip":
        _evil_zip(binp, marker)
    elif kind == "plain":
        with open(binp, "wb") as f:
            pickle.dump({"w": Evil(marker)}, f)
    else:  # legacy header pickles, then an evil object pickle
        with open(binp, "wb") as f:
            for obj in (convert.TORCH_LEGACY_MAGIC, convert.TORCH_LEGACY_PROTOCOL, {"little_endian": True}):
                pickle.dump(obj, f, protocol=2)
            pickle.dump(Evil(marker), f, protocol=2)
    out = str(tmp_path / "o.altclip")
    with pytest.raises(ConvertError) as e:
        convert.convert(folder, out)
    msg = str(e.value)
    assert msg.startswith("pytorch_model.bin: refusing to load: the pickle calls posix.system")
    assert "which is not tensor rebuilding" in msg and "safe_serialization=True" in msg
    assert not marker.exists()
    assert not os.path.exists(out)
    assert sorted(os.listdir(tmp_path)) == ["evil"]
    # sanity: the crafted file really does run the command under an ordinary unpickler
    if kind == "zip":
        with zipfile.ZipFile(binp) as z:
            pickle.loads(z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0]))
    else:
        with open(binp, "rb") as f:
            for _ in range(4 if kind == "legacy" else 1):
                pickle.load(f)
    assert marker.exists()


def test_other_globals_refused(tmp_path):
    p = tmp_path / "x.bin"
    with open(p, "wb") as f:
        f.write(b"\x80\x02cbuiltins\neval\nq\x00X\x05\x00\x00\x001+1==2q\x01\x85q\x02Rq\x03.")
    with pytest.raises(ConvertError, match="the pickle calls builtins.eval"):
        convert.read_torch_bin(str(p))
    with open(p, "wb") as f:
        f.write(b"\x80\x02ctorch\nload\nq\x00.")
    with pytest.raises(ConvertError, match="the pickle calls torch.load"):
        convert.read_torch_bin(str(p))


def test_garbage_bin(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"garbage, not a pickle")
    with pytest.raises(ConvertError, match="not a valid torch checkpoint"):
        convert.read_torch_bin(str(p))
    with open(p, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ConvertError, match="neither a torch zip checkpoint"):
        convert.read_torch_bin(str(p))


def test_torch_bin_reader_strides_and_types(tmp_path):
    base = torch.arange(24, dtype=torch.float32)
    sd = collections.OrderedDict(
        a=base.view(4, 6), b=base[6:12], c=base.view(4, 6).t(), d=torch.arange(5).expand(3, -1),
        e=torch.randn(3).bfloat16(), f=torch.randn(2, 2).half(), s=torch.tensor(3.0),
        p=torch.nn.Parameter(torch.ones(2)), z=torch.zeros(0, 3))
    p = str(tmp_path / "x.bin")
    torch.save(sd, p)
    got = convert.read_torch_bin(p)
    for k, v in sd.items():
        want = v.detach().float() if v.dtype == torch.bfloat16 else v.detach()
        np.testing.assert_array_equal(got[k], want.numpy(), err_msg=k)
        assert got[k].shape == tuple(v.shape)
    torch.save(sd, p, _use_new_zipfile_serialization=False)
    got = convert.read_torch_bin(p)
    for k, v in sd.items():
        want = v.detach().float() if v.dtype == torch.bfloat16 else v.detach()
        np.testing.assert_array_equal(got[k], want.numpy(), err_msg=k)


# ----------------------------------------------------------------------------- atomicity, hub, CLI

@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing(tmp_path, st_folder, exc):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "o.altclip")
    calls = []

    def progress(phase, done, total):
        if phase == "writing":
            calls.append(done)
            if len(calls) == 5:
                assert [n for n in os.listdir(out_dir) if n.endswith(".partial")]  # really mid-write
                raise exc("boom")

    with pytest.raises(exc):
        convert.convert(st_folder, out, "bf16", progress)
    assert os.listdir(out_dir) == []


def test_interrupted_fsync_leaves_nothing(tmp_path, st_folder, monkeypatch):
    def bad_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(altclip_format.os, "fsync", bad_fsync)
    with pytest.raises(KeyboardInterrupt):
        convert.convert(st_folder, str(tmp_path / "o.altclip"))
    assert os.listdir(tmp_path) == []


def test_hub_id_without_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    with pytest.raises(ConvertError, match="pip install huggingface_hub"):
        convert.convert("BAAI/AltCLIP", str(tmp_path / "o.altclip"), revision="refs/pr/7")
    with pytest.raises(ConvertError, match="no such folder, and not a hub repo id"):
        convert.convert(str(tmp_path / "does" / "not" / "exist"), str(tmp_path / "o.altclip"))
    assert os.listdir(tmp_path) == []


def test_hub_id_download_patterns(tmp_path, monkeypatch, st_folder, bin_folder):
    """With a fake huggingface_hub: safetensors are asked for first, the .bin only as a fallback."""
    import types
    calls = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        if repo_id == "BAAI/AltCLIP" and revision == "refs/pr/7":
            return st_folder
        # main: only the .bin exists; the first call gets no weights
        if any("pytorch_model" in p for p in allow_patterns):
            return bin_folder
        d = tmp_path / "partial"
        d.mkdir(exist_ok=True)
        return str(d)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    meta = convert.convert("BAAI/AltCLIP", str(tmp_path / "a.altclip"), revision="refs/pr/7")
    assert meta["source"] == "BAAI/AltCLIP" and meta["revision"] == "refs/pr/7"
    assert meta["source_weights"] == "model.safetensors" and len(calls) == 1
    assert not any("pytorch_model" in p for p in calls[0][2])
    calls.clear()
    meta = convert.convert("BAAI/AltCLIP", str(tmp_path / "b.altclip"))
    assert meta["source_weights"] == "pytorch_model.bin" and len(calls) == 2


def test_cli(tmp_path, st_folder, capsys):
    out = str(tmp_path / "o.altclip")
    assert convert.main([st_folder, out, "--dtype", "f16", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert altclip_format.read_container(out).header["metadata"]["dtype"] == "f16"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert convert.main([str(tmp_path / "nope"), out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convert.py: error: ") and "Traceback" not in err


def test_cli_subprocess_without_torch(tmp_path, bin_folder):
    """The real command line: progress on stderr, exit codes, and torch never imported."""
    out = str(tmp_path / "o.altclip")
    code = ("import sys; sys.path.insert(0, %r); import convert; rc = convert.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(rc)" % TOOLS)
    r = subprocess.run([sys.executable, "-c", code, bin_folder, out, "--dtype", "bf16"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "writing:" in r.stderr and "100.0%" in r.stderr and "wrote " in r.stderr
    r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), bin_folder, out + "2", "--dtype", "f64"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    os.remove(os.path.join(tmp_path, "o.altclip"))
    bad = str(tmp_path / "bad")
    shutil.copytree(bin_folder, bad)
    _edit_config(bad, "vision_config", hidden_size=64)
    r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), bad, out], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "convert.py: error: checkpoint does not match config.json" in r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(out)
