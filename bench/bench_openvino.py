#!/usr/bin/env python3
"""The OpenVINO side of the benchmark: the transformers AltCLIP model converted with
`openvino.convert_model` (once, cached as IR under bench/.cache/openvino/), compiled for
the CPU, timed on the same inputs as bench/bench.cpp and bench/bench_torch.py, printing one
JSON object with the same keys (image_b1_s, image_b8_s, text16_s, load_s, ...).

    python3 bench/bench_openvino.py --folder HUB_FOLDER --inputs DIR [--precision default|f32]
        [--threads N] [--repeat N] [--batch-repeat N] [--text-repeat N] [--warmup N]
        [--embeddings FILE] [--accuracy-only]

--precision default leaves OpenVINO's choice for this CPU (bf16 where the CPU has AMX or
AVX512_BF16, else f32); f32 sets INFERENCE_PRECISION_HINT=f32. `pip install openvino`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache", "openvino")

T_START = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
import numpy as np  # noqa: E402
import openvino as ov  # noqa: E402

IMPORT_S = time.perf_counter() - T_START


def note(msg: str) -> None:
    print(f"[bench_openvino] {msg}", file=sys.stderr, flush=True)


def time_runs(what: str, warmup: int, repeat: int, fn) -> dict:
    return timing.time_runs("bench_openvino", what, warmup, repeat, fn)


def folder_key(folder: str) -> str:
    """Identifies the checkpoint: the config and the weights' sizes and times."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        st = os.stat(os.path.join(folder, name))
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def convert(folder: str) -> tuple:
    """The image and text towers as OpenVINO IR (converted once per checkpoint, then read)."""
    out = os.path.join(CACHE, folder_key(folder))
    image_xml, text_xml = os.path.join(out, "image.xml"), os.path.join(out, "text.xml")
    if not (os.path.exists(image_xml) and os.path.exists(text_xml)):
        import torch
        from transformers import AltCLIPModel

        note(f"converting {folder} to OpenVINO IR in {out} (once) ...")
        model = AltCLIPModel.from_pretrained(folder, dtype=torch.float32).eval()

        def pooled(x):
            return x if isinstance(x, torch.Tensor) else x.pooler_output

        class Image(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, pixel_values):
                return pooled(self.m.get_image_features(pixel_values=pixel_values))

        class Text(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return pooled(self.m.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

        os.makedirs(out, exist_ok=True)
        with torch.inference_mode():
            size = model.config.vision_config.image_size
            image = ov.convert_model(Image(model), example_input=torch.zeros(1, 3, size, size),
                                     input=[ov.PartialShape([-1, 3, size, size])])
            ids = torch.ones(1, 16, dtype=torch.long)
            text = ov.convert_model(Text(model), example_input=(ids, torch.ones_like(ids)),
                                    input=[ov.PartialShape([-1, -1]), ov.PartialShape([-1, -1])])
        # Weights kept in float32 in the IR (compress_to_fp16 would round them before the
        # comparison starts); the CPU plugin picks the run-time precision.
        ov.save_model(image, image_xml, compress_to_fp16=False)
        ov.save_model(text, text_xml, compress_to_fp16=False)
    return image_xml, text_xml


def precision_name(compiled) -> str:
    """The run-time precision the CPU plugin chose ("bf16", "f32", ...)."""
    t = compiled.get_property("INFERENCE_PRECISION_HINT")
    return t.get_type_name() if hasattr(t, "get_type_name") else str(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="hub-style model folder (bench/make_bench_model.py)")
    ap.add_argument("--inputs", required=True, help="folder with inputs.json and pixels.f32 from altclip_bench")
    ap.add_argument("--precision", choices=["default", "f32"], default="default")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-repeat", type=int, default=3)
    ap.add_argument("--text-repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--labels", type=int, default=0, help="accepted for symmetry with the other sides; unused")
    ap.add_argument("--embeddings", help="write the embeddings of the batch-8 images and the caption")
    ap.add_argument("--accuracy-only", action="store_true")
    args = ap.parse_args(argv)

    with open(os.path.join(args.inputs, "inputs.json")) as f:
        inputs = json.load(f)
    shape = inputs["pixels"]["shape"]
    pixels8 = np.fromfile(os.path.join(args.inputs, inputs["pixels"]["file"]), dtype="<f4").reshape(shape)
    pixels1 = np.ascontiguousarray(pixels8[:1])
    caption = np.array([inputs["caption_ids"]], dtype=np.int64)
    caption_mask = np.ones_like(caption)

    image_xml, text_xml = convert(args.folder)
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    if args.precision == "f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    t_load = time.perf_counter()
    image = core.compile_model(core.read_model(image_xml), "CPU", config)
    text = core.compile_model(core.read_model(text_xml), "CPU", config)
    load_s = time.perf_counter() - t_load
    result = {
        "openvino": ov.__version__, "import_s": IMPORT_S, "load_s": load_s, "precision": args.precision,
        "threads_requested": args.threads,
        "inference_precision": precision_name(image),
        "isa": f"OpenVINO {args.precision} ({precision_name(image)})",
    }
    image_req, text_req = image.create_infer_request(), text.create_infer_request()
    out = {}

    def image1():
        return image_req.infer([pixels1])[0]

    def image8():
        out["image"] = image_req.infer([pixels8])[0].copy()

    def text16():
        out["caption"] = text_req.infer([caption, caption_mask])[0].copy()

    if args.accuracy_only:
        image8(), text16()
    else:
        result["image_b1_s"] = time_runs("image b1", args.warmup, args.repeat, image1)
        if args.batch_repeat > 0:
            result["image_b8_s"] = time_runs("image b8", 1, args.batch_repeat, image8)
            result["image_b8_images_per_s"] = shape[0] / result["image_b8_s"]["median"]
        result["text16_s"] = time_runs("text 16 tokens", args.warmup, args.text_repeat, text16)
    if args.embeddings:
        if "image" not in out:
            image8(), text16()
        with open(args.embeddings, "w") as f:
            json.dump({k: v.tolist() for k, v in out.items()}, f)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
