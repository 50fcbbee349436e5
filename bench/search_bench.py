#!/usr/bin/env python3
"""Image search benchmark: indexing throughput of `image_search index` (whole pipeline:
reading, decoding, preprocessing, the model, SQLite) for each dtype, against the same
pipeline written with transformers on PyTorch (a DataLoader over the files with the
processor, batches through get_image_features), in the same run; and the time of
`image_search query` over 100,000 and 1,000,000 stored vectors (synthetic unit vectors
added to a real index), the text embedding included.

    python3 bench/search_bench.py                        # real-size model (bench/make_bench_model.py), ~15+ min
    python3 bench/search_bench.py --images 32 --vectors 100000 --dtypes f32
    python3 bench/search_bench.py --smoke                # the tiny test model, a few seconds: checks the script runs

Writes bench/search_results.json (bench/.cache/search_results-smoke.json with --smoke) and
prints a Markdown table. Needs what `scripts/setup.sh --dev` installs; the image_search
program is built in --build (default build-search-bench/, Release, no -march flag: the
kernels are chosen at run time, as in a consumer's build). The query is timed with each
dtype's model over the same stored vectors.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".cache")


def log(msg: str) -> None:
    print(f"[search_bench] {msg}", file=sys.stderr, flush=True)


def build(build_dir: str, jobs: int) -> str:
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, f"-j{jobs}", "--target", "image_search"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(build_dir, "examples", "image_search")


def make_photos(folder: str, n: int) -> list:
    """n photo-sized JPEGs (1024x768 crops and flips of the real test photos, quality 90), made once."""
    from PIL import Image, ImageOps

    os.makedirs(folder, exist_ok=True)
    sources = [os.path.join(ROOT, "tests", "data", "images", f) for f in ("chelsea.png", "rocket.jpg", "camera.png")]
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"photo_{i:05d}.jpg")
        paths.append(p)
        if os.path.exists(p):
            continue
        img = Image.open(sources[i % len(sources)]).convert("RGB")
        scale = 1.0 + 0.1 * (i % 7)
        img = img.resize((int(1024 * scale), int(1024 * scale * img.height / img.width)), Image.BICUBIC)
        left, top = (i * 37) % max(1, img.width - 1024 + 1), (i * 53) % max(1, img.height - 768 + 1)
        img = img.crop((left, top, left + 1024, top + 768))
        if i % 2:
            img = ImageOps.mirror(img)
        img.save(p, quality=90)
    return paths


def run_index(exe: str, model: str, photos: str, db: str, threads: int, batch: int) -> dict:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    t0 = time.perf_counter()
    p = subprocess.run([exe, "index", "--model", model, "--db", db, photos, "--threads", str(threads),
                        "--batch", str(batch)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"image_search index failed: {p.stderr}")
    m = re.search(r"added (\d+).*\(([\d.]+) images/s\)", p.stdout)
    return {"wall_s": wall, "images": int(m.group(1)), "images_per_s_wall": int(m.group(1)) / wall,
            "images_per_s": float(m.group(2))}


TORCH_LOOP = r'''
import sys, time, torch
from PIL import Image
from transformers import AltCLIPModel, AltCLIPProcessor
folder, threads, batch, paths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
torch.set_num_threads(threads)
processor = AltCLIPProcessor.from_pretrained(folder)
model = AltCLIPModel.from_pretrained(folder, torch_dtype=torch.float32).eval()

class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(paths)
    def __getitem__(self, i):
        with Image.open(paths[i]) as im:
            return processor(images=im.convert("RGB"), return_tensors="pt")["pixel_values"][0]

# One worker process decodes and preprocesses the next batches while the model runs (as
# image_search's decoding thread does).
loader = torch.utils.data.DataLoader(Files(), batch_size=batch, num_workers=1, prefetch_factor=2)
t0 = time.perf_counter()
n = 0
with torch.inference_mode():
    for pixels in loader:
        feats = model.get_image_features(pixel_values=pixels)
        if not torch.is_tensor(feats):
            feats = feats.pooler_output if getattr(feats, "pooler_output", None) is not None else feats[0]
        feats = feats / feats.norm(dim=-1, keepdim=True)
        n += feats.shape[0]
print(n / (time.perf_counter() - t0))
'''


def run_torch(hub: str, paths: list, threads: int, batch: int) -> dict:
    p = subprocess.run([sys.executable, "-c", TORCH_LOOP, hub, str(threads), str(batch)] + paths,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"PyTorch loop failed: {p.stderr[-2000:]}")
    return {"images_per_s": float(p.stdout.strip().splitlines()[-1])}


def synthetic_index(exe: str, model: str, photo: str, db: str, n: int, work: str) -> None:
    """A real index of one photo (meta from the model), then n - 1 random unit vectors."""
    import numpy as np

    if os.path.exists(db):
        con = sqlite3.connect(db)
        have = con.execute("SELECT count(*) FROM images").fetchone()[0]
        con.close()
        if have == n:
            # Another run over the one-photo folder: it brings an index made by an older
            # build up to date (the generation counter its scan threads check).
            subprocess.run([exe, "index", "--model", model, "--db", db, os.path.join(work, "one")], check=True,
                           stdout=subprocess.DEVNULL)
            return
        os.remove(db)
    one = os.path.join(work, "one")
    shutil.rmtree(one, ignore_errors=True)
    os.makedirs(one)
    shutil.copy(photo, one)
    subprocess.run([exe, "index", "--model", model, "--db", db, one], check=True, stdout=subprocess.DEVNULL)
    con = sqlite3.connect(db)
    dim = int(con.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()[0])
    rng = np.random.default_rng(0)
    done = 1
    while done < n:
        k = min(20000, n - done)
        v = rng.standard_normal((k, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        rows = [(f"/synthetic/{done + i:07d}.jpg".encode(), 100000, 0, int(rng.integers(-2**62, 2**62)), v[i].tobytes())
                for i in range(k)]
        con.executemany("INSERT INTO images (path, size, mtime_ns, hash, embedding) VALUES (?, ?, ?, ?, ?)", rows)
        con.commit()
        done += k
    con.close()
    # Another run over the same folder packs the new rows into the scan blocks (and keeps
    # them: they are not under the folder it walks).
    subprocess.run([exe, "index", "--model", model, "--db", db, one], check=True, stdout=subprocess.DEVNULL)
    log(f"made {db}: {n} vectors of {dim}")


def retarget_index(exe: str, model: str, photo: str, src: str, dst: str, work: str) -> None:
    """A copy of the index src whose meta names `model` (read from a one-photo index it makes)."""
    one = os.path.join(work, "one")
    shutil.rmtree(one, ignore_errors=True)
    os.makedirs(one)
    shutil.copy(photo, one)
    probe = os.path.join(work, "probe.db")
    for f in (probe, probe + "-wal", probe + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    subprocess.run([exe, "index", "--model", model, "--db", probe, one], check=True, stdout=subprocess.DEVNULL)
    con = sqlite3.connect(probe)
    meta = con.execute("SELECT key, value FROM meta").fetchall()
    con.close()
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    con.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in meta])
    con.commit()
    con.close()


def drop_page_cache(path: str) -> None:
    """Asks the OS to drop path's clean pages from the page cache (nothing if it has no such call)."""
    if os.path.exists(path) and hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_query(exe: str, model: str, db: str, threads: int, repeat: int) -> dict:
    """Medians of `repeat` runs after a first one that reads the model and the index from disk.

    Files just written (the model by the converter, the index by SQLite) sit in the page cache
    in small folios, which each process maps 4 KB at a time; read back from disk, as after a
    reboot or by the first query after convert.py dropped them, they come in large folios
    (2 MB for the model, whose loader asks for them). The timed runs measure that steady
    state, as a user's queries see it; the first run is reported as first_run_s.
    """
    for f in (model, db, db + "-wal"):
        drop_page_cache(f)
    walls, parts = [], []
    t0 = time.perf_counter()
    subprocess.run([exe, "query", "--db", db, "--model", model, "a photo", "--threads", str(threads)],
                   check=True, stdout=subprocess.DEVNULL)
    first = time.perf_counter() - t0
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([exe, "query", "--db", db, "--model", model, "a photo of a cat", "--top-k", "10",
                            "--threads", str(threads), "--timings"], capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"image_search query failed: {p.stderr}")
        m = re.search(r"open\+model load ([\d.]+) ms, query embedding ([\d.]+) ms, read and score (\d+) vectors ([\d.]+) ms "
                      r"on (\d+) threads?, exact top k of (\d+) candidates ([\d.]+) ms", p.stderr)
        parts.append({"load_ms": float(m.group(1)), "embed_ms": float(m.group(2)), "scan_ms": float(m.group(4)),
                      "scan_threads": int(m.group(5)), "candidates": int(m.group(6)), "top_k_ms": float(m.group(7))})
    med = {k: statistics.median(x[k] for x in parts) for k in parts[0]}
    return {"wall_s": statistics.median(walls), "samples_s": walls, "first_run_s": first, **med}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64, help="photos to index per dtype (default 64)")
    ap.add_argument("--dtypes", default="f32,bf16,q8")
    ap.add_argument("--vectors", default="100000,1000000", help="index sizes for the query timing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="query runs per size (median)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-search-bench"))
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="the tiny test model, 8 images, 2000 vectors: checks the script")
    a = ap.parse_args()

    exe = build(a.build, a.jobs)
    if a.smoke:
        models = {d: os.path.join(ROOT, "tests", "data", "models", "tiny" + ("" if d == "f32" else "-" + d) + ".altclip")
                  for d in a.dtypes.split(",")}
        hub = os.path.join(ROOT, "tests", "data", "hub", "tiny-altclip")
        a.images, sizes, work = 8, [2000], os.path.join(CACHE, "search-smoke")
    else:
        sys.path.insert(0, HERE)
        import make_bench_model

        got = make_bench_model.ensure(dtypes=a.dtypes.split(","))
        models, hub = got["files"], got["hub"]
        sizes, work = [int(x) for x in a.vectors.split(",") if x], os.path.join(CACHE, "search")
    os.makedirs(work, exist_ok=True)
    photos = os.path.join(work, "photos")
    paths = make_photos(photos, a.images)
    shutil.rmtree(photos + "-extra", ignore_errors=True)
    for extra in os.listdir(photos):  # only the first --images photos
        if os.path.join(photos, extra) not in paths:
            os.remove(os.path.join(photos, extra))

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    results = {"cpu": cpu, "images": a.images, "threads": a.threads, "batch": a.batch, "index": {}, "query": {}}
    if not a.no_torch:
        log(f"PyTorch loop over {a.images} photos ...")
        results["index"]["torch_f32"] = run_torch(hub, paths, a.threads, a.batch)
    for d, model in models.items():
        log(f"image_search index, {d}, {a.images} photos ...")
        results["index"][d] = run_index(exe, model, photos, os.path.join(work, f"index-{d}.db"), a.threads, a.batch)
    base_model = models.get("f32", next(iter(models.values())))
    for n in sizes:
        db = os.path.join(work, f"synthetic-{n}.db")
        synthetic_index(exe, base_model, paths[0], db, n, work)
        # The same vectors queried with each dtype's model (the text embedding is what
        # differs): a copy of the index whose meta names that model.
        per_dtype = {}
        for d, model in models.items():
            ddb = db if model == base_model else os.path.join(work, f"synthetic-{n}-{d}.db")
            if ddb != db:
                retarget_index(exe, model, paths[0], db, ddb, work)
            log(f"image_search query over {n} vectors, {d} model ...")
            per_dtype[d] = run_query(exe, model, ddb, a.threads, a.repeat)
            if ddb != db:
                os.remove(ddb)
        results["query"][str(n)] = per_dtype

    out = os.path.join(CACHE, "search_results-smoke.json") if a.smoke else os.path.join(HERE, "search_results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"CPU: {cpu}")
    print(f"| indexing ({a.images} photos 1024x768, batch {a.batch}, {a.threads} threads) | images/s |")
    print("|---|---:|")
    for k, v in results["index"].items():
        print(f"| {k} | {v['images_per_s']:.2f} |")
    print("\n| query (top 10, text) | model | wall | model load | text embedding | read + score vectors | top k | "
          "first run (files read from disk) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for n, per in results["query"].items():
        for d, v in per.items():
            print(f"| {int(n):,} vectors | {d} | {v['wall_s'] * 1000:.0f} ms | {v['load_ms']:.0f} ms | {v['embed_ms']:.0f} ms | "
                  f"{v['scan_ms']:.0f} ms ({v['scan_threads']} threads) | {v['top_k_ms']:.0f} ms | "
                  f"{v['first_run_s'] * 1000:.0f} ms |")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
