#!/usr/bin/env python3
"""Generate the image-processor test images and reference values.

Writes
  tests/data/images/*            small test images of many kinds (deterministic, seed 0),
                                 plus copies of a few public-domain/CC0 photos
  tests/data/image_reference.ref container (tools/altclip_format.py) with, per case,
    "<case>/<config>/pixel_values"  float32 [3, H, W]   from the reference processor
    "<case>/<config>/resized"       uint8   [H, W, 3]   convert_to_rgb + resize only
    "<case>/rgb"                    uint8   [H, W, 3]   PIL Image.open(f).convert("RGB")
    "<case>/alpha"                  uint8   [H, W]      alpha band of convert("RGBA"), when
                                                        transformers' convert_to_rgb composites
    "resize/<name>/input", "resize/<name>/output"  uint8 direct Pillow BICUBIC resizes
  and metadata {"configs": {...}, "cases": [...], "resize_cases": [...]}.

The reference is transformers' CLIPImageProcessor PIL path. In transformers 5.x the class
`CLIPImageProcessor` is the torchvision ("fast") backend; the PIL one is
`CLIPImageProcessorPil` (also reached with AutoImageProcessor.from_pretrained(...,
backend="pil")). In 4.x the slow class was `CLIPImageProcessor` itself.

Run from the repository root:  python tools/make_image_reference.py
Needs numpy, Pillow, transformers (no torch, no network).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from altclip_format import write_container  # noqa: E402

try:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as SlowCLIP
except ImportError:  # transformers 4.x: the slow class is CLIPImageProcessor
    from transformers import CLIPImageProcessor as SlowCLIP
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import ChannelDimension

IMAGES = os.path.join(ROOT, "tests", "data", "images")
OUT = os.path.join(ROOT, "tests", "data", "image_reference.ref")
PHOTOS = "/work/shared/data/images"

# BAAI/AltCLIP's preprocessor_config.json (old style, as on the hub).
ALTCLIP_CONFIG = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}
CONFIGS = {
    "altclip": ALTCLIP_CONFIG,
    # new-style keys, small sizes to keep the data small
    "small": {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 32}},
    # crop larger than the resized image: transformers' center_crop pads with zeros
    "pad": {"size": {"shortest_edge": 24}, "crop_size": {"height": 32, "width": 29}},
    # shortest + longest edge (get_size_with_aspect_ratio), no crop, no normalize
    "longest": {"size": {"shortest_edge": 30, "longest_edge": 45}, "do_center_crop": False,
                "do_normalize": False},
    # exact size, no rescale
    "exact": {"size": {"height": 20, "width": 26}, "do_center_crop": False, "do_rescale": False},
}

rng = np.random.default_rng(0)


def smooth_rgb(h: int, w: int, channels: int = 3) -> np.ndarray:
    """Gradients plus noise plus a few sharp edges: exercises ringing and clamping."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        127 + 120 * np.sin(x / max(w, 1) * 6.0 + c) * np.cos(y / max(h, 1) * 4.0 - c)
        for c in range(channels)
    ], -1)
    base += rng.normal(0, 18, base.shape)
    base[(x.astype(int) // 5 + y.astype(int) // 7) % 4 == 0] = 255  # hard edges
    base[(x.astype(int) * 3 + y.astype(int)) % 11 == 0] = 0
    return np.clip(base, 0, 255).astype(np.uint8)


# ---- raw PNG writer, for what Pillow cannot save (interlaced, 2-bit, 16-bit RGB, tRNS) ----
def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _pack_rows(arr: np.ndarray, bitdepth: int) -> list[bytes]:
    """arr [h, w, c] of ints -> raw scanlines (no filter byte)."""
    h, w, c = arr.shape
    rows = []
    for y in range(h):
        if bitdepth == 16:
            rows.append(arr[y].astype(">u2").tobytes())
        elif bitdepth == 8:
            rows.append(arr[y].astype(np.uint8).tobytes())
        else:
            vals = arr[y].reshape(-1)
            per = 8 // bitdepth
            out = bytearray()
            for i in range(0, len(vals), per):
                byte = 0
                for j in range(per):
                    v = int(vals[i + j]) if i + j < len(vals) else 0
                    byte |= v << (8 - bitdepth * (j + 1))
                out.append(byte)
            rows.append(bytes(out))
    return rows


def write_png(path, arr, bitdepth, colortype, extra=b"", interlace=False):
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, _ = arr.shape
    ihdr = struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, 1 if interlace else 0)
    if not interlace:
        raw = b"".join(b"\0" + r for r in _pack_rows(arr, bitdepth))
    else:  # Adam7
        raw = b""
        for xs, ys, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = arr[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\0" + r for r in _pack_rows(sub, bitdepth))
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra +
            _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def make_images() -> list[dict]:
    """Creates the test images; returns [{name, file, note}] in a fixed order."""
    if os.path.isdir(IMAGES):
        for f in os.listdir(IMAGES):
            if f != "README.md":
                os.remove(os.path.join(IMAGES, f))
    os.makedirs(IMAGES, exist_ok=True)
    cases = []

    def add(name, file, note, save=None):
        if save is not None:
            save(os.path.join(IMAGES, file))
        cases.append({"name": name, "file": file, "note": note})

    # RGB, odd sizes and extreme aspect ratios
    for (w, h) in [(37, 23), (3, 200), (500, 7), (5, 5), (1, 1), (64, 64), (41, 80)]:
        arr = smooth_rgb(h, w)
        add(f"rgb_{w}x{h}", f"rgb_{w}x{h}.png", "RGB PNG", lambda p, a=arr: Image.fromarray(a, "RGB").save(p))
    add("grey_L", "grey_L_41x29.png", "mode L",
        lambda p: Image.fromarray(smooth_rgb(29, 41, 1)[:, :, 0], "L").save(p))
    la = np.dstack([smooth_rgb(27, 33, 1), np.tile(np.linspace(0, 255, 33).astype(np.uint8), (27, 1))])
    add("grey_LA", "grey_LA_33x27.png", "mode LA (grey + alpha)", lambda p: Image.fromarray(la, "LA").save(p))
    rgba = np.dstack([smooth_rgb(31, 29), smooth_rgb(31, 29, 1)])
    rgba[:4, :, 3] = 0
    rgba[4:8, :, 3] = 255
    add("rgba", "rgba_29x31.png", "RGBA PNG, alpha 0..255", lambda p: Image.fromarray(rgba, "RGBA").save(p))
    pal_src = Image.fromarray(smooth_rgb(19, 31), "RGB")
    pal = pal_src.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    add("palette", "palette_31x19.png", "mode P, no transparency", lambda p: pal.save(p))
    pal_t = pal.copy()
    add("palette_trns", "palette_trns_31x19.png", "mode P with tRNS (index 3 transparent, 5 half)",
        lambda p: pal_t.save(p, transparency=bytes([255, 255, 255, 0, 255, 128] + [255] * 10)))
    add("palette_gif", "palette_31x19.gif", "GIF, no transparency", lambda p: pal.save(p))
    add("palette_gif_trns", "palette_trns_31x19.gif", "GIF with transparency index 3",
        lambda p: pal.save(p, transparency=3))
    add("bilevel", "bilevel_1bit_35x21.png", "mode 1 (1-bit PNG)",
        lambda p: Image.fromarray(smooth_rgb(21, 35, 1)[:, :, 0] > 128).save(p))
    g16 = (rng.integers(0, 65536, (17, 23))).astype(np.uint16)
    g16[:5] = rng.integers(0, 300, (5, 23))  # values around 255, where Pillow saturates
    add("grey16", "grey16_23x17.png", "16-bit grey PNG (I;16)", lambda p: write_png(p, g16, 16, 0))
    rgb16 = rng.integers(0, 65536, (19, 21, 3)).astype(np.uint16)
    add("rgb16", "rgb16_21x19.png", "16-bit RGB PNG", lambda p: write_png(p, rgb16, 16, 2))
    rgba16 = rng.integers(0, 65536, (13, 15, 4)).astype(np.uint16)
    add("rgba16", "rgba16_15x13.png", "16-bit RGBA PNG", lambda p: write_png(p, rgba16, 16, 6))
    g2 = rng.integers(0, 4, (11, 13)).astype(np.uint8)
    add("grey2", "grey2bit_13x11.png", "2-bit grey PNG", lambda p: write_png(p, g2, 2, 0))
    gt = smooth_rgb(15, 17, 1)[:, :, 0]
    gt[::3, ::2] = 100
    add("grey_trns", "grey_trns_17x15.png", "8-bit grey PNG with tRNS (grey 100 transparent)",
        lambda p: write_png(p, gt, 8, 0, extra=_chunk(b"tRNS", struct.pack(">H", 100))))
    rt = smooth_rgb(14, 18)
    rt[::2, ::3] = (10, 20, 30)
    add("rgb_trns", "rgb_trns_18x14.png", "RGB PNG with tRNS (10,20,30 transparent)",
        lambda p: write_png(p, rt, 8, 2, extra=_chunk(b"tRNS", struct.pack(">HHH", 10, 20, 30))))
    il = smooth_rgb(27, 35)
    add("interlaced", "interlaced_35x27.png", "Adam7-interlaced RGB PNG", lambda p: write_png(p, il, 8, 2, interlace=True))
    # BMP
    add("bmp24", "rgb_37x23.bmp", "24-bit BMP", lambda p: Image.fromarray(smooth_rgb(23, 37), "RGB").save(p))
    add("bmp8", "palette_31x19.bmp", "8-bit palette BMP", lambda p: pal.save(p))
    add("bmp1", "bilevel_35x21.bmp", "1-bit BMP",
        lambda p: Image.fromarray(smooth_rgb(21, 35, 1)[:, :, 0] > 100).save(p))
    add("bmp32", "rgba_29x31.bmp", "32-bit BMP written from RGBA", lambda p: Image.fromarray(rgba, "RGBA").save(p))
    # JPEG
    add("jpeg_rgb", "rgb_64x48.jpg", "baseline JPEG 4:2:0 q90",
        lambda p: Image.fromarray(smooth_rgb(48, 64), "RGB").save(p, quality=90))
    add("jpeg_grey", "grey_40x30.jpg", "greyscale JPEG",
        lambda p: Image.fromarray(smooth_rgb(30, 40, 1)[:, :, 0], "L").save(p, quality=90))
    add("jpeg_cmyk", "cmyk_32x24.jpg", "CMYK JPEG (Adobe)",
        lambda p: Image.fromarray(smooth_rgb(24, 32, 4), "CMYK").save(p, quality=95))
    # photos (see README.md for attribution)
    for f, note in [("chelsea.png", "photo, RGB"), ("camera.png", "photo, grey L"),
                    ("rocket.jpg", "photo, JPEG"), ("palette_color.png", "scikit-image palette test image")]:
        add("photo_" + f.split(".")[0], f, note, lambda p, f=f: shutil.copyfile(os.path.join(PHOTOS, f), p))
    return cases


def reference_rgb_alpha(im: Image.Image):
    """Image.rgb / Image.alpha as the C++ side defines them."""
    rgb = np.array(im.convert("RGB"))
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    alpha = np.array(im.convert("RGBA"))[:, :, 3] if has_alpha else None
    return rgb, alpha


# Which configs run on which case (the 224 one only on a few: 600 kB each).
ALTCLIP_CASES = {"photo_chelsea", "photo_camera", "photo_rocket", "rgba"}
# A resized image is stored only up to this size (3x200 at shortest edge 224 is 10 MB).
MAX_RESIZED_BYTES = 240_000
# Decoded RGB is stored for the small images; the PNG photos are covered by pixel_values.
MAX_RGB_BYTES = 200_000
FEW_CASES = {"rgb_37x23", "rgb_3x200", "rgb_500x7", "rgb_1x1", "rgba", "palette_trns", "photo_chelsea"}


def configs_for(name: str) -> list[str]:
    out = ["small"]
    if name in ALTCLIP_CASES:
        out.append("altclip")
    if name in FEW_CASES:
        out += ["pad", "longest", "exact"]
    return out


def run_processor(proc, im):
    """pixel_values [3,H,W] and the uint8 resized image [H,W,3] of the reference."""
    pv = proc(images=[im], return_tensors="np")["pixel_values"][0].astype(np.float32)
    rgb = convert_to_rgb(im, return_numpy=True) if proc.do_convert_rgb else np.array(im)
    chw = np.moveaxis(rgb, -1, 0)
    if proc.do_resize:
        chw = proc.resize(chw, size=proc.size, resample=proc.resample)
    return pv, np.ascontiguousarray(np.moveaxis(chw, 0, -1)).astype(np.uint8)


def resize_cases(tensors: dict) -> list[dict]:
    out = []
    specs = [("down_rgb", 37, 23, 3, 16, 11), ("up_rgb", 37, 23, 3, 80, 50), ("x_only_up", 37, 23, 3, 60, 23),
             ("y_only_down", 37, 23, 3, 37, 9), ("big_factor", 151, 103, 3, 7, 5), ("grey_down", 50, 41, 1, 19, 33),
             ("one_pixel_up", 1, 1, 3, 4, 3),
             # Pillow 13 runs the vertical pass first when h shrinks by > 2x the pixels w does
             ("vertical_first", 37, 90, 3, 30, 20), ("vertical_first_w_up", 5, 70, 3, 23, 11),
             ("vertical_first_grey", 40, 97, 1, 33, 9), ("to_one_pixel", 9, 13, 3, 1, 1), ("same_size", 12, 10, 3, 12, 10)]
    for name, w, h, c, ow, oh in specs:
        arr = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        im = Image.fromarray(arr[:, :, 0] if c == 1 else arr, "L" if c == 1 else "RGB")
        res = np.array(im.resize((ow, oh), Image.BICUBIC))
        if c == 1:
            res = res[:, :, None]
        tensors[f"resize/{name}/input"] = arr
        tensors[f"resize/{name}/output"] = np.ascontiguousarray(res)
        out.append({"name": name, "channels": c, "in": [w, h], "out": [ow, oh]})
    return out


def main():
    cases = make_images()
    procs = {k: SlowCLIP.from_dict(dict(v)) for k, v in CONFIGS.items()}
    tensors = {}
    meta_cases = []
    for case in cases:
        path = os.path.join(IMAGES, case["file"])
        with Image.open(path) as im:
            im.load()
            rgb, alpha = reference_rgb_alpha(im)
            if rgb.nbytes <= MAX_RGB_BYTES or case["name"] == "photo_rocket":  # rocket: JPEG decoder check
                tensors[f"{case['name']}/rgb"] = rgb
            if alpha is not None:
                tensors[f"{case['name']}/alpha"] = np.ascontiguousarray(alpha)
            cfgs = configs_for(case["name"])
            for cfg in cfgs:
                pv, resized = run_processor(procs[cfg], im)
                tensors[f"{case['name']}/{cfg}/pixel_values"] = np.ascontiguousarray(pv)
                if resized.nbytes <= MAX_RESIZED_BYTES:
                    tensors[f"{case['name']}/{cfg}/resized"] = resized
            meta_cases.append(dict(case, pil_mode=im.mode, pil_format=im.format,
                                   has_alpha=alpha is not None, configs=cfgs))
    resizes = resize_cases(tensors)
    metadata = {
        "generator": "tools/make_image_reference.py",
        "versions": {"Pillow": Image.__version__, "transformers": __import__("transformers").__version__,
                     "numpy": np.__version__},
        "reference_class": f"{SlowCLIP.__module__}.{SlowCLIP.__name__}",
        "configs": CONFIGS,
        "cases": meta_cases,
        "resize_cases": resizes,
    }
    write_container(OUT, tensors, metadata=metadata)
    total = os.path.getsize(OUT) + sum(os.path.getsize(os.path.join(IMAGES, f)) for f in os.listdir(IMAGES))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes) and {len(cases)} images; total {total} bytes")
    for c in meta_cases:
        print(f"  {c['name']:22s} {c['file']:28s} PIL {c['pil_format']:4s} {c['pil_mode']:5s} alpha={c['has_alpha']}")


if __name__ == "__main__":
    main()
