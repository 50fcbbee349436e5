#!/usr/bin/env python3
"""Train the small SentencePiece model used by the altclip tokenizer tests.

Output: tests/data/sentencepiece.bpe.model, a SentencePiece *Unigram* model shaped like
XLM-R's `sentencepiece.bpe.model` (which is Unigram despite its file name):

  * model_type unigram, normalization rule nmt_nfkc (add_dummy_prefix, remove_extra_whitespaces,
    escape_whitespaces all true, as in XLM-R's normalizer_spec),
  * spm ids 0 <unk>, 1 <s>, 2 </s>, no <pad> piece (pad_id -1); the fairseq mapping done by
    XLMRobertaTokenizer adds <pad> and <mask> on top,
  * byte_fallback off, split_by_unicode_script / split_by_number / split_by_whitespace on,
    max_sentencepiece_length 16 (XLM-R's trainer_spec values),
  * character_coverage 1.0 (XLM-R used 0.99995 on a huge corpus; on our small text 1.0 keeps
    every training character so rare scripts are still in the vocabulary).

Training is deterministic: one thread, no sentence shuffling/sampling, fixed seed.
The training text, tools/data/spm_training.txt, is multilingual text written for this project.

Usage: python3 tools/make_sentencepiece.py [--vocab-size 3000]
"""
import argparse
import io
import os
import sys

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINING_TEXT = os.path.join(ROOT, "tools", "data", "spm_training.txt")
OUTPUT = os.path.join(ROOT, "tests", "data", "sentencepiece.bpe.model")


def train(vocab_size: int) -> bytes:
    model = io.BytesIO()
    # sentencepiece's own seed (for any sampling it does) is fixed before training.
    spm.set_random_generator_seed(1234)
    # A path relative to the repo root, so the trainer_spec stored in the model (which
    # records `input`) is the same bytes whichever clone runs this.
    os.chdir(ROOT)
    spm.SentencePieceTrainer.train(
        input=os.path.relpath(TRAINING_TEXT, ROOT),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the small text may not support the full size
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=True,
        remove_extra_whitespaces=True,
        byte_fallback=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_by_unicode_script=True,
        split_by_number=True,
        split_by_whitespace=True,
        max_sentencepiece_length=16,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
    )
    return model.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=3000)
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args()

    blob = train(args.vocab_size)
    # Determinism check: a second run must give the same bytes.
    if train(args.vocab_size) != blob:
        print("error: two training runs gave different models", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "wb") as f:
        f.write(blob)
    sp = spm.SentencePieceProcessor(model_proto=blob)
    print(f"wrote {args.output}: {len(blob)} bytes, {sp.get_piece_size()} pieces "
          f"(0={sp.id_to_piece(0)} 1={sp.id_to_piece(1)} 2={sp.id_to_piece(2)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
