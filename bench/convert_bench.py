#!/usr/bin/env python3
"""Peak memory and time of tools/convert.py on the real-size model (bench/make_bench_model.py:
random weights, the real BAAI/AltCLIP shapes, 864M parameters, a 3.46 GB model.safetensors).

    python3 bench/convert_bench.py [--dtypes f32,bf16,q8] [--rounds 1] [--weights safetensors|bin]
                                   [--tools DIR] [--json FILE]

Each conversion runs as its own process (`tools/convert.py HUB OUT --dtype D --quiet`); its
peak resident set is that child's ru_maxrss (os.wait4), which counts the pages of the mapped
checkpoint the process holds as well as its own allocations; the time is wall time, fsync of
the output included. The output goes to a temporary file in the cache folder (same disk as
the checkpoint), deleted after each run. The checkpoint is read once before timing, so every
run finds it in the page cache. `--tools DIR` measures another converter (e.g. an older tree
from `git worktree` or `git archive`). `--weights bin` converts the same tensors from a
pytorch_model.bin instead (made once with torch.save, in hub-bin/ next to hub/; BAAI/AltCLIP's
main branch ships only that). The machine may be shared: numbers move with its load.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_bench_model  # noqa: E402


def bin_hub(hub: str) -> str:
    """hub-bin/: the hub folder's small files with the weights as pytorch_model.bin (torch.save of
    the state dict, as transformers 4 wrote it), made once."""
    folder = os.path.join(os.path.dirname(hub), "hub-bin")
    if os.path.exists(os.path.join(folder, "pytorch_model.bin")):
        return folder
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(hub):
        if name != "model.safetensors":
            shutil.copyfile(os.path.join(hub, name), os.path.join(folder, name))
    tmp = os.path.join(folder, "pytorch_model.bin.partial")
    # In a process of its own: this one stays small (see run_once).
    subprocess.run([sys.executable, "-c", "import sys, torch, safetensors.torch as st; "
                    "torch.save(st.load_file(sys.argv[1]), sys.argv[2])", os.path.join(hub, "model.safetensors"), tmp],
                   check=True)
    os.replace(tmp, os.path.join(folder, "pytorch_model.bin"))
    return folder


def warm(folder: str) -> None:
    """Read the checkpoint once, so that every run starts with it in the page cache."""
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass


def run_once(tools: str, hub: str, dtype: str, out_dir: str) -> dict:
    """One conversion in a child process. Its ru_maxrss starts at this process's resident set
    when it forks (Linux keeps the high-water mark across exec), so this process never loads
    anything large itself."""
    fd, out = tempfile.mkstemp(prefix="convert-bench-", suffix=".altclip", dir=out_dir)
    os.close(fd)
    try:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, os.path.join(tools, "convert.py"), hub, out, "--dtype", dtype, "--quiet"])
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"convert_bench: tools/convert.py --dtype {dtype} exited with {p.returncode}")
        return {"dtype": dtype, "seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "output_mb": round(os.path.getsize(out) / 1e6, 1)}
    finally:
        os.remove(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="f32,bf16,q8", help="comma-separated (default f32,bf16,q8)")
    ap.add_argument("--rounds", type=int, default=1, help="conversions per dtype (default 1)")
    ap.add_argument("--tools", default=os.path.join(ROOT, "tools"), help="the tools/ folder holding convert.py")
    ap.add_argument("--weights", choices=("safetensors", "bin"), default="safetensors",
                    help="convert from model.safetensors (default) or pytorch_model.bin")
    ap.add_argument("--cache", default=make_bench_model.DEFAULT_CACHE, help="bench model cache")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    hub = make_bench_model.ensure_hub(args.cache)
    weights = "model.safetensors"
    if args.weights == "bin":
        hub, weights = bin_hub(hub), "pytorch_model.bin"
    size = os.path.getsize(os.path.join(hub, weights))
    warm(hub)
    results = []
    print(f"checkpoint {hub}/{weights}: {size / 1e9:.2f} GB; converter {args.tools}/convert.py")
    print(f"{'dtype':6} {'round':>5} {'wall s':>8} {'peak RSS MB':>12} {'output MB':>10}")
    for dtype in [d for d in args.dtypes.split(",") if d]:
        for i in range(args.rounds):
            r = run_once(args.tools, hub, dtype, args.cache)
            r["round"] = i + 1
            results.append(r)
            print(f"{dtype:6} {i + 1:>5} {r['seconds']:>8.2f} {r['peak_rss_mb']:>12.1f} {r['output_mb']:>10.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": os.path.join(hub, weights), "checkpoint_bytes": size, "tools": args.tools, "cpus": os.cpu_count(),
                       "load_average": os.getloadavg(), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
