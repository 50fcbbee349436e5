"""The converter's schema (tools/altclip_convert/schema.py) and the C++ loader name the same
tensors: for every dtype, a checkpoint made from the schema is converted, and the model file is
loaded by altclip_list_weights (tests/list_weights.cpp), which prints the keys the C++ loader
asked for. A key added on one side only fails here, as does a shape or dtype the loader refuses.

Needs numpy and the built program: ctest's converter_schema test passes it in
ALTCLIP_LIST_WEIGHTS; otherwise $ALTCLIP_BUILD_DIR (default build)/tests/altclip_list_weights
is used, and the test is skipped when it is not built.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

import convert  # noqa: E402
from altclip_convert.schema import DTYPES, model_tensors, stored_tensors  # noqa: E402

PROGRAM = os.environ.get("ALTCLIP_LIST_WEIGHTS") or os.path.join(
    ROOT, os.environ.get("ALTCLIP_BUILD_DIR", "build"), "tests", "altclip_list_weights")

# Every size distinct, two layers per tower, two token types: a key or shape mixed up shows.
HF_CONFIG = {
    "model_type": "altclip", "projection_dim": 12,
    "text_config": {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "intermediate_size": 24, "max_position_embeddings": 20, "type_vocab_size": 2,
                    "project_dim": 14},
    "vision_config": {"hidden_size": 20, "intermediate_size": 28, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "image_size": 16, "patch_size": 8, "num_channels": 3},
}


def _write_safetensors(path, tensors):
    header, data = {}, bytearray()
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(data), len(data) + a.nbytes]}
        data += a.astype("<f4").tobytes()
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(data))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A hub-style folder holding a random value for every tensor of the schema."""
    folder = tmp_path_factory.mktemp("schema_ckpt")
    rng = np.random.default_rng(16)
    config = convert.resolve_config(HF_CONFIG)
    _write_safetensors(folder / "model.safetensors",
                       {t.key: (rng.standard_normal(t.shape) * 0.1).astype(np.float32) for t in model_tensors(config)})
    (folder / "config.json").write_text(json.dumps(HF_CONFIG))
    (folder / "preprocessor_config.json").write_text(json.dumps({"size": 16, "crop_size": 16}))
    shutil.copyfile(os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model"), folder / "sentencepiece.bpe.model")
    return str(folder), config


@pytest.mark.skipif(not os.path.exists(PROGRAM), reason=f"{PROGRAM} is not built (cmake --build build "
                    f"--target altclip_list_weights)")
@pytest.mark.parametrize("dtype", DTYPES)
def test_schema_names_the_keys_the_cpp_loader_binds(checkpoint, tmp_path, dtype):
    folder, config = checkpoint
    out = str(tmp_path / f"schema-{dtype}.altclip")
    convert.convert(folder, out, dtype)
    r = subprocess.run([PROGRAM, out], capture_output=True, text=True, timeout=120)
    asked = set(r.stdout.split())
    schema = {s.key for s in stored_tensors(config, dtype)}
    assert asked == schema, (
        f"{dtype}: the converter's schema and the C++ loader disagree.\n"
        f"  only in the schema (tools/altclip_convert/schema.py): {sorted(schema - asked)}\n"
        f"  only asked for by the C++ loader: {sorted(asked - schema)}\n{r.stderr}")
    assert r.returncode == 0, f"{dtype}: the C++ loader refused the file:\n{r.stderr}"
