"""The work of one ``prepare`` worker: a batch of documents in, arrays for the shards out.

Each worker process holds the tokenizer and the boundary tables (:func:`init`); :func:`encode`
tokenizes a batch of documents (``encode_batch``, no special tokens) and packs each one exactly as
the in-memory path does (:func:`pmlm.data.packing.pack_spans`), then returns flat numpy arrays, a
few per batch instead of a Python object per token, so that sending them back costs little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tokenizers import Tokenizer

from pmlm.data.packing import Boundaries, cut_array, pack_spans, word_starts
from pmlm.data.shards import token_dtype
from pmlm.tokenizer import special_ids

_state: dict = {}


def init(tokenizer_json: str, max_lengths: tuple[int, ...]) -> None:
    """Set up this process: the tokenizer, its boundary tables and the lengths to pack for."""
    tok = Tokenizer.from_str(tokenizer_json)
    _state.update(tok=tok, bounds=Boundaries.of(tok), max_lengths=tuple(max_lengths),
                  dtype=token_dtype(tok.get_vocab_size()), vocab=tok.get_vocab_size(),
                  sos=special_ids(tok)["sos"], eos=special_ids(tok)["eos"])


@dataclass
class Encoded:
    """One split's part of a batch; every offset is relative to the start of ``tokens``."""

    tokens: list = field(default_factory=list)  # (n_i,) per document, concatenated on pack()
    doc_lengths: list = field(default_factory=list)
    paragraphs: list = field(default_factory=list)
    cuts: list = field(default_factory=list)
    examples: dict = field(default_factory=dict)  # max_length -> list of (e_i, 3)
    chars: int = 0
    offset: int = 0

    def add(self, ids: np.ndarray, para_ends: np.ndarray, cuts: np.ndarray, spans: dict, chars: int) -> None:
        self.tokens.append(ids)
        self.doc_lengths.append(len(ids))
        self.paragraphs.append(para_ends + self.offset)
        self.cuts.append(cuts + self.offset)
        for n, s in spans.items():
            self.examples.setdefault(n, []).append(np.asarray(s, dtype=np.int64).reshape(-1, 3) + self.offset)
        self.offset += len(ids)
        self.chars += chars

    def pack(self, dtype: np.dtype, max_lengths, vocab: int, sos: int, eos: int) -> dict:
        """Flat arrays: tokens (n,), doc_lengths (d,), paragraphs (p,), cuts (c,), and per
        max_length the example spans (e, 3) and the (V,) token counts of those examples."""
        def cat(parts, dt=np.int64):
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)

        tokens = cat(self.tokens, dtype)
        out = {"tokens": tokens, "doc_lengths": np.asarray(self.doc_lengths, dtype=np.int64), "paragraphs": cat(self.paragraphs),
               "cuts": cat(self.cuts), "chars": self.chars, "examples": {}, "counts": {}}
        for n in max_lengths:
            spans = cat(self.examples.get(n, [])).reshape(-1, 3)  # (e, 3)
            out["examples"][n] = spans
            counts = example_counts(tokens, spans, vocab)
            counts[sos] += len(spans)  # each example's [SOS] S1 [EOS] S2 [EOS]
            counts[eos] += 2 * len(spans)
            out["counts"][n] = counts
        return out


def example_counts(tokens: np.ndarray, spans: np.ndarray, vocab: int) -> np.ndarray:
    """(V,) how often each id occurs in the text of the examples ``spans`` of ``tokens``."""
    delta = np.zeros(len(tokens) + 1, dtype=np.int64)  # +1 at each start, -1 at each end
    np.add.at(delta, spans[:, 0], 1)
    np.add.at(delta, spans[:, 2], -1)
    covered = np.cumsum(delta[:-1]) > 0  # (n,) the token lies in some example
    counts = np.bincount(tokens[covered].astype(np.int64), minlength=vocab)[:vocab]
    return counts


def encode(batch: list[tuple[list[str], bool]]) -> dict[str, dict]:
    """``[(paragraphs, held_out), ...]`` -> ``{"train": arrays, "validation": arrays}``."""
    tok, b, lengths = _state["tok"], _state["bounds"], _state["max_lengths"]
    flat = [p for doc, _ in batch for p in doc]
    encoded = tok.encode_batch(flat, add_special_tokens=False) if flat else []
    parts = {"train": Encoded(), "validation": Encoded()}
    i = 0
    for doc, held_out in batch:
        para = encoded[i:i + len(doc)]
        i += len(doc)
        lens = np.fromiter((len(e.ids) for e in para), dtype=np.int64, count=len(para))
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in para]) if para else np.zeros(0, np.int64)
        para_ends = np.cumsum(lens)
        cuts, words = cut_array(ids, para_ends, b), word_starts(ids, b)
        spans = {n: pack_spans(len(ids), cuts, words, max_length=n) for n in lengths}
        parts["validation" if held_out else "train"].add(ids, para_ends, cuts, spans, sum(len(p) for p in doc))
    return {name: part.pack(_state["dtype"], lengths, _state["vocab"], _state["sos"], _state["eos"])
            for name, part in parts.items()}
