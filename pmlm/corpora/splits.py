"""Fixed splits of the bundled task corpora: sentiment by a hash of the text, verses by book.

* **Sentiment**: Rotten Tomatoes sentences, ``fresh`` vs ``rotten``, split by a hash of the sentence
  text: 10% test, 10% validation, 80% train. A hash, not a shuffle, so the split of a sentence never
  depends on the order or the size of the corpus, and a duplicated sentence lands in one split only.
* **Verses**: King James -> World English Bible, held out *by book* (test = Ruth, Ecclesiastes,
  Jonah, Mark, Philippians, James; validation = Esther, Micah, Colossians, Jude; train = the other
  56 books), so test verses come from books never seen in training.

They live here, beside the corpora, because two floors use them: fine-tuning
(:mod:`pmlm.finetune.data`) and pre-training on the tasks' *training* text
(:func:`pmlm.data.task_training_documents`), which must never see a validation or test sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SENTIMENT_LABELS = ("rotten", "fresh")  # class id = index
BIBLE_TEST_BOOKS = ("Ruth", "Ecclesiastes", "Jonah", "Mark", "Philippians", "James")
BIBLE_VALIDATION_BOOKS = ("Esther", "Micah", "Colossians", "Jude")
# the same books under their OSIS abbreviations, in case a corpus names books that way
BOOK_ALIASES = {"Eccl": "Ecclesiastes", "Phil": "Philippians", "Jas": "James", "Esth": "Esther",
                "Mic": "Micah", "Col": "Colossians"}
SPLITS = ("train", "validation", "test")


def hash_split(key: str) -> str:
    """``test`` for 10% of the keys, ``validation`` for another 10%, else ``train`` (md5, stable)."""
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def sentiment_splits(rows: Sequence[dict] | None = None,
                     labels: Sequence[str] = SENTIMENT_LABELS) -> dict[str, list[dict]]:
    """{split: [{"text": str, "label": int}]} with ``label`` the index of the row's class in ``labels``.

    ``rows`` are dicts with ``label`` and ``text``; default: :func:`pmlm.corpora.rotten_tomatoes`.
    """
    if rows is None:
        from pmlm.corpora import rotten_tomatoes
        rows = rotten_tomatoes()
    index = {name: i for i, name in enumerate(labels)}
    if len(index) < 2:
        raise ValueError(f"a classification task needs at least two classes, got {list(labels)}")
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for i, row in enumerate(rows):
        for key in ("label", "text"):
            if key not in row:
                raise ValueError(f"row {i} has no {key!r} column; columns: {sorted(row)}")
        if row["label"] not in index:
            raise ValueError(f"row {i} has label {row['label']!r}, which is not one of the classes "
                             f"{list(labels)}; pass labels=... or drop those rows")
        text = str(row["text"]).strip()
        if not text:
            raise ValueError(f"row {i} has an empty text")
        out[hash_split(text)].append({"text": text, "label": index[row["label"]]})
    if not out["train"] or not out["test"]:
        raise ValueError(f"too few rows ({len(rows)}) to fill the train and test splits")
    return out


def bible_splits(rows: Sequence[dict] | None = None, *,
                 test_books: Sequence[str] = BIBLE_TEST_BOOKS,
                 validation_books: Sequence[str] = BIBLE_VALIDATION_BOOKS) -> dict[str, list[dict]]:
    """{split: [{"source": KJV text, "target": WEB text, "ref": "Book c:v"}]}, held out by book.

    ``rows`` are dicts with ``book, chapter, verse, kjv, web``; default :func:`pmlm.corpora.bible_pairs`.
    Verses with an empty side are skipped (versification gaps: a verse that one edition lacks).
    """
    if rows is None:
        from pmlm.corpora import bible_pairs
        rows = bible_pairs()
    held = {b: "test" for b in test_books} | {b: "validation" for b in validation_books}
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    books = set()
    for i, row in enumerate(rows):
        missing = {"book", "kjv", "web"} - set(row)
        if missing:
            raise ValueError(f"row {i} lacks the columns {sorted(missing)}; columns: {sorted(row)}")
        source, target = str(row["kjv"]).strip(), str(row["web"]).strip()
        book = BOOK_ALIASES.get(row["book"], row["book"])
        books.add(book)
        if not source or not target:
            continue
        out[held.get(book, "train")].append(
            {"source": source, "target": target,
             "ref": f"{row['book']} {row.get('chapter', '?')}:{row.get('verse', '?')}"})
    unknown = sorted(set(held) - books)
    if unknown:
        raise ValueError(f"held-out books {unknown} are not in the corpus; its books: {sorted(books)[:8]}...")
    return out
