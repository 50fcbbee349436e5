#!/usr/bin/env python3
"""Write the small seed inputs of the fuzz targets (fuzz/corpus/<target>/). Deterministic.

  model_file/  two small but complete model files (1 and 0 layers per tower, hidden size 4,
               8x8 images) whose tokenizer blob is the test SentencePiece model cut down to
               its first pieces with the identity normaliser (~1 kB instead of 271 kB), and a
               few broken headers;
  image/       a few of tests/data/images (small ones of each format) and tiny edge cases;
  tokenizer/   texts: scripts, added tokens, whitespace, long words, invalid UTF-8;
  json/        JSON documents: a model file's header, escapes, surrogates, big integers, floats.

Needs numpy, sentencepiece and protobuf (scripts/setup.sh --dev). Usage: python3 fuzz/make_seeds.py
"""
import os
import shutil
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from altclip_format import Raw, float32_to_bf16_bits, to_panels, write_container  # noqa: E402
from convert import Q8_SCALE_SUFFIX, expected_tensors, is_q8_matrix, quantize_q8  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as spm_pb2  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def small_spm(pieces: int = 60) -> bytes:
    m = spm_pb2.ModelProto()
    with open(os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model"), "rb") as f:
        m.ParseFromString(f.read())
    del m.pieces[pieces:]
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.precompiled_charsmap = b""
    m.trainer_spec.ClearField("input")
    m.trainer_spec.vocab_size = pieces
    return m.SerializeToString()


def model_config(layers: int) -> dict:
    return {
        "projection_dim": 4,
        "text_config": {"vocab_size": 64, "hidden_size": 4, "num_hidden_layers": layers,
                        "num_attention_heads": 2, "intermediate_size": 8, "hidden_act": "gelu",
                        "max_position_embeddings": 10, "type_vocab_size": 1, "layer_norm_eps": 1e-05,
                        "pad_token_id": 1, "project_dim": 4},
        "vision_config": {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": layers,
                          "num_attention_heads": 2, "num_channels": 3, "image_size": 8, "patch_size": 4,
                          "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05},
    }


PREPROCESSOR = {"size": {"shortest_edge": 8}, "crop_size": {"height": 8, "width": 8}, "do_convert_rgb": True,
                "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
                "do_normalize": True, "do_center_crop": True,
                "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}


def write_models(out: str) -> None:
    rng = np.random.default_rng(0)
    spm = small_spm()
    for layers in (1, 0):
        cfg = model_config(layers)
        tensors = {name: rng.standard_normal(shape).astype(np.float32) * 0.1
                   for name, shape in expected_tensors(cfg).items()}
        path = os.path.join(out, f"small_l{layers}.altclip")
        write_container(path, tensors, blobs={"sentencepiece.bpe.model": spm}, config=cfg,
                        preprocessor_config=PREPROCESSOR, metadata={"source": "fuzz/make_seeds.py"})
        if layers == 1:  # the same model as bf16 and q8 files, for the in-place weight paths
            bf16 = {n: Raw("bf16", t.shape, float32_to_bf16_bits(t).reshape(-1).view(np.uint8))
                    if n != "logit_scale" else t for n, t in tensors.items()}
            q8 = {}
            for n, t in tensors.items():
                if is_q8_matrix(n, t.shape):
                    q8[n], q8[n + Q8_SCALE_SUFFIX] = quantize_q8(t)
                else:
                    q8[n] = t
            # ... and with the matrices in the kernels' panel layout, as tools/convert.py writes f32 and bf16
            panels = {n: to_panels("f32", t) if is_q8_matrix(n, t.shape) else t for n, t in tensors.items()}
            bf16_panels = {n: to_panels("bf16", float32_to_bf16_bits(t)) if is_q8_matrix(n, t.shape) else v
                           for (n, t), v in zip(tensors.items(), bf16.values())}
            for suffix, ts in (("bf16", bf16), ("q8", q8), ("panels", panels), ("bf16_panels", bf16_panels)):
                write_container(os.path.join(out, f"small_l1_{suffix}.altclip"), ts,
                                blobs={"sentencepiece.bpe.model": spm}, config=cfg,
                                preprocessor_config=PREPROCESSOR, metadata={"source": "fuzz/make_seeds.py"})
    good = open(os.path.join(out, "small_l0.altclip"), "rb").read()
    bad = {
        "header_len_huge": good[:16] + struct.pack("<Q", 2**63) + good[24:200],
        "preamble_only": good[:24],
        "not_json": good[:24] + b"{\"format\": \"altclip\", " + b"\0" * 40,
    }
    for name, data in bad.items():
        with open(os.path.join(out, name + ".altclip"), "wb") as f:
            f.write(data)


def write_images(out: str) -> None:
    src = os.path.join(ROOT, "tests", "data", "images")
    for name in ("rgb_5x5.png", "rgb_1x1.png", "grey16_23x17.png", "palette_trns_31x19.png", "rgba_29x31.png",
                 "grey_40x30.jpg", "cmyk_32x24.jpg", "palette_31x19.gif", "bilevel_35x21.bmp", "rgba_29x31.bmp",
                 "grey2bit_13x11.png", "interlaced_35x27.png", "rgba16_15x13.png"):
        shutil.copy(os.path.join(src, name), os.path.join(out, name))
    # Formats without a test image: a 2x2 binary PPM, a 2x2 grey PGM, a 2x1 uncompressed TGA.
    with open(os.path.join(out, "tiny.ppm"), "wb") as f:
        f.write(b"P6\n2 2\n255\n" + bytes(range(12)))
    with open(os.path.join(out, "tiny.pgm"), "wb") as f:
        f.write(b"P5\n2 2\n255\n" + bytes([0, 64, 128, 255]))
    with open(os.path.join(out, "tiny.tga"), "wb") as f:
        f.write(bytes([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 24, 0]) + bytes([1, 2, 3, 4, 5, 6]))
    with open(os.path.join(out, "tiny.hdr"), "wb") as f:
        f.write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2\n" + bytes([128, 64, 32, 129, 1, 2, 3, 128]))


TEXTS = {
    "en": "a photo of a cat",
    "zh": "一张狗的照片",
    "mixed": "Ein Foto <mask> einer Katze</s><s> im Garten <unk><pad>",
    "space": "   spaces   and\ttabs\n\u0085next line\u3000ideographic",
    "emoji": "🚀 rocket 🚀🚀 ﬁ ligature Ⅻ",
    "long_word": "supercalifragilisticexpialidocious" * 8,
    "batch": "first\nsecond text\n\nfourth <mask>",
    "bad_utf8": b'{"k": "\xc0\xaf \xed\xa0\x80"}',  # an overlong '/' and an encoded surrogate
}


def write_texts(out: str) -> None:
    for name, text in TEXTS.items():
        data = text.encode("latin-1") if name == "bad_utf8" else text.encode("utf-8")
        with open(os.path.join(out, name + ".txt"), "wb") as f:
            f.write(data)


JSON_DOCS = {
    "header": b'{"format": "altclip", "tensors": {"w": {"dtype": "f32", "shape": [2, 3], "offset": 0, '
              b'"size": 24, "layout": "rows"}}, "blobs": {"b": {"offset": 64, "size": 5}}, '
              b'"config": {"projection_dim": 16, "text_config": {"layer_norm_eps": 1e-05}}}',
    "strings": r'["caf\u00e9 \ud83d\ude00 \n\t\"\\\/", "中文 🚀", "\u0000"]'.encode("utf-8"),
    "numbers": b"[0, -0, 18446744073709551615, -9223372036854775808, 9007199254740993, "
               b"18446744073709551616, 1.5e-7, -2E+10, 4.9e-324, 1e-400, 0.1]",
    "nested": b'{"a": [[[{"b": [{"c": {}}, []]}]]], "d": null, "e": true, "f": false}',
    "bad_utf8": b'{"k": "\xc0\xaf \xed\xa0\x80"}',  # an overlong '/' and an encoded surrogate
}


def write_json(out: str) -> None:
    for name, data in JSON_DOCS.items():
        with open(os.path.join(out, name + ".json"), "wb") as f:
            f.write(data)


def main() -> None:
    for target, fn in (("model_file", write_models), ("image", write_images), ("tokenizer", write_texts),
                       ("json", write_json)):
        out = os.path.join(CORPUS, target)
        os.makedirs(out, exist_ok=True)
        fn(out)
    print("fuzz seeds written to", CORPUS)


if __name__ == "__main__":
    main()
