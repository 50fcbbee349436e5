"""Timing shared by the Python sides of the benchmarks (bench_torch.py, bench_openvino.py)."""
from __future__ import annotations

import statistics
import sys
import time


def time_runs(tag: str, what: str, warmup: int, repeat: int, fn) -> dict:
    """Runs fn warmup times, then repeat times timed; notes each run on stderr as [tag]."""
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        print(f"[{tag}] {what} warm-up {i + 1}/{warmup}: {time.perf_counter() - t0:.3f} s", file=sys.stderr, flush=True)
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        print(f"[{tag}] {what} run {i + 1}/{repeat}: {samples[-1]:.3f} s", file=sys.stderr, flush=True)
    return {"median": statistics.median(samples), "min": min(samples), "samples": samples}
