"""convert(): a checkpoint folder or hub id -> one altclip model file, written atomically.

Everything is checked before the file is begun (config, small files, every tensor's name,
shape and dtype); then the header is written from the schema (sizes follow from dtype, shape
and layout) and each tensor is read from the mapped checkpoint, encoded and written a block of
rows at a time. Memory stays at a few chunks whatever the model's size.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Callable, Optional

import altclip_format

from . import ConvertError
from .checkpoint import canonicalize, check_tensors, find_weights, open_checkpoint, read_small_files, resolve_input
from .encode import Encoder
from .schema import DTYPES, stored_tensors

CONVERTER_VERSION = "1.1"


def convert(input: str, output: str, dtype: str = "f32",
            progress: Optional[Callable[[str, int, int], None]] = None,
            revision: Optional[str] = None) -> dict:
    """Convert INPUT (folder or hub repo id) to the altclip model file OUTPUT, atomically.

    `progress(phase, done_bytes, total_bytes)` with phase "writing", as the data is written.
    Returns the metadata written to the header.
    """
    if dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{output}: folder {out_dir} does not exist")
    if os.path.isdir(output):
        raise ConvertError(f"{output}: is a folder; give a file name")
    folder = resolve_input(input, revision)
    hf_config, config, preprocessor, spm = read_small_files(folder)
    weights = find_weights(folder)
    state = canonicalize(open_checkpoint(folder))
    check_tensors(state, config)

    metadata = {
        "converter": "tools/convert.py",
        "converter_version": CONVERTER_VERSION,
        "source": input if not os.path.isdir(input) else os.path.basename(os.path.abspath(input)),
        "source_weights": weights,
        "dtype": dtype,
        "logit_scale_dtype": "f32",
        # SOURCE_DATE_EPOCH (reproducible builds) pins the date, so regenerated test files are identical.
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
            int(os.environ["SOURCE_DATE_EPOCH"]) if os.environ.get("SOURCE_DATE_EPOCH") else None)),
        "hf_config": hf_config,
    }
    if revision is not None:
        metadata["revision"] = revision

    encoder = Encoder()
    tensors = {s.key: altclip_format.Lazy(s.dtype, s.shape, functools.partial(encoder.chunks, s, state[s.source]),
                                          s.layout)
               for s in stored_tensors(config, dtype)}
    altclip_format.write_container(
        output, tensors, blobs={"sentencepiece.bpe.model": spm}, config=config,
        preprocessor_config=preprocessor, metadata=metadata,
        progress=(lambda d, t: progress("writing", d, t)) if progress else None)
    return metadata
