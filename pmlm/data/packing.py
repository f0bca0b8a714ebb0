"""Packing a document into ``[SOS] S1 [EOS] S2 [EOS]`` examples (section 2.2).

The paper's examples are two *contiguous* spans of text, up to 512 tokens, with no next-sentence
prediction and no random second segment. A document's paragraphs are tokenized (without special
tokens) and concatenated; greedy contiguous chunks of at most ``max_length - 3`` tokens are cut,
each ending at a sentence or paragraph end when one lies in the chunk's second half; each chunk is
split into S1 and S2 at the sentence end nearest its middle (or at the middle if it has none).

The packer works on *spans*: an example is ``(start, split, end)``, offsets into the document's
tokens, with ``S1 = ids[start:split]`` and ``S2 = ids[split:end]`` (:func:`pack_spans`). The
in-memory path builds the token lists from the spans (:func:`pack_document`); a prepared directory
stores the spans beside the tokens (:mod:`pmlm.data.shards`), so both give the very same examples.

Choices where the paper is silent: examples never cross a document boundary; a document's tail
shorter than ``min_tokens`` tokens is dropped; S1/S2 boundaries prefer sentence ends (``.``, ``!``,
``?``, with a closing quote kept on the left); where no sentence end is at hand, cuts fall between
words (never before a ``##`` continuation piece) when they can. The packing is deterministic: the
randomness of pre-training lives in the masks (:class:`pmlm.PMLMCollator`), drawn anew every step.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from tokenizers import Tokenizer

from pmlm.tokenizer import special_ids

SENTENCE_ENDS = (".", "!", "?")
CLOSING_QUOTES = ('"', "'", "\u201d", "\u2019", ")")
MIN_TOKENS = 8  # a document's tail shorter than this is dropped


def boundary_ids(tok: Tokenizer) -> dict[str, set[int]]:
    """Ids of sentence-final punctuation, closing quotes and ``##`` word continuations."""
    vocab = tok.get_vocab()
    return {"ends": {vocab[t] for t in SENTENCE_ENDS if t in vocab},
            "quotes": {vocab[t] for t in CLOSING_QUOTES if t in vocab},
            "continuations": {i for t, i in vocab.items() if t.startswith("##")}}


class Boundaries:
    """:func:`boundary_ids` as lookup tables: ``ends[t]`` is True where token id t ends a sentence.

    A table lookup ``table[ids]`` classifies a whole document's tokens at once, where a set test
    would be a Python loop over every token.
    """

    def __init__(self, ends=frozenset(), quotes=frozenset(), continuations=frozenset(), size: int = 0) -> None:
        size = max([size, *(max(s) + 1 for s in (ends, quotes, continuations) if s)])
        self.ends, self.quotes, self.continuations = (self._table(s, size) for s in (ends, quotes, continuations))

    @staticmethod
    def _table(ids, size: int) -> np.ndarray:
        table = np.zeros(size, dtype=bool)  # (V,)
        table[list(ids)] = True
        return table

    @classmethod
    def of(cls, tok: Tokenizer) -> "Boundaries":
        return cls(**boundary_ids(tok), size=tok.get_vocab_size())

    def lookup(self, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(n,) bool: ``table[ids]``, False for ids beyond the table."""
        out = np.zeros(len(ids), dtype=bool)
        inside = ids < len(table)
        out[inside] = table[ids[inside]]
        return out


def cut_points(ids: list[int], paragraph_ends: list[int], ends: set[int], quotes: set[int]) -> list[int]:
    """Sorted positions j where the text may be cut *before* token j: sentence or paragraph ends.

    E.g. ``she said . " yes`` gives a cut before ``yes`` (the closing quote stays on the left).
    The readable reference of :func:`cut_array`, which computes the same for a whole array at once.
    """
    cuts, trailing = set(paragraph_ends), quotes | ends
    for i, t in enumerate(ids):
        if t in ends and not (i + 1 < len(ids) and ids[i + 1] in trailing):
            cuts.add(i + 1)
        elif t in quotes and i > 0 and ids[i - 1] in ends:
            cuts.add(i + 1)
    return sorted(c for c in cuts if 0 < c < len(ids))


def cut_array(ids: np.ndarray, paragraph_ends: np.ndarray, b: Boundaries) -> np.ndarray:
    """:func:`cut_points` on an array: (k,) sorted int64 cut positions."""
    n = len(ids)
    is_end, is_quote = b.lookup(b.ends, ids), b.lookup(b.quotes, ids)  # (n,) each
    followed = np.zeros(n, dtype=bool)  # (n,) the next token is an end or a closing quote
    followed[:-1] = is_end[1:] | is_quote[1:]
    after_end = np.zeros(n, dtype=bool)  # (n,) the previous token ends a sentence
    after_end[1:] = is_end[:-1]
    sentence = np.flatnonzero((is_end & ~followed) | (is_quote & after_end)) + 1
    cuts = np.union1d(sentence, np.asarray(paragraph_ends, dtype=np.int64))
    return cuts[(cuts > 0) & (cuts < n)]


def word_starts(ids: np.ndarray, b: Boundaries) -> np.ndarray:
    """(k,) positions j >= 1 where a word starts (token j is not a ``##`` continuation)."""
    return np.flatnonzero(~b.lookup(b.continuations, ids[1:])) + 1


def last_in(points, lo: int, hi: int) -> int | None:
    """The largest of the sorted ``points`` in (lo, hi], or None."""
    i = bisect.bisect_right(points, hi) - 1
    return int(points[i]) if i >= 0 and points[i] > lo else None


def nearest_in(points, lo: int, hi: int, target: int) -> int | None:
    """The one of the sorted ``points`` strictly inside (lo, hi) nearest ``target``, or None."""
    i = bisect.bisect_left(points, target)
    near = [int(p) for p in points[max(0, i - 1):i + 1] if lo < p < hi]
    return min(near, key=lambda p: abs(p - target)) if near else None


def pack_spans(n: int, cuts, words, *, max_length: int, min_tokens: int = MIN_TOKENS) -> list[tuple[int, int, int]]:
    """``(start, split, end)`` of each example of a document of ``n`` tokens.

    ``cuts`` are the sorted sentence/paragraph cut positions (:func:`cut_array`), ``words`` the
    sorted word starts (:func:`word_starts`). Walk-through with ``max_length = 10`` (budget 7 text
    tokens) and one paragraph ``a b . c d e . f g h`` (10 tokens, cuts after each ``.``): the first
    chunk may take 7 tokens, ``a b . c d e .`` ends at a sentence end, so it is cut there: end 7;
    its middle sentence end splits it at 3, so the span is ``(0, 3, 7)``, the example
    ``[SOS] a b . [EOS] c d e . [EOS]``. The tail ``f g h`` has 3 < 8 tokens and is dropped.
    """
    budget = max_length - 3  # [SOS], [EOS], [EOS]
    if budget < 2:
        raise ValueError(f"max_length={max_length} leaves no room for S1 and S2 beside 3 special tokens")
    spans, start = [], 0
    while n - start >= min_tokens:
        end = min(start + budget, n)
        if end < n:  # end at the last sentence end, else word start, of the second half
            end = last_in(cuts, start + budget // 2, end) or last_in(words, start + budget // 2, end) or end
        mid = (start + end) // 2  # S1 | S2 at the sentence end, else word start, nearest the middle
        split = nearest_in(cuts, start, end, mid) or nearest_in(words, start, end, mid) or mid
        spans.append((start, split, end))
        start = end
    return spans


def document_arrays(paragraph_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """A document's tokens, concatenated, (n,) int64, and its (p,) paragraph end offsets."""
    lengths = np.fromiter((len(p) for p in paragraph_ids), dtype=np.int64, count=len(paragraph_ids))
    ids = np.fromiter((t for p in paragraph_ids for t in p), dtype=np.int64, count=int(lengths.sum()))
    return ids, np.cumsum(lengths)


def example_from_span(ids, span: tuple[int, int, int], sos_id: int, eos_id: int) -> list[int]:
    """``[SOS] ids[start:split] [EOS] ids[split:end] [EOS]`` as a list of ints."""
    start, split, end = span
    return [sos_id, *ids[start:split].tolist(), eos_id, *ids[split:end].tolist(), eos_id]


def pack_document(paragraph_ids: list[list[int]], *, max_length: int, sos_id: int, eos_id: int,
                  ends: set[int] = frozenset(), quotes: set[int] = frozenset(),
                  continuations: set[int] = frozenset(), min_tokens: int = MIN_TOKENS,
                  boundaries: Boundaries | None = None) -> list[list[int]]:
    """Examples ``[SOS] S1 [EOS] S2 [EOS]`` of at most ``max_length`` tokens from one document
    (:func:`pack_spans` on its tokens; ``boundaries`` saves rebuilding the tables per document)."""
    ids, para_ends = document_arrays(paragraph_ids)
    b = boundaries or Boundaries(ends, quotes, continuations, size=int(ids.max(initial=-1)) + 1)
    spans = pack_spans(len(ids), cut_array(ids, para_ends, b), word_starts(ids, b),
                       max_length=max_length, min_tokens=min_tokens)
    return [example_from_span(ids, s, sos_id, eos_id) for s in spans]


class PackedDataset(torch.utils.data.Dataset):
    """Packed examples, each a list of token ids ``[SOS] S1 [EOS] S2 [EOS]``."""

    def __init__(self, examples: list[list[int]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[int]:
        return self.examples[i]

    def num_tokens(self) -> int:
        return sum(len(e) for e in self.examples)

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """(V,) int64 count of each token id over all examples."""
        flat = np.fromiter((t for e in self.examples for t in e), dtype=np.int64)
        return np.bincount(flat, minlength=vocab_size)


def pack_documents(docs: list[list[str]], tok: Tokenizer, max_length: int,
                   min_tokens: int = MIN_TOKENS) -> PackedDataset:
    """Tokenize every document (no special tokens) and pack it into examples."""
    ids = special_ids(tok)
    b = Boundaries.of(tok)
    flat = [p for d in docs for p in d]
    encoded = [e.ids for e in tok.encode_batch(flat, add_special_tokens=False)] if flat else []
    examples, i = [], 0
    for d in docs:
        paragraph_ids, i = encoded[i:i + len(d)], i + len(d)
        examples += pack_document(paragraph_ids, max_length=max_length, sos_id=ids["sos"],
                                  eos_id=ids["eos"], min_tokens=min_tokens, boundaries=b)
    return PackedDataset(examples)
