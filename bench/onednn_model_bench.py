#!/usr/bin/env python3
"""The whole model with its bf16/q8 products through oneDNN (ALTCLIP_ONEDNN=1) against
altclip's own kernels (ALTCLIP_ONEDNN=0): one image at batch 1, a 16-token caption, load time
and peak memory, in alternating rounds of the same altclip_bench binary. Prints a Markdown
table of medians (bench/ONEDNN_RESULTS.md quotes it).

    python3 bench/onednn_model_bench.py --bench build/bench/altclip_bench \
        --models bench/.cache/altclip-large --rounds 3 [--threads 2] [--dtypes bf16,q8] \
        [--also 'LABEL=FILE' ...]   # more files through oneDNN in the same rounds

Needs a build configured with -DALTCLIP_BUILD_BENCH=ON that found oneDNN, and the real-size
random models of bench/make_bench_model.py (altclip-large-{bf16,q8}.altclip).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(bench, model, threads, onednn, extra_env):
    env = dict(os.environ, ALTCLIP_ONEDNN="1" if onednn else "0", **extra_env)
    cmd = [bench, "--model", model, "--threads", str(threads), "--repeat", "3", "--warmup", "1",
           "--batch-repeat", "0", "--text-repeat", "10", "--labels", "0"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/altclip_bench")
    ap.add_argument("--models", default="bench/.cache/altclip-large")
    ap.add_argument("--dtypes", default="bf16,q8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--omp-wait-policy", default="", help="OMP_WAIT_POLICY for both sides (e.g. passive)")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=FILE",
                    help="another model file run through oneDNN in the same rounds (e.g. "
                         "'bf16 v2=bench/.cache/v2/altclip-large-bf16.altclip', a file of the previous format)")
    a = ap.parse_args()
    extra = {"OMP_WAIT_POLICY": a.omp_wait_policy} if a.omp_wait_policy else {}
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"CPU: {cpu}; {a.threads} threads; {a.rounds} alternating rounds, medians"
          + (f"; OMP_WAIT_POLICY={a.omp_wait_policy}" if a.omp_wait_policy else ""))
    engines = []
    print("| file | products | load s | first image s | image b1 ms | text16 ms | peak RSS MB | file MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    # Every side in every round, the order reversed each round.
    sides = [(dt, os.path.join(a.models, f"altclip-large-{dt}.altclip"), onednn)
             for dt in a.dtypes.split(",") for onednn in (False, True)]
    for spec in a.also:
        label, path = spec.split("=", 1)
        sides.append((label, path, True))
    for sides in [sides]:
        res = {i: [] for i in range(len(sides))}
        for r in range(a.rounds):
            order = list(range(len(sides))) if r % 2 == 0 else list(reversed(range(len(sides))))
            for i in order:
                label, model, onednn = sides[i]
                res[i].append(run(a.bench, model, a.threads, onednn, extra))
                print(f"  {label} round {r} {'oneDNN' if onednn else 'altclip'}: "
                      f"{json.dumps({k: v for k, v in res[i][-1].items() if not isinstance(v, (list, dict))})}",
                      file=sys.stderr)
        for i, (label, model, onednn) in enumerate(sides):
            rs = res[i]
            def med(k):
                return statistics.median(x[k]["median"] if isinstance(x[k], dict) else x[k] for x in rs)
            rss = max(x["memory"]["ru_maxrss_bytes"] for x in rs) / 1e6
            print(f"| {label} | {'oneDNN' if onednn else 'altclip kernels'} | {med('load_s'):.2f} | "
                  f"{med('first_image_s'):.2f} | {med('image_b1_s') * 1e3:.0f} | {med('text16_s') * 1e3:.1f} | "
                  f"{rss:.0f} | {os.path.getsize(model) / 1e6:.0f} |")
            engines.append(f"{label} {'oneDNN' if onednn else 'altclip'}: {rs[-1].get('matmul_engine', '?')}")
    print()
    for e in engines:
        print(f"- {e}")


if __name__ == "__main__":
    main()
