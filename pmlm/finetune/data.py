"""The two fine-tuning tasks shipped with the project and their fixed splits (sources: pmlm/corpora).

* **Sentiment (NLU)**: Rotten Tomatoes sentences (the source of SST-2), ``fresh`` vs ``rotten``.
  Split by a hash of the sentence text: 10% test, 10% validation, 80% train. A hash, not a
  shuffle, so the split of a sentence never depends on the order or the size of the corpus, and a
  duplicated sentence lands in one split only.
* **Verse modernisation (NLG)**: King James (1611/1769) -> World English Bible, aligned by
  reference. Held out *by book*, so test verses come from books the model never saw in training
  (names, style and topics differ between books; a random verse split would leak near-duplicates
  from parallel passages of the same book): test = Ruth, Ecclesiastes, Jonah, Mark, Philippians,
  James; validation = Esther, Micah, Colossians, Jude; train = the other 56 books (book names
  full or as OSIS abbreviations).

Rows come from :mod:`pmlm.corpora` (bundled, stdlib loaders) unless the caller passes its own; a
label outside the task's classes is a ValueError that names the row, never a silent drop.
:func:`subsample` takes a fixed, seeded sample for the small presets.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pmlm.corpora.splits import (BIBLE_TEST_BOOKS, BIBLE_VALIDATION_BOOKS, BOOK_ALIASES,  # noqa: F401
                                 SENTIMENT_LABELS, SPLITS, bible_splits, hash_split, sentiment_splits)


def subsample(rows: Sequence[dict], n: int | None, seed: int = 0) -> list[dict]:
    """A fixed random sample of ``n`` rows (all rows, in order, if ``n`` is None or >= len)."""
    rows = list(rows)
    if n is None or n >= len(rows):
        return rows
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    return random.Random(seed).sample(rows, n)
