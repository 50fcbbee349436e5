#!/usr/bin/env python3
"""Convert a Hugging Face AltCLIP checkpoint (BAAI/AltCLIP and siblings) to the altclip
model file (docs/format.md). Usage and checks: docs/converter.md.

    tools/convert.py INPUT OUTPUT [--dtype f32|f16|bf16|q8] [--revision REV] [--quiet]

Needs only numpy and the standard library (huggingface_hub, if installed, for hub ids).
It never imports torch and never executes code from a pickle: `pytorch_model.bin` is read
with a restricted unpickler that only knows how to rebuild tensors.

This file is the command line; the work is done by the modules of tools/altclip_convert/
(config, schema, readers, encoder, writer: see its __init__). Their public names are
importable from here too (put tools/ on sys.path, then `import convert`):

    convert(input, output, dtype="f32", progress=None, revision=None) -> dict  (the header's metadata)
    resolve_input(input, revision=None) -> str            (a local folder)
    resolve_config(hf_config: dict) -> dict
    expected_tensors(config) -> dict[str, tuple]; stored_tensors(config, dtype) -> list[Stored]
    canonical_name(key) -> str / canonicalize(state) -> dict   (layer/layers spellings)
    check_tensors(state, config) -> dict[str, tuple]        (raises ConvertError listing problems)
    read_safetensors(path) / read_torch_bin(path) / load_checkpoint(folder) -> dict[str, np.ndarray]
    open_safetensors(path) / open_torch_bin(path) / open_checkpoint(folder) -> dict[str, LazyTensor]

The read_* arrays are read-only views of memory-mapped files where possible; bf16 sources are
widened to float32. The readers return keys as stored; convert() renames them with
canonicalize() to the released checkpoint's spelling before checking them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from altclip_convert import ConvertError  # noqa: E402,F401
from altclip_convert.checkpoint import (  # noqa: E402,F401
    canonicalize, check_tensors, find_weights, load_checkpoint, open_checkpoint, read_small_files, resolve_input)
from altclip_convert.config import TEXT_DEFAULTS, VISION_DEFAULTS, resolve_config  # noqa: E402,F401
from altclip_convert.encode import quantize_q8  # noqa: E402,F401
from altclip_convert.safetensors_file import open_safetensors, read_safetensors  # noqa: E402,F401
from altclip_convert.schema import (  # noqa: E402,F401
    DTYPES, Q8_SCALE_SUFFIX, canonical_name, expected_tensors, is_ignored_key, is_q8_matrix, is_reduced,
    model_tensors, stored_tensors)
from altclip_convert.torch_file import (  # noqa: E402,F401
    TORCH_LEGACY_MAGIC, TORCH_LEGACY_PROTOCOL, open_torch_bin, read_torch_bin)
from altclip_convert.writer import CONVERTER_VERSION, convert  # noqa: E402,F401

# --------------------------------------------------------------------------------------
# CLI

class _Progress:
    def __init__(self, stream=None):
        self.stream, self.last, self.phase, self.open = stream or sys.stderr, 0.0, None, False

    def end_line(self):
        if self.open:
            self.stream.write("\n")
            self.open = False

    def __call__(self, phase, done, total):
        now = time.monotonic()
        final = done >= total
        if phase == self.phase and not final and now - self.last < 0.2:
            return
        self.phase, self.last = phase, now
        pct = 100.0 * done / total if total else 100.0
        self.stream.write(f"\r{phase}: {done / 1e6:9.1f} / {total / 1e6:.1f} MB ({pct:5.1f}%)")
        self.open = True
        if final:
            self.end_line()
        self.stream.flush()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="convert.py", description=(
        "Convert a Hugging Face AltCLIP checkpoint (local folder or hub repo id) to an altclip model file."))
    ap.add_argument("input", help="checkpoint folder (config.json, preprocessor_config.json or processor_config.json, "
                    "sentencepiece.bpe.model, model.safetensors or pytorch_model.bin) or a hub repo id")
    ap.add_argument("output", help="the .altclip file to write")
    ap.add_argument("--dtype", choices=DTYPES, default="f32", help="weight dtype (default f32; logit_scale stays f32)")
    ap.add_argument("--revision", help="hub revision (branch, tag, commit or refs/pr/N) for a repo id")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    progress = None if args.quiet else _Progress()
    try:
        meta = convert(args.input, args.output, args.dtype, progress, args.revision)
    except ConvertError as e:
        if progress:
            progress.end_line()
        sys.stderr.write(f"convert.py: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        if progress:
            progress.end_line()
        sys.stderr.write(f"convert.py: interrupted; {args.output} was not written\n")
        return 130
    if not args.quiet:
        sys.stderr.write(f"wrote {args.output} ({meta['dtype']}, {os.path.getsize(args.output) / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
