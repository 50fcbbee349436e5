"""A folder saved by current transformers (5.x): AltCLIPModel.save_pretrained plus
AltCLIPProcessor.save_pretrained write processor_config.json (the image processor inside it,
no preprocessor_config.json) and tokenizer.json (no sentencepiece.bpe.model).
python -m pytest -q tools/tests
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import altclip_format  # noqa: E402
import convert  # noqa: E402
from convert import ConvertError  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_convert import canonical_state_dict, model, tiny_config  # noqa: E402,F401  (fixtures)

SPM = os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model")


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory, model):  # noqa: F811
    """save_pretrained of an AltCLIPModel and an AltCLIPProcessor, as transformers 5 writes them."""
    folder = str(tmp_path_factory.mktemp("t5") / "saved")
    with tempfile.TemporaryDirectory() as spm_only:
        shutil.copyfile(SPM, os.path.join(spm_only, "sentencepiece.bpe.model"))
        tokenizer = transformers.XLMRobertaTokenizer.from_pretrained(spm_only)
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    transformers.AltCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_saved_folder_has_the_transformers5_layout(t5_folder):
    names = set(os.listdir(t5_folder))
    if "preprocessor_config.json" in names or "sentencepiece.bpe.model" in names:
        pytest.skip(f"this transformers ({transformers.__version__}) saves the old layout: {sorted(names)}")
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names


def test_missing_sentencepiece_model_says_where_to_get_it(t5_folder, tmp_path):
    if os.path.exists(os.path.join(t5_folder, "sentencepiece.bpe.model")):
        pytest.skip("this transformers saves the SentencePiece model")
    out = str(tmp_path / "o.altclip")
    with pytest.raises(ConvertError) as e:
        convert.convert(t5_folder, out)
    msg = str(e.value)
    assert "sentencepiece.bpe.model: not found" in msg and "tokenizer.json" in msg
    assert "huggingface-cli download BAAI/AltCLIP sentencepiece.bpe.model" in msg and t5_folder in msg
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("dtype", ["f32", "q8"])
def test_converts_with_the_sentencepiece_model_copied_in(t5_folder, model, tmp_path, dtype):  # noqa: F811
    folder = str(tmp_path / "with_spm")
    shutil.copytree(t5_folder, folder)
    shutil.copyfile(SPM, os.path.join(folder, "sentencepiece.bpe.model"))
    out = str(tmp_path / "o.altclip")
    meta = convert.convert(folder, out, dtype)
    assert meta["source_weights"] == "model.safetensors"
    c = altclip_format.read_container(out)
    with open(os.path.join(folder, "processor_config.json")) as f:
        image_processor = json.load(f)["image_processor"]
    assert c.header["preprocessor_config"] == image_processor
    assert c.header["preprocessor_config"]["crop_size"] == {"height": 32, "width": 32}
    with open(SPM, "rb") as f:
        assert c.blobs["sentencepiece.bpe.model"] == f.read()
    for name, t in canonical_state_dict(model).items():
        if dtype == "f32" or not convert.is_reduced(name):
            np.testing.assert_array_equal(c.f32(name), t.numpy(), err_msg=name)
    assert set(c.tensors) == {s.key for s in convert.stored_tensors(c.header["config"], dtype)}


def test_processor_config_without_image_processor(t5_folder, tmp_path):
    folder = str(tmp_path / "bad")
    shutil.copytree(t5_folder, folder)
    shutil.copyfile(SPM, os.path.join(folder, "sentencepiece.bpe.model"))
    for name in ("preprocessor_config.json", "processor_config.json"):
        if os.path.exists(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    with pytest.raises(ConvertError, match="preprocessor_config.json: not found .*processor_config.json"):
        convert.convert(folder, str(tmp_path / "o.altclip"))
    with open(os.path.join(folder, "processor_config.json"), "w") as f:
        json.dump({"processor_class": "AltCLIPProcessor"}, f)
    with pytest.raises(ConvertError, match="no \"image_processor\" object"):
        convert.convert(folder, str(tmp_path / "o.altclip"))
