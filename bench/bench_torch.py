#!/usr/bin/env python3
"""The PyTorch side of the benchmark: transformers' AltCLIPModel doing what bench/bench.cpp does,
on the inputs that altclip_bench wrote with --write-inputs, printing one JSON object with the
same keys. bench/run_bench.py runs it as a subprocess (one fresh process per round, so its
load time and peak memory are its own).

    python3 bench/bench_torch.py --folder HUB_FOLDER --inputs DIR [--threads N] [--repeat N]
        [--batch-repeat N] [--text-repeat N] [--label-repeat N] [--warmup N] [--labels N]
        [--embeddings FILE] [--accuracy-only]

float32, torch.inference_mode(), torch.set_num_threads(--threads, default: all cores).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

T_START = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AltCLIPModel, AltCLIPProcessor  # noqa: E402

IMPORT_S = time.perf_counter() - T_START


def note(msg: str) -> None:
    print(f"[bench_torch] {msg}", file=sys.stderr, flush=True)


def memory() -> dict:
    m = {"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    with open("/proc/self/status") as f:
        for line in f:
            for key in ("VmHWM", "VmRSS"):
                if line.startswith(key + ":"):
                    m[key + "_bytes"] = int(line.split()[1]) * 1024
    return m


def time_runs(what: str, warmup: int, repeat: int, fn) -> dict:
    return timing.time_runs("bench_torch", what, warmup, repeat, fn)


def pooled(x):
    # transformers 5 returns a ModelOutput from get_*_features; 4.x a tensor.
    return x if isinstance(x, torch.Tensor) else x.pooler_output


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="hub-style model folder (bench/make_bench_model.py)")
    ap.add_argument("--inputs", required=True, help="folder with inputs.json and pixels.f32 from altclip_bench")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-repeat", type=int, default=3)
    ap.add_argument("--text-repeat", type=int, default=20)
    ap.add_argument("--label-repeat", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--embeddings", help="write the embeddings of the batch-8 images, the caption and the first label batch")
    ap.add_argument("--accuracy-only", action="store_true", help="only compute the embeddings (no timing)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16: model.to(torch.bfloat16), what a user would switch to for speed (oneDNN)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    with open(os.path.join(args.inputs, "inputs.json")) as f:
        inputs = json.load(f)
    shape = inputs["pixels"]["shape"]
    pixels8 = torch.from_numpy(np.fromfile(os.path.join(args.inputs, inputs["pixels"]["file"]), dtype="<f4")
                               .reshape(shape).copy())
    dtype = getattr(torch, args.dtype)
    pixels8 = pixels8.to(dtype)
    pixels1 = pixels8[:1].clone()
    caption = torch.tensor([inputs["caption_ids"]], dtype=torch.long)
    caption_mask = torch.ones_like(caption)
    labels = inputs["labels"][: args.labels]
    step = int(inputs["label_batch"])

    result = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "threads_requested": args.threads, "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "import_s": IMPORT_S, "dtype": args.dtype,
    }

    t_load = time.perf_counter()
    model = AltCLIPModel.from_pretrained(args.folder, dtype=torch.float32).eval().to(dtype)
    processor = AltCLIPProcessor.from_pretrained(args.folder)
    result["load_s"] = time.perf_counter() - t_load
    result["memory_after_load"] = memory()
    tokenizer = processor.tokenizer

    def tokenize(chunk):
        # What AltCLIPProcessor(text=...) does, truncating at the text tower's limit as the C++ side.
        return tokenizer(chunk, padding=True, truncation=True, max_length=512, return_tensors="pt")

    # Same token ids as the C++ tokenizer? (Checked outside the timed part.)
    mismatch = []
    for b, start in enumerate(range(0, len(labels), step)):
        enc = tokenize(labels[start:start + step])
        ref = inputs["label_batches"][b]
        if enc["input_ids"].reshape(-1).tolist() != ref["input_ids"]:
            mismatch.append(b)
    result["label_ids_match"] = not mismatch
    if mismatch:
        note(f"label batches whose token ids differ from the C++ tokenizer's: {mismatch}")

    out = {}
    with torch.inference_mode():
        t0 = time.perf_counter()
        pooled(model.get_image_features(pixel_values=pixels1))
        result["first_image_s"] = time.perf_counter() - t0
        result["load_to_first_image_s"] = time.perf_counter() - t_load
        note(f"loaded in {result['load_s']:.3f} s, first image in {result['first_image_s']:.3f} s")

        def image8():
            out["image"] = pooled(model.get_image_features(pixel_values=pixels8))

        def text16():
            out["caption"] = pooled(model.get_text_features(input_ids=caption, attention_mask=caption_mask))

        def label_run():
            # As examples/zero_shot.cpp: tokenize + embed, 64 texts at a time.
            for start in range(0, len(labels), step):
                feats = pooled(model.get_text_features(**tokenize(labels[start:start + step])))
                if start == 0:
                    out["labels"] = feats

        if args.accuracy_only:
            image8(), text16()
            out["labels"] = pooled(model.get_text_features(**tokenize(labels[:step])))
        else:
            result["image_b1_s"] = time_runs("image b1", args.warmup, args.repeat,
                                             lambda: model.get_image_features(pixel_values=pixels1))
            if args.batch_repeat > 0:  # 0 skips the batch of 8
                result["image_b8_s"] = time_runs("image b8", 0, args.batch_repeat, image8)
                result["image_b8_images_per_s"] = shape[0] / result["image_b8_s"]["median"]
            result["text16_s"] = time_runs("text 16 tokens", args.warmup, args.text_repeat, text16)
            if labels:  # --labels 0 skips the label run
                result["labels_s"] = time_runs(f"{len(labels)} labels", 0, args.label_repeat, label_run)
                result["labels_count"] = len(labels)
                result["labels_per_s"] = len(labels) / result["labels_s"]["median"]
    result["memory"] = memory()

    if args.embeddings:
        with open(args.embeddings, "w") as f:
            json.dump({k: v.float().tolist() for k, v in out.items()}, f)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
