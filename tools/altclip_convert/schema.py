"""The model's tensors, in one table: for every tensor of an AltCLIPModel, its state_dict key (as
the released checkpoint spells it), its shape from the resolved config, and how each --dtype
stores it. The converter checks checkpoints against `model_tensors` and writes
`stored_tensors`; tools/tests/test_schema.py checks that they name exactly the keys the C++
loader (include/altclip/modules/weights.hpp) binds.

How a tensor is stored depends on its kind:

    kind      tensors                                          f32     f16   bf16    q8
    matrix    the layers' weight matrices, the patch           f32     f16   bf16    i8 + KEY_scale
              embedding, the two projections                   panels        panels64 (f32 [rows])
    table     the word embedding table                         f32     f16   bf16    bf16
    float32   biases, norms, class and position embeddings,    f32     f32   f32     f32
              logit_scale

Matrices go in the GEMM kernels' panel layout (docs/format.md) in f32 and bf16 files, so that
no product repacks them: f32 in 32-row panels ("panels", each 32-column micro-tile's weights
contiguous, what altclip's kernels stream best), bf16 in 64-row ones ("panels64": oneDNN's
blocked layout, used in place on AMX CPUs; bench/ONEDNN_RESULTS.md has what each costs); q8 matrices stay row-major (three kernels read them in three unit
types). Biases and norms stay float32: a few MB in all, and rounding them costs accuracy for
nothing (text cosine 0.99985 -> 0.99997 against f32 on the bench model). The word embedding
table is only read row by row, so q8 keeps it in bf16 (8 bits would cost accuracy, buy no speed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

DTYPES = ("f32", "f16", "bf16", "q8")
MATRIX, TABLE, FLOAT32 = "matrix", "table", "float32"
Q8_SCALE_SUFFIX = "_scale"

# kind -> --dtype -> (stored dtype, layout)
STORAGE = {
    MATRIX: {"f32": ("f32", "panels"), "f16": ("f16", "rows"), "bf16": ("bf16", "panels64"), "q8": ("i8", "rows")},
    TABLE: {"f32": ("f32", "rows"), "f16": ("f16", "rows"), "bf16": ("bf16", "rows"), "q8": ("bf16", "rows")},
    FLOAT32: {d: ("f32", "rows") for d in DTYPES},
}


@dataclass(frozen=True)
class Tensor:
    """A tensor of the model: key, shape (from the config) and kind."""
    key: str
    shape: Tuple[int, ...]
    kind: str


@dataclass(frozen=True)
class Stored:
    """A tensor as a model file stores it. `source` is the model tensor its values come from;
    `scale` marks the per-row scales of a q8 matrix (stored under source + "_scale")."""
    key: str
    source: str
    dtype: str
    shape: Tuple[int, ...]
    layout: str = "rows"
    scale: bool = False


def model_tensors(config: dict) -> List[Tensor]:
    """Every tensor of AltCLIPModel.state_dict() (minus unused buffers), in file order."""
    t, v, P = config["text_config"], config["vision_config"], config["projection_dim"]
    out: List[Tensor] = []

    def add(key, shape, kind=FLOAT32):
        out.append(Tensor(key, tuple(shape), kind))

    def linear(prefix, n_out, n_in, bias=True):
        add(prefix + ".weight", (n_out, n_in), MATRIX)
        if bias:
            add(prefix + ".bias", (n_out,))

    def norm(prefix, n):
        add(prefix + ".weight", (n,))
        add(prefix + ".bias", (n,))

    H, I = t["hidden_size"], t["intermediate_size"]
    e = "text_model.roberta.embeddings."
    add(e + "word_embeddings.weight", (t["vocab_size"], H), TABLE)
    add(e + "position_embeddings.weight", (t["max_position_embeddings"], H))
    add(e + "token_type_embeddings.weight", (t["type_vocab_size"], H))
    norm(e + "LayerNorm", H)
    for i in range(t["num_hidden_layers"]):
        p = f"text_model.roberta.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            linear(p + "attention.self." + name, H, H)
        linear(p + "attention.output.dense", H, H)
        norm(p + "attention.output.LayerNorm", H)
        linear(p + "intermediate.dense", I, H)
        linear(p + "output.dense", H, I)
        norm(p + "output.LayerNorm", H)
    norm("text_model.pre_LN", H)
    linear("text_model.transformation", t["project_dim"], H)

    Hv, Iv, ps = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    e = "vision_model.embeddings."
    add(e + "class_embedding", (Hv,))
    add(e + "patch_embedding.weight", (Hv, v["num_channels"], ps, ps), MATRIX)
    add(e + "position_embedding.weight", ((v["image_size"] // ps) ** 2 + 1, Hv))
    norm("vision_model.pre_layrnorm", Hv)
    for i in range(v["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(p + "self_attn." + name, Hv, Hv)
        norm(p + "layer_norm1", Hv)
        linear(p + "mlp.fc1", Iv, Hv)
        linear(p + "mlp.fc2", Hv, Iv)
        norm(p + "layer_norm2", Hv)
    norm("vision_model.post_layernorm", Hv)

    linear("visual_projection", P, Hv, bias=False)
    linear("text_projection", P, t["project_dim"], bias=False)
    add("logit_scale", ())
    return out


def stored_tensors(config: dict, dtype: str) -> List[Stored]:
    """The tensors of a --dtype file, in file order (a q8 matrix followed by its scales)."""
    out: List[Stored] = []
    for t in model_tensors(config):
        stored_dtype, layout = STORAGE[t.kind][dtype]
        out.append(Stored(t.key, t.key, stored_dtype, t.shape, layout))
        if stored_dtype == "i8":
            out.append(Stored(t.key + Q8_SCALE_SUFFIX, t.key, "f32", t.shape[:1], scale=True))
    return out


def expected_tensors(config: dict) -> Dict[str, Tuple[int, ...]]:
    """Every tensor name of AltCLIPModel.state_dict() (minus unused buffers) and its shape."""
    return {t.key: t.shape for t in model_tensors(config)}


_LAYER_NUMBER = re.compile(r"\.\d+\.")
_KINDS: Dict[str, str] = {}


def kind_of(key: str) -> Optional[str]:
    """The kind of a model tensor's key (any layer number), None for a key the model lacks."""
    if not _KINDS:
        from .config import TEXT_DEFAULTS, VISION_DEFAULTS
        one_layer = {"projection_dim": 8, "text_config": dict(TEXT_DEFAULTS, num_hidden_layers=1),
                     "vision_config": dict(VISION_DEFAULTS, num_hidden_layers=1)}
        _KINDS.update((_LAYER_NUMBER.sub(".N.", t.key), t.kind) for t in model_tensors(one_layer))
    return _KINDS.get(_LAYER_NUMBER.sub(".N.", key))


def is_q8_matrix(name: str, shape=None) -> bool:
    """A weight matrix: int8 in q8 files, in panels in f32 and bf16 files."""
    return kind_of(name) == MATRIX


def is_reduced(name: str, shape=None) -> bool:
    """Tensors that --dtype f16/bf16 store in 16 bits: the matrices and the word embedding table."""
    return kind_of(name) in (MATRIX, TABLE)


# ----------------------------------------------------------------------------- checkpoint spellings

# transformers 5 names the layer lists `layers` for both towers in memory (so
# torch.save(model.state_dict()) writes text `...encoder.layers.N`), and its save_pretrained
# writes vision `...encoder.layer.N`. The released checkpoints, and the model file, use text
# `text_model.roberta.encoder.layer.N` and vision `vision_model.encoder.layers.N`.
_KEY_RENAMES = [
    (re.compile(r"^text_model\.roberta\.encoder\.layers\.(\d+)\."), r"text_model.roberta.encoder.layer.\1."),
    (re.compile(r"^vision_model\.encoder\.layer\.(\d+)\."), r"vision_model.encoder.layers.\1."),
]


def canonical_name(name: str) -> str:
    """The released checkpoint's spelling of a state_dict key (see _KEY_RENAMES)."""
    for pattern, repl in _KEY_RENAMES:
        name = pattern.sub(repl, name)
    return name


def is_ignored_key(name: str) -> bool:
    """Keys some checkpoints carry that the model does not use."""
    return name.endswith(".position_ids") or name.startswith("text_model.roberta.pooler.dense.")
