#!/usr/bin/env python3
"""Reference token ids for the C++ XLMRobertaTokenizer (tests/test_tokenizer.cpp).

Builds a hub-style AltCLIP folder in a temp dir the way the real BAAI/AltCLIP folder is laid out
(sentencepiece.bpe.model + tokenizer.json + tokenizer_config.json + preprocessor_config.json):
  1. XLMRobertaTokenizer.from_pretrained(<dir holding only tests/data/sentencepiece.bpe.model>)
     converts the spm model (convert_slow_tokenizer.XLMRobertaConverter) and save_pretrained()
     writes tokenizer.json / tokenizer_config.json; CLIPImageProcessor().save_pretrained() adds
     preprocessor_config.json; the .model file is copied beside them.
  2. AltCLIPProcessor.from_pretrained(folder).tokenizer is the reference. With transformers 5.24
     it resolves to transformers.models.xlm_roberta.tokenization_xlm_roberta.XLMRobertaTokenizer,
     the `tokenizers`-backed ("fast") class (TokenizersBackend; v5 has no slow XLM-R class):
     normalizer Precompiled(charsmap), pre_tokenizer Sequence[WhitespaceSplit,
     Metaspace(prepend_scheme="always")], Unigram(unk_id=3), TemplateProcessing <s> $A </s>.
     The script asserts this class and pipeline, so a change in transformers is noticed.

Runs it on tests/data/tokenizer_corpus.jsonl (one JSON string per line) and writes
tests/data/tokenizer_reference.ref (altclip container, see docs/format.md):
  corpus_ids [sum]           int64  tokenizer(text, truncation=True)["input_ids"], concatenated
  corpus_offsets [N+1]       int64  row i is corpus_ids[offsets[i]:offsets[i+1]]
  batch_input_ids [B, L]     int64  tokenizer(batch, padding=True, truncation=True)
  batch_attention_mask [B, L]
  trunc_ids / trunc_offsets  int64  truncation cases (metadata "truncation": text, model_max_length)
  trunc_batch_input_ids / trunc_batch_attention_mask: a padded batch with model_max_length 16
metadata: tokenizer class, vocab size, special ids, batch texts, truncation cases and the
documented differences (text, reference ids, the ids the C++ tokenizer gives, why).

"ours" for the documented differences is computed here with python sentencepiece on the same
steps as include/altclip/preprocessing/tokenizer.hpp (added-token split, U+0085 -> space, spm normalisation,
the tokenizers Unigram best path per word);
the script also checks that those steps reproduce the reference on every corpus line.

Usage: python3 tools/make_tokenizer_reference.py
"""
import json
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from altclip_format import write_container  # noqa: E402

SPM_MODEL = os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model")
CORPUS = os.path.join(ROOT, "tests", "data", "tokenizer_corpus.jsonl")
OUTPUT = os.path.join(ROOT, "tests", "data", "tokenizer_reference.ref")

# Texts where the reference and libsentencepiece (with our pre-processing) are known to differ;
# each is documented in docs/tokenizer.md. Key: the text; value: why.
DIFFERENCES = [
    ("\uff21\u0301",
     "grapheme < 6 bytes whose first char has a charsmap entry: the reference maps the whole "
     "grapheme to that char's normalisation and drops the combining acute"),
    ("\ufb01\u0301",
     "same, with a ligature: 'fi' + acute becomes 'fi'"),
    ("e\u0302\u0301",
     "decomposed Vietnamese: the reference takes the shortest charsmap match of the grapheme "
     "(e+circumflex -> ê) and drops the acute; spm takes the longest (-> ế)"),
    ("e\u0301\u0302\u0303\u0304",
     "grapheme >= 6 bytes: the reference normalises char by char, so e+acute is not composed"),
    ("a" + "\u0301" * 7,
     "grapheme >= 6 bytes: char by char, a+acute not composed"),
    ("\uff8a\uff9f",
     "half-width katakana + half-width semi-voiced mark is one 6-byte grapheme: the reference "
     "maps char by char (ハ + U+309A) instead of composing パ"),
    ("\uff76\uff9e\uff77\uff9e",
     "half-width ｶﾞｷﾞ: not composed to ガギ by the reference"),
    ("\u3131\u314f",
     "compatibility jamo ㄱㅏ are two graphemes: the reference maps each alone (to conjoining "
     "jamo), spm's longest match spans both and composes 가"),
    ("\u1100\u1161",
     "conjoining Hangul jamo L+V (6 bytes): the reference does not compose them to 가"),
]


def load_reference(tmp: str):
    warnings.filterwarnings("ignore")
    import transformers
    from transformers import AltCLIPProcessor, CLIPImageProcessor, XLMRobertaTokenizer

    transformers.logging.set_verbosity_error()
    src = os.path.join(tmp, "spm_only")
    hub = os.path.join(tmp, "hub")
    os.makedirs(src)
    os.makedirs(hub)
    shutil.copy(SPM_MODEL, src)
    # model_max_length 512 as in the real hub tokenizer_config.json (max_position_embeddings - 2).
    XLMRobertaTokenizer.from_pretrained(src, model_max_length=512).save_pretrained(hub)
    CLIPImageProcessor().save_pretrained(hub)
    shutil.copy(SPM_MODEL, hub)
    tok = AltCLIPProcessor.from_pretrained(hub).tokenizer

    cls = f"{type(tok).__module__}.{type(tok).__name__}"
    if cls != "transformers.models.xlm_roberta.tokenization_xlm_roberta.XLMRobertaTokenizer":
        raise SystemExit(f"unexpected tokenizer class {cls}: re-check the pipeline notes")
    spec = json.loads(tok.backend_tokenizer.to_str())
    pre = [p["type"] for p in spec["pre_tokenizer"]["pretokenizers"]]
    if (spec["normalizer"]["type"] != "Precompiled" or pre != ["WhitespaceSplit", "Metaspace"]
            or spec["model"]["type"] != "Unigram" or spec["model"]["unk_id"] != 3):
        raise SystemExit(f"unexpected tokenizer pipeline: {spec['normalizer']['type']} {pre} "
                         f"{spec['model']['type']}: re-check docs/tokenizer.md")
    return tok, cls, transformers.__version__


def make_ours(sp):
    """The steps of include/altclip/preprocessing/tokenizer.hpp, with python sentencepiece: split the added
    tokens, U+0085 -> space, spm normalisation (its pieces spell the normalised text), split
    at each ▁, and the tokenizers Unigram best path (double precision, strict '>' in a forward
    pass, <unk> for uncovered chars, consecutive unknowns fused) on each word."""
    from sentencepiece import sentencepiece_pb2

    mask = sp.get_piece_size() + 1
    vocab = {"<s>": (0, 0.0), "<pad>": (1, 0.0), "</s>": (2, 0.0), "<unk>": (3, 0.0)}
    for i in range(3, sp.get_piece_size()):
        vocab[sp.id_to_piece(i)] = (i + 1, float(sp.get_score(i)))
    vocab["<mask>"] = (mask, 0.0)
    unk_score = min(s for _, s in vocab.values()) - 10.0
    max_len = max(len(p.encode()) for p in vocab)

    def word_ids(word: bytes):
        n = len(word)
        best = [None] * (n + 1)  # (score, start, id)
        best[0] = (0.0, 0, 0)
        start = 0
        while start < n:
            lead = word[start]
            mblen = min(1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4, n - start)
            base = best[start][0]
            single = False
            for ln in range(1, min(max_len, n - start) + 1):
                hit = vocab.get(word[start:start + ln].decode("utf-8", "replace")
                                if _valid(word[start:start + ln]) else None)
                if hit is None:
                    continue
                cand = base + hit[1]
                if best[start + ln] is None or cand > best[start + ln][0]:
                    best[start + ln] = (cand, start, hit[0])
                single |= ln == mblen
            if not single:
                cand = base + unk_score
                if best[start + mblen] is None or cand > best[start + mblen][0]:
                    best[start + mblen] = (cand, start, 3)
            start += mblen
        ids, end, unk_end = [], n, None
        while end > 0:
            _, st, i = best[end]
            if i == 3:
                unk_end = end if unk_end is None else unk_end
            else:
                if unk_end is not None:
                    ids.append(vocab.get(word[end:unk_end].decode(), (3,))[0])
                    unk_end = None
                ids.append(i)
            end = st
        if unk_end is not None:
            ids.append(vocab.get(word[0:unk_end].decode(), (3,))[0])
        return ids[::-1]

    def segment(s, out):
        if not s:
            return
        t = sentencepiece_pb2.SentencePieceText()
        t.ParseFromString(sp.encode(s.replace("\u0085", " "), out_type="serialized_proto"))
        norm = "".join(p.piece for p in t.pieces)
        starts = [i for i, c in enumerate(norm) if c == "\u2581" and i > 0] + [len(norm)]
        prev = 0
        for st in starts:
            if st > prev:
                out.extend(word_ids(norm[prev:st].encode()))
            prev = st

    def ours(text: str, max_len: int = 512):
        added = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": mask}
        out = [0]
        start = pos = 0
        while pos < len(text):
            tok = max((t for t in added if text.startswith(t, pos)), key=len, default=None)
            if tok:
                segment(text[start:pos], out)
                out.append(added[tok])
                pos += len(tok)
                start = pos
            else:
                pos += 1
        segment(text[start:], out)
        return out[: max_len - 1] + [2]

    return ours


def _valid(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def flat(rows):
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    ids = np.array([i for r in rows for i in r], dtype=np.int64)
    return ids, offsets


def main() -> int:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=SPM_MODEL)
    ours = make_ours(sp)
    with open(CORPUS, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f.read().split("\n") if line]

    tmp = tempfile.mkdtemp()
    try:
        tok, cls, version = load_reference(tmp)

        corpus_rows = [tok(t, truncation=True)["input_ids"] for t in corpus]
        bad = [(i, t) for i, t in enumerate(corpus) if ours(t) != corpus_rows[i]]
        for i, t in bad:
            print(f"corpus line {i + 1} differs from the python emulation: {t!r}\n"
                  f"  reference {corpus_rows[i]}\n  ours      {ours(t)}", file=sys.stderr)

        diff_cases = []
        for text, why in DIFFERENCES:
            ref = tok(text, truncation=True)["input_ids"]
            mine = ours(text)
            if ref == mine:
                raise SystemExit(f"documented difference {text!r} no longer differs: update docs")
            diff_cases.append({"text": text, "reference": ref, "ours": mine, "why": why})

        # Padded batch: texts of different lengths and scripts, an empty one, specials.
        batch_texts = [corpus[0], corpus[20], "", "hello <mask> world", corpus[60],
                       "tab\tseparated  and   spaced", "\U0001F600" * 5, corpus[150]]
        enc = tok(batch_texts, padding=True, truncation=True, return_tensors="np")
        batch_ids = enc["input_ids"].astype(np.int64)
        batch_mask = enc["attention_mask"].astype(np.int64)

        # Truncation: a text exactly at, one over and far over the limit, for 16 and 512.
        trunc_cases, trunc_rows = [], []
        words = "a photo of a cat 一张猫的照片 and a dog".split(" ")
        for limit in (16, 512):
            tok.model_max_length = limit

            def untruncated_len(s):
                return len(tok(s, truncation=False)["input_ids"])

            text = ""
            k = 0
            while untruncated_len(text) < limit:
                text = (text + " " + words[k % len(words)]).strip()
                k += 1
            at = text
            while untruncated_len(text) <= limit:
                text = text + " " + words[k % len(words)]
                k += 1
            over = text
            far = " ".join([at] * 6)
            for name, s in (("at", at), ("over", over), ("far_over", far)):
                row = tok(s, truncation=True)["input_ids"]
                trunc_cases.append({"text": s, "model_max_length": limit, "kind": name,
                                    "untruncated_length": untruncated_len(s)})
                trunc_rows.append(row)
            assert untruncated_len(at) == limit and untruncated_len(over) > limit
        tok.model_max_length = 16
        trunc_batch_texts = [trunc_cases[0]["text"], "short", trunc_cases[2]["text"]]
        tenc = tok(trunc_batch_texts, padding=True, truncation=True, return_tensors="np")
        tok.model_max_length = 512

        corpus_ids, corpus_offsets = flat(corpus_rows)
        trunc_ids, trunc_offsets = flat(trunc_rows)
        metadata = {
            "generator": "tools/make_tokenizer_reference.py",
            "transformers": version,
            "tokenizer_class": cls,
            "spm_model": "tests/data/sentencepiece.bpe.model",
            "corpus": "tests/data/tokenizer_corpus.jsonl",
            "corpus_lines": len(corpus),
            "vocab_size": len(tok),
            "pad_token_id": tok.pad_token_id,
            "mask_token_id": tok.mask_token_id,
            "batch_texts": batch_texts,
            "truncation": trunc_cases,
            "trunc_batch_texts": trunc_batch_texts,
            "trunc_batch_model_max_length": 16,
            "differences": diff_cases,
        }
        write_container(OUTPUT, {
            "corpus_ids": corpus_ids, "corpus_offsets": corpus_offsets,
            "batch_input_ids": batch_ids, "batch_attention_mask": batch_mask,
            "trunc_ids": trunc_ids, "trunc_offsets": trunc_offsets,
            "trunc_batch_input_ids": tenc["input_ids"].astype(np.int64),
            "trunc_batch_attention_mask": tenc["attention_mask"].astype(np.int64),
        }, metadata=metadata)
        print(f"wrote {OUTPUT}: {len(corpus)} corpus lines ({len(corpus) - len(bad)} equal to the "
              f"python emulation of the C++ steps), batch {batch_ids.shape}, "
              f"{len(trunc_cases)} truncation cases, {len(diff_cases)} documented differences; "
              f"reference class {cls} (transformers {version})")
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
