"""A corpus in memory: load, split, train the tokenizer, pack (sections 2.2 and 4.1).

:func:`prepare_corpus` does in one call what a small run needs: the documents of a source
(:mod:`pmlm.data.sources`), held out by whole documents (:mod:`pmlm.data.split`), a WordPiece
tokenizer trained on the training split only (:mod:`pmlm.tokenizer`), and both splits packed into
``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data.packing`). It holds the whole corpus in
Python lists, about 35 MB of memory per MB of text: for corpora beyond some tens of megabytes,
prepare a directory once (``python -m pmlm.prepare``) and train with ``--data``
(:mod:`pmlm.data.shards`), which gives the same examples from memory-mapped shards.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

from pmlm.data.packing import MIN_TOKENS, PackedDataset, pack_documents
from pmlm.data.sources import load_documents
from pmlm.data.split import split_documents
from pmlm.tokenizer import train_tokenizer


@dataclass
class Corpus:
    """Everything pre-training reads: the tokenizer, packed splits and the raw documents."""

    tokenizer: Tokenizer
    train: PackedDataset
    validation: PackedDataset
    train_documents: list[list[str]] | None
    validation_documents: list[list[str]] | None
    description: str
    fingerprint: str | None = None  # a prepared directory's identity (its shards' hashes); None in memory


def task_training_documents(sentences_per_document: int = 20) -> list[list[str]]:
    """The *training* text of the two bundled tasks as documents, for pre-training on it.

    Verses: one document per chapter and version (KJV and WEB apart), verses as paragraphs, from
    the training books only. Sentiment: the training sentences in corpus order, in documents of
    ``sentences_per_document`` (labels dropped). Validation and test text of either task is never
    included (:mod:`pmlm.corpora.splits`).
    """
    from pmlm.corpora.splits import bible_splits, sentiment_splits

    docs: dict[tuple, list[str]] = {}
    for row in bible_splits()["train"]:
        chapter = row["ref"].rsplit(":", 1)[0]
        docs.setdefault(("kjv", chapter), []).append(row["source"])
        docs.setdefault(("web", chapter), []).append(row["target"])
    sentences = [row["text"] for row in sentiment_splits()["train"]]
    reviews = [sentences[i:i + sentences_per_document]
               for i in range(0, len(sentences), sentences_per_document)]
    return list(docs.values()) + reviews


EXTRA_TEXT = {"tasks": (task_training_documents, "the training splits of the sentiment and verse tasks")}


def prepare_corpus(dataset: str | None = None, *, text_column: str | None = None,
                   doc_column: str | None = None, val_fraction: float = 0.05, seed: int = 0,
                   max_length: int = 128, vocab_size: int = 8192, tokenizer: Tokenizer | None = None,
                   max_documents: int | None = None, extra_text: str | None = None) -> Corpus:
    """Load, split, train the tokenizer on the training split (unless given) and pack both splits.

    ``extra_text="tasks"`` adds :func:`task_training_documents` to the *training* split only, after
    the split: validation stays the held-out part of ``dataset``, so its numbers compare with runs
    on ``dataset`` alone.
    """
    if extra_text is not None and extra_text not in EXTRA_TEXT:
        raise ValueError(f"extra_text must be None or one of {sorted(EXTRA_TEXT)}, got {extra_text!r}")
    docs, desc = load_documents(dataset, text_column, doc_column)
    if max_documents is not None:
        docs = docs[:max_documents]
    train_docs, val_docs = split_documents(docs, val_fraction, seed)
    if extra_text is not None:
        more, what = EXTRA_TEXT[extra_text]
        train_docs = train_docs + more()
        desc = f"{desc} + {what} (training only)"
    if tokenizer is None:
        tokenizer = train_tokenizer((p for d in train_docs for p in d), vocab_size=vocab_size)
    train = pack_documents(train_docs, tokenizer, max_length)
    validation = pack_documents(val_docs, tokenizer, max_length)
    for name, split in (("training", train), ("validation", validation)):
        if len(split) == 0:
            raise ValueError(
                f"{desc}: the {name} split gives no example of {max_length} tokens or fewer "
                f"(each needs at least {MIN_TOKENS} text tokens); the text is shorter than one example per split "
                "- give more text")
    return Corpus(tokenizer, train, validation, train_docs, val_docs, desc)


