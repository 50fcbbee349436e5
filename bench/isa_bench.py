#!/usr/bin/env python3
"""Kernels chosen at run time, measured: a consumer build (no -march flag) against the
project's -march=native build, each kernel level this CPU has (ALTCLIP_MAX_ISA), and the
alternatives a user would pick instead, PyTorch float32 and bfloat16 (model.to(torch.bfloat16))
and OpenVINO (bench/bench_openvino.py: its default precision for this CPU, and float32), all in
one run, alternating in rounds.

    python3 bench/isa_bench.py                 # 3 rounds; writes bench/isa_results.json, prints a table
    python3 bench/isa_bench.py --rounds 1 --repeat 1 --text-repeat 3   # a quick check

Times one image at batch 1 and one 16-token caption (bench/bench.cpp, bench/bench_torch.py, the
same inputs), medians of the samples pooled over rounds. The CPU, its instruction sets and
the level each altclip run took are printed with the table; so are this CPU's measured
peaks (bench/gemm_bench.cpp, the native build).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import make_bench_model  # noqa: E402

MD_HEAD = """# Kernels chosen at run time, measured

Date: {date} UTC. Reproduce: `python3 bench/isa_bench.py --rounds {rounds}` (from the repository root).

One ViT-L/14 image at batch 1 and one 16-token caption, random weights in the real BAAI/AltCLIP
shapes (bench/make_bench_model.py), medians of {rounds} alternating rounds x {repeat} image runs and
{text_repeat} caption runs per side. "consumer" is altclip_bench built with no -march flag (how a
program linking altclip::altclip is built), "native" with -march=native; "@level" caps the
kernels with ALTCLIP_MAX_ISA. PyTorch 2.13 runs float32, bfloat16 (model.to(torch.bfloat16)),
float32 capped to AVX2 (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2),
and on a CPU with AMX bfloat16 without it (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16: what a CPU with
AVX-512 and no AMX runs, set beside altclip capped to avx512_bf16); OpenVINO
(`pip install openvino`, the same checkpoint converted once with `openvino.convert_model`) at its
default precision for this CPU and at f32 (INFERENCE_PRECISION_HINT). The peaks are
this CPU's, measured in the same run by bench/gemm_bench.cpp (FLOP/s, int8 OP/s, bytes/s; `onednn_*`:
what oneDNN's own matmul reaches on a 2048 x 1024 x 4096 product, its AMX kernels on an AMX CPU).

"""

BUILDS = {"native": ("build-bench", "ON"), "consumer": ("build-bench-consumer", "OFF")}


def log(msg: str) -> None:
    print(f"[isa_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def image_gflop(spec: dict) -> float:
    """Multiply-adds x 2 of one image through the vision tower (patch embedding, every layer's
    products and attention; the norms and activations are left out), in GFLOP."""
    v = spec["vision"]
    d, ff, layers = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    patches = (v["image_size"] // v["patch_size"]) ** 2
    t = patches + 1
    per_layer = 2 * t * d * 4 * d + 2 * 2 * t * d * ff + 2 * 2 * t * t * d
    embed = 2 * patches * v["num_channels"] * v["patch_size"] ** 2 * d
    return (embed + layers * per_layer + 2 * d * spec["projection_dim"]) / 1e9


def peak_of(side: str, isa: str, amx: bool = False, widened: bool = False) -> str:
    """The same-run peak a side's image products run against: bf16 dot products for bf16 at
    AVX512_BF16 (and PyTorch/OpenVINO bf16), int8 for q8's VNNI vision tower, else f32 FMA. On
    a CPU with AMX, the bf16 and int8 products of altclip (at the amx level), PyTorch bf16 and
    OpenVINO bf16 all go through oneDNN's AMX matmul: their peak is what that matmul reaches
    on a large product (gemm_bench's peak_onednn_*). `widened`: the side's altclip said it
    widens bf16 weights to float32 at avx512_bf16 (an Intel CPU: CpuInfo::bf16_dot_pays)."""
    if side.startswith("altclip"):
        if isa == "amx" and " bf16 " in side:
            return "peak_onednn_bf16_flops"
        if isa == "amx" and " q8 " in side:
            return "peak_onednn_i8_ops"
        if " bf16 " in side and isa == "avx512_bf16" and not widened:
            return "peak_bf16_flops"
        if " q8 " in side and isa in ("avx512_vnni", "avx512_bf16", "amx"):
            return "peak_i8_ops"
        return "peak_f32_flops"
    bf16 = "bfloat16" in side or "bf16" in isa
    if bf16 and amx and "AVX512_CORE_BF16" not in isa:  # (not where oneDNN is capped below AMX)
        return "peak_onednn_bf16_flops"
    return "peak_bf16_flops" if bf16 else "peak_f32_flops"


def build(jobs: int) -> None:
    for name, (folder, native) in BUILDS.items():
        log(f"building altclip_bench ({name}: Release, ALTCLIP_NATIVE={native}) in {folder}")
        subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, folder), "-DCMAKE_BUILD_TYPE=Release",
                        "-DALTCLIP_BUILD_BENCH=ON", "-DALTCLIP_BUILD_TESTS=OFF", "-DALTCLIP_BUILD_EXAMPLES=OFF",
                        f"-DALTCLIP_NATIVE={native}"], check=True, stdout=subprocess.DEVNULL)
        targets = ["altclip_bench"] + (["altclip_gemm_bench"] if name == "native" else [])
        subprocess.run(["cmake", "--build", os.path.join(ROOT, folder), "--target", *targets, "-j", str(jobs)],
                       check=True, stdout=subprocess.DEVNULL)


def binary(build_name: str, prog: str = "altclip_bench") -> str:
    return os.path.join(ROOT, BUILDS[build_name][0], "bench", prog)


def run_json(cmd: list, env_extra: dict, what: str) -> dict:
    env = dict(os.environ, **env_extra)
    log(f"{what}: {' '.join(cmd[:2])} ...")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, env=env, text=True).stdout
    return json.loads(out)


def render(result: dict, a) -> None:
    """Prints the table (and writes it as Markdown) from a result as isa_results.json holds it."""
    cpu, med = result["cpu"], result["sides"]
    lines = []

    def out(*parts) -> None:
        lines.append(" ".join(str(p) for p in parts))

    out(f"CPU: {cpu}; {a.threads} threads; {a.rounds} rounds, medians")
    gflop = image_gflop(make_bench_model.SPEC)
    out("| side | kernels | one image | 16-token text | image vs PyTorch f32 | vs PyTorch bf16 | image GFLOP/s (share of peak) |")
    out("|---|---|---:|---:|---:|---:|---:|")
    t32 = med.get("pytorch float32", {}).get("image_s")
    t16 = med.get("pytorch bfloat16", {}).get("image_s")
    for n, m in med.items():
        r32 = f"{t32 / m['image_s']:.2f}x" if t32 else ""
        r16 = f"{t16 / m['image_s']:.2f}x" if t16 else ""
        rate = gflop / m["image_s"]
        peak_name = peak_of(n, m["isa"], "amx" in cpu, m.get("widened", False))
        peak = result["peaks"].get(peak_name)
        share = f"{rate:.0f} ({100 * rate * 1e9 / peak:.0f}% of {peak_name.replace('peak_', '')})" if peak else f"{rate:.0f}"
        m["image_gflops"] = rate
        out(f"| {n} | {m['isa']} | {m['image_s'] * 1e3:.0f} ms | {m['text_s'] * 1e3:.1f} ms | {r32} | {r16} | {share} |")
    out()
    # AVX2 on both sides: altclip capped to it, or at its best where that is AVX2.
    ours = "altclip f32 consumer @avx2" if "altclip f32 consumer @avx2" in med else (
        "altclip f32 consumer" if med.get("altclip f32 consumer", {}).get("isa") == "avx2" else None)
    if "pytorch float32 @avx2" in med and ours:
        out(f"avx2 on both sides: PyTorch f32 / altclip f32 image "
            f"{med['pytorch float32 @avx2']['image_s'] / med[ours]['image_s']:.2f}x")
    # AVX-512 without AMX on both sides, where this CPU has AMX (issue 13's targets for such a CPU:
    # f32 at least 1.3x PyTorch f32, bf16 and q8 faster than PyTorch bf16).
    if "pytorch bfloat16 @avx512_bf16" in med:
        t = med["pytorch bfloat16 @avx512_bf16"]["image_s"]
        f32 = med.get("altclip f32 consumer @avx512")
        parts = [f"altclip f32 @avx512 {med['pytorch float32']['image_s'] / f32['image_s']:.2f}x PyTorch f32"
                 if f32 and "pytorch float32" in med else None]
        for dtype in ("bf16", "q8"):
            m = med.get(f"altclip {dtype} consumer @avx512_bf16")
            if m:
                parts.append(f"altclip {dtype} @avx512_bf16 {t / m['image_s']:.2f}x PyTorch bf16 @avx512_bf16")
        out("without AMX on both sides (image, above 1: altclip faster): " + ", ".join(p for p in parts if p))
    # No file type slower than f32 at the same kernel level (issue 13): f32 time / its time.
    for n, m in med.items():
        for dtype in ("bf16", "q8"):
            if n.startswith(f"altclip {dtype} consumer"):
                f32 = med.get(n.replace(dtype, "f32", 1))
                if f32 is None and m["isa"] == "avx2":
                    f32 = med.get("altclip f32 consumer @avx2", med.get("altclip f32 consumer"))
                if f32 is not None and f32["isa"] == m["isa"]:
                    out(f"{n} against f32 at {m['isa']}: image {f32['image_s'] / m['image_s']:.2f}x, "
                        f"text {f32['text_s'] / m['text_s']:.2f}x (above 1: faster than f32)")
    for dtype in ["f32", "bf16", "q8"]:
        if f"altclip {dtype} consumer" not in med or f"altclip {dtype} native" not in med:
            continue  # left out by --only
        c, nat = med[f"altclip {dtype} consumer"], med[f"altclip {dtype} native"]
        out(f"{dtype}: consumer build / native build: image {c['image_s'] / nat['image_s']:.3f}, "
              f"text {c['text_s'] / nat['text_s']:.3f}")
    b8 = {n: m["image_b8_s"] for n, m in med.items() if "image_b8_s" in m}
    if b8:
        out()
        out("batch of 8 images (seconds per batch, medians; images/s):",
            ", ".join(f"{n} {t:.2f} s ({8 / t:.1f}/s)" for n, t in b8.items()))
        ov = b8.get("openvino default")
        for n in ("altclip bf16 consumer", "altclip q8 consumer"):
            if ov and n in b8:
                out(f"batch-8 throughput, {n} vs OpenVINO default: {ov / b8[n]:.2f}x")
    spread = [f"{n} {m['image_min_s'] * 1e3:.0f}-{m['image_max_s'] * 1e3:.0f}" for n, m in med.items()
              if "image_min_s" in m]
    if spread:
        out()
        out("one image, fastest-slowest sample (ms):", ", ".join(spread))
    out("peaks:", json.dumps(result["peaks"]))
    report = "\n".join(lines)
    print(report)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(MD_HEAD.format(date=result["date"], rounds=a.rounds, repeat=a.repeat, text_repeat=a.text_repeat)
                    + report + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="batch-1 image runs per round and side")
    ap.add_argument("--text-repeat", type=int, default=10, help="16-token caption runs per round and side")
    ap.add_argument("--batch-repeat", type=int, default=1,
                    help="batch-8 image runs per round for the main sides (altclip consumer at the best level, "
                         "PyTorch f32/bf16, OpenVINO default); 0 for none")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--output", default=os.path.join(HERE, "isa_results.json"))
    ap.add_argument("--markdown", default=os.path.join(HERE, "ISA_RESULTS.md"), help="the report as Markdown ('' for none)")
    ap.add_argument("--render", action="store_true", help="only make the table again from --output's results")
    ap.add_argument("--only", default="", help="run only the sides whose name matches this regular expression "
                                               "(e.g. 'altclip (bf16|q8) consumer$|pytorch bfloat16|openvino default')")
    a = ap.parse_args(argv)
    if a.render:
        with open(a.output) as f:
            result = json.load(f)
        a.rounds, a.threads = result["rounds"], result["threads"]
        a.repeat, a.text_repeat = result.get("repeat", a.repeat), result.get("text_repeat", a.text_repeat)
        render(result, a)
        return 0

    if not a.no_build:
        build(max(1, os.cpu_count() or 1))
    model = make_bench_model.ensure(dtypes=["f32", "bf16", "q8"])
    probe = run_json([binary("consumer"), "--model", model["files"]["f32"], "--accuracy-only", "--labels", "0"], {},
                     "probe")
    cpu, best = probe["cpu"], probe["isa"]
    levels = ["portable", "avx2", "avx512", "avx512_vnni", "avx512_bf16"]
    order = ["portable", "avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx"]
    here = [lv for lv in levels if order.index(lv) <= order.index(best)]
    inputs = os.path.join(HERE, ".cache", "isa-inputs")
    os.makedirs(inputs, exist_ok=True)
    run_json([binary("consumer"), "--model", model["files"]["f32"], "--accuracy-only", "--labels", "64",
              "--write-inputs", inputs], {}, "inputs")

    # Sides: (name, command, env)
    common = ["--threads", str(a.threads), "--repeat", str(a.repeat), "--text-repeat", str(a.text_repeat),
              "--batch-repeat", "0", "--labels", "0", "--warmup", "1"]
    sides = []
    for dtype in ["f32", "bf16", "q8"]:
        for b in ["consumer", "native"]:
            sides.append((f"altclip {dtype} {b}", [binary(b), "--model", model["files"][dtype], *common], {}))
        for lv in here:
            if lv == best:
                continue
            if dtype == "f32" and lv not in ("portable", "avx2", "avx512"):
                continue  # f32 runs the same kernels from avx512 on
            if dtype != "f32" and lv in ("portable", "avx512"):
                continue  # widened weights: what avx2 (and f32 at these levels) already shows
            sides.append((f"altclip {dtype} consumer @{lv}", [binary("consumer"), "--model", model["files"][dtype],
                                                               *common], {"ALTCLIP_MAX_ISA": lv}))
    if not a.no_torch:
        # PyTorch as installed, and capped to AVX2 the way altclip's avx2 level is (aten's kernels
        # and oneDNN's JIT both), for a same-instruction-set comparison.
        # MKL too: PyTorch's float32 Linear is MKL's sgemm, which ignores the other two (on an Intel CPU
        # it ran AVX-512 under them).
        avx2_env = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
        torch_sides = [("float32", {}, ""), ("bfloat16", {}, ""), ("float32", avx2_env, " @avx2")]
        if best == "amx":
            # bfloat16 without AMX (oneDNN's AVX512_BF16 kernels): with altclip capped to
            # avx512_bf16, what this CPU can show of issue 13's targets for AVX-512 without AMX.
            torch_sides.append(("bfloat16", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, " @avx512_bf16"))
        for dt, env, tag in torch_sides:
            sides.append((f"pytorch {dt}{tag}", [sys.executable, os.path.join(HERE, "bench_torch.py"), "--folder",
                                                 model["hub"], "--inputs", inputs, "--threads", str(a.threads),
                                                 "--repeat", str(a.repeat), "--text-repeat", str(a.text_repeat),
                                                 "--batch-repeat", "0", "--labels", "0", "--dtype", dt], env))
    if not a.no_openvino:
        try:
            import openvino  # noqa: F401
        except ImportError:
            log("OpenVINO is not installed (pip install openvino): its sides are left out")
        else:
            # OpenVINO at the precision it picks for this CPU, and held to float32.
            for prec in ["default", "f32"]:
                sides.append((f"openvino {prec}", [sys.executable, os.path.join(HERE, "bench_openvino.py"), "--folder",
                                                   model["hub"], "--inputs", inputs, "--threads", str(a.threads),
                                                   "--repeat", str(a.repeat), "--text-repeat", str(a.text_repeat),
                                                   "--batch-repeat", "0", "--precision", prec], {}))
    # Batch 8 (issue 13: throughput against OpenVINO) for the sides a user would compare.
    batch_sides = {"altclip f32 consumer", "altclip bf16 consumer", "altclip q8 consumer", "pytorch float32",
                   "pytorch bfloat16", "openvino default"}
    sides = [(name, [str(a.batch_repeat) if name in batch_sides and i > 0 and cmd[i - 1] == "--batch-repeat" else c
                     for i, c in enumerate(cmd)], env) for name, cmd, env in sides]
    if a.only:
        sides = [sd for sd in sides if re.search(a.only, sd[0])]
    samples = {name: {"image": [], "text": [], "b8": [], "isa": None} for name, _, _ in sides}
    for r in range(a.rounds):
        seq = sides if r % 2 == 0 else list(reversed(sides))
        for name, cmd, env in seq:
            res = run_json(cmd, env, f"{name} (round {r + 1}/{a.rounds})")
            samples[name]["image"] += res["image_b1_s"]["samples"]
            samples[name]["text"] += res["text16_s"]["samples"]
            if "image_b8_s" in res:
                samples[name]["b8"] += res["image_b8_s"]["samples"]
            samples[name]["isa"] = res.get("isa", env.get("ONEDNN_MAX_CPU_ISA", "oneDNN default"))
            samples[name]["widened"] = "bf16 weights widened" in res.get("cpu", "")
    peaks = run_json([binary("native", "altclip_gemm_bench"), "--threads", str(a.threads), "--json"], {}, "peaks")

    med = {n: {"image_s": statistics.median(s["image"]), "text_s": statistics.median(s["text"]), "isa": s["isa"],
               **({"widened": True} if s.get("widened") else {}),
               "image_samples": len(s["image"]), "image_min_s": min(s["image"]), "image_max_s": max(s["image"]),
               **({"image_b8_s": statistics.median(s["b8"])} if s["b8"] else {})}
           for n, s in samples.items()}
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "threads": a.threads, "rounds": a.rounds,
              "repeat": a.repeat, "text_repeat": a.text_repeat,
              "peaks": {k: v for k, v in peaks.items() if "peak" in k or "bandwidth" in k}, "sides": med}
    with open(a.output, "w") as f:
        json.dump(result, f, indent=2)

    render(result, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
