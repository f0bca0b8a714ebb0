"""Holding out validation text: whole documents, drawn with a seed (section 4.1 is silent on it).

Validation takes *whole documents*, drawn in a seeded random order until it holds ``val_fraction``
of the characters, so no paragraph, and no sentence, is ever cut between the two splits: validation
measures text the model has not seen, not a sentence whose neighbours it trained on.

The draw needs only each document's size (:func:`validation_indices`), so a streamed corpus
(:mod:`pmlm.prepare`) holds out exactly the documents the in-memory path does
(:func:`split_documents`), after one pass that counts characters.

Choices, and why: at least one document goes to validation and at least one stays for training;
a corpus of a single document is first cut into contiguous chunks (of paragraphs, else of words),
which then act as documents.
"""

from __future__ import annotations

import random


def validation_indices(sizes: list[int], val_fraction: float, seed: int) -> set[int]:
    """Indices of the documents held out for validation, from the documents' character counts.

    Documents are drawn in a seeded random order (``random.Random(seed).shuffle``) until the
    held-out ones hold ``val_fraction`` of the characters; the last of the order always trains.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if len(sizes) < 2:
        raise ValueError("the text is too short to split into training and validation parts")
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    val, val_chars, total = set(), 0, sum(sizes)
    for i in order[:-1]:  # leave at least one document for training
        if val and val_chars >= val_fraction * total:
            break
        val.add(i)
        val_chars += sizes[i]
    return val


def document_chars(doc: list[str]) -> int:
    return sum(len(p) for p in doc)


def split_documents(docs: list[list[str]], val_fraction: float = 0.05,
                    seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """Train and validation documents: validation takes whole documents, never parts of one."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    docs = [d for d in docs if any(p.strip() for p in d)]
    if not docs:
        raise ValueError("no text to split: every document is blank")
    if len(docs) == 1:
        docs = single_document_parts(docs[0], val_fraction)
    val = validation_indices([document_chars(d) for d in docs], val_fraction, seed)
    train_docs = [d for i, d in enumerate(docs) if i not in val]
    val_docs = [d for i, d in enumerate(docs) if i in val]
    return train_docs, val_docs


def single_document_parts(doc: list[str], val_fraction: float) -> list[list[str]]:
    """The parts a lone document is cut into before the split (``round(1 / val_fraction)``)."""
    return contiguous_chunks(doc, max(2, round(1 / val_fraction)))


def contiguous_chunks(paragraphs: list[str], parts: int) -> list[list[str]]:
    """Cut one document into up to ``parts`` contiguous pieces (of paragraphs, else of words)."""
    if len(paragraphs) == 1:
        words = paragraphs[0].split()
        step = max(1, -(-len(words) // parts))
        return [[" ".join(words[i:i + step])] for i in range(0, len(words), step)]
    step = max(1, -(-len(paragraphs) // parts))
    return [paragraphs[i:i + step] for i in range(0, len(paragraphs), step)]
