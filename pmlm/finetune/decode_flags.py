"""The decoding flags of ``python -m pmlm.predict generate`` and ``python -m pmlm.finetune seq2seq``.

One set of flags, named as in s2s-ft's ``decode_seq2seq.py`` (with dashes) and mapped to the
fields of :class:`~pmlm.finetune.decoding.DecodeConfig`. A flag that is not given leaves the field
as it was: the preset's when fine-tuning, the settings saved with the model when predicting.

Each flag, the field it sets, and s2s-ft's flag with its default there::

    --beam N (--beam-size N), --greedy            beam_size (1)           --beam_size 1
    --length-penalty A                            length_penalty          --length_penalty 0
    --min-length N                                min_length              --min_len 1
    --forbid-duplicate-ngrams [N]                 no_repeat_ngram_size    --forbid_duplicate_ngrams
      (--no-repeat-ngram N), --ngram-size N                               --ngram_size 3
    --forbid-ignore-word 'W|W'                    forbid_ignore_ids       --forbid_ignore_word (none)
    --max-target-length N (--max-length N)        max_length              --max_tgt_length 128
    --batch-size N                                batch_size              --batch_size 4

Exact meanings (:mod:`pmlm.finetune.decoding` has the decoder's side):

* ``--forbid-duplicate-ngrams`` alone blocks repeated n-grams of ``--ngram-size`` tokens (default
  3, as s2s-ft); with a value N it blocks N-grams, 0 turns blocking off. ``--no-repeat-ngram`` is
  another name of the same flag. ``--ngram-size`` without blocking, or different from an N
  given to the flag, is an error rather than a flag that silently does nothing.
* ``--forbid-ignore-word`` takes vocabulary tokens separated by ``|`` (s2s-ft's syntax; a
  ``[NAME]`` is upper-cased, as s2s-ft does): n-grams that hold one of them may repeat. A word that
  is not one token of the vocabulary is an error (s2s-ft would map it to ``[UNK]``), and so is an
  ignored word with blocking off. The words become token ids only once the tokenizer is known:
  :func:`decode_options` leaves them out when it is not given.
* ``--min-length N``: ``[EOS]`` is forbidden at steps 1..N, so at least N tokens come out (fewer
  only where ``--max-target-length`` or the model's positions end the target first).
* ``--max-target-length N``: at most N decoding steps, ``[EOS]`` included (s2s-ft's loop runs
  ``max_tgt_length`` steps as well).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

from tokenizers import Tokenizer

from pmlm.finetune.decoding import DecodeConfig

DEFAULT_NGRAM = 3  # s2s-ft's --ngram_size
USE_NGRAM_SIZE = object()  # --forbid-duplicate-ngrams given without a value (no number: -1 is a bad value)


def add_decode_arguments(parser: argparse.ArgumentParser, *, lengths: bool = True, batch: bool = True) -> None:
    """Add the decoding flags to ``parser``. ``lengths=False`` leaves out ``--max-target-length`` and
    ``batch=False`` ``--batch-size``, for a command whose flags of those names mean fine-tuning's."""
    g = parser.add_argument_group("decoding (as s2s-ft's decode_seq2seq.py)")
    beam = g.add_mutually_exclusive_group()
    beam.add_argument("--beam", "--beam-size", dest="beam", type=int, metavar="N", help="beam size (1 = greedy)")
    beam.add_argument("--greedy", action="store_true", help="greedy decoding (beam size 1)")
    g.add_argument("--length-penalty", type=float, metavar="A",
                   help="alpha of the score log p / ((5 + length) / 6) ** alpha (0: plain log-probability)")
    g.add_argument("--min-length", type=int, metavar="N", help="[EOS] forbidden before N tokens")
    g.add_argument("--forbid-duplicate-ngrams", "--no-repeat-ngram", dest="forbid_duplicate_ngrams", type=int,
                   nargs="?", const=USE_NGRAM_SIZE, metavar="N",
                   help=f"block repeated n-grams: of --ngram-size tokens (default {DEFAULT_NGRAM}), or of N; 0 = off")
    g.add_argument("--ngram-size", type=int, metavar="N",
                   help=f"n of --forbid-duplicate-ngrams (default {DEFAULT_NGRAM})")
    g.add_argument("--forbid-ignore-word", metavar="WORDS",
                   help="tokens separated by | whose n-grams may repeat, e.g. '.' or '.|,'")
    # dests of their own: a command's other --batch-size (fine-tuning's) never reaches the decoder
    if lengths:
        g.add_argument("--max-target-length", "--max-length", dest="decode_max_length", type=int, metavar="N",
                       help="most generated tokens, [EOS] included")
    if batch:
        g.add_argument("--batch-size", dest="decode_batch_size", type=int, metavar="N",
                       help="sources decoded together (sorted by length)")


def _ngram_size(args: argparse.Namespace) -> int | None:
    given, size = getattr(args, "forbid_duplicate_ngrams", None), getattr(args, "ngram_size", None)
    if size is not None and size < 1:
        raise ValueError(f"--ngram-size must be at least 1, got {size}")
    if given is None:
        if size is not None:
            raise ValueError("--ngram-size sets the n of --forbid-duplicate-ngrams: add that flag")
        return None
    if given is USE_NGRAM_SIZE:
        return DEFAULT_NGRAM if size is None else size
    if given < 0:
        raise ValueError(f"--forbid-duplicate-ngrams (--no-repeat-ngram) takes an n-gram size of at least 1 "
                         f"(0 = off), got {given}")
    if size is not None and size != given:
        raise ValueError(f"--forbid-duplicate-ngrams {given} and --ngram-size {size} disagree: give one of them")
    return given


def ignore_word_ids(tokenizer: Tokenizer, words: str) -> tuple[int, ...]:
    """Token ids of ``words`` (``"."``, ``".|[SEP]"``: s2s-ft's ``--forbid_ignore_word`` syntax)."""
    out = []
    for w in (w.strip() for w in words.split("|")):
        if not w:
            raise ValueError(f"--forbid-ignore-word {words!r} holds an empty word: separate tokens with |")
        token = w.upper() if w.startswith("[") and w.endswith("]") else w
        idx = tokenizer.token_to_id(token)
        if idx is None:
            raise ValueError(f"--forbid-ignore-word: {token!r} is not a token of the model's vocabulary: give "
                             "single tokens, e.g. '.'")
        out.append(idx)
    return tuple(out)


def decode_options(args: argparse.Namespace, tokenizer: Tokenizer | None = None) -> dict:
    """The :class:`DecodeConfig` fields that the flags in ``args`` set (a flag not given: no field).

    ``--forbid-ignore-word`` becomes ``forbid_ignore_ids`` only with ``tokenizer``.
    """
    out: dict = {}
    penalty = getattr(args, "length_penalty", None)
    if penalty is not None and not math.isfinite(penalty):  # float() takes "nan" and "inf"
        raise ValueError(f"--length-penalty must be a finite number, got {penalty}")
    if getattr(args, "greedy", False):
        out["beam_size"] = 1
    for flag, field in (("beam", "beam_size"), ("length_penalty", "length_penalty"), ("min_length", "min_length"),
                        ("decode_max_length", "max_length"), ("decode_batch_size", "batch_size")):
        if getattr(args, flag, None) is not None:
            out[field] = getattr(args, flag)
    n = _ngram_size(args)
    if n is not None:
        out["no_repeat_ngram_size"] = n
    words = getattr(args, "forbid_ignore_word", None)
    if words is not None and tokenizer is not None:
        out["forbid_ignore_ids"] = ignore_word_ids(tokenizer, words)
    return out


def decode_config(base: DecodeConfig, args: argparse.Namespace, tokenizer: Tokenizer | None = None) -> DecodeConfig:
    """``base`` with the flags of ``args`` applied (:func:`decode_options`), checked."""
    cfg = replace(base, **decode_options(args, tokenizer))
    if getattr(args, "forbid_ignore_word", None) is not None and tokenizer is not None and not cfg.no_repeat_ngram_size:
        raise ValueError("--forbid-ignore-word acts only on n-gram blocking, which is off: add "
                         "--forbid-duplicate-ngrams")
    return cfg
