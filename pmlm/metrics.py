"""Validation metrics that mean what they say: ``[M]``-only scores and masked bits per character.

Two corrections to "accuracy over every labelled position" (what :mod:`pmlm.losses` reports for
training), both about what a prediction may see:

* **Only the positions shown as** ``[M]``. The 80/10/10 replacement of section 4.1 (BERT's) leaves
  10% of the masked positions showing their original token and 10% a random one. At a kept
  position the AE prediction can copy the token it reads; so can the PAR prediction of a ``[P]``,
  because a ``[P]`` attends the context and the context shows the original there (the rule of
  section 3.2 hides the originals of the *appended* copies, not the context's). Scores over all
  labelled positions thus mix prediction with copying. :func:`shown_as_mask` selects the rows
  whose position shows ``[M]`` in the context, for AE and PAR alike; each masked token has one AE
  row (its context position) and one PAR row (its ``[P]``), so both objectives are scored on the
  same tokens, and so is the unigram baseline beside them.
* **Bits per character.** Per-piece cross entropy depends on the vocabulary: with 2k pieces a word
  takes more, easier pieces than with 8k. Masked bits per character, the masked pieces' summed
  cross entropy in bits divided by the number of characters they spell, compares recipes with
  different tokenizers (:func:`bits_per_character`).

Beside them, **word accuracy**: top-1 accuracy on the ``[M]`` tokens whose piece is part of a word
(has a letter; :func:`word_pieces`), leaving punctuation out. At small scale a model first learns
to guess "," and "." where they belong, which lifts accuracy over all pieces without a single word
guessed; word accuracy says how many pieces of words it gets right (per piece, like the other
scores: a word of three pieces counts three times). Its unigram baseline always guesses the
training text's most frequent word piece (not its most frequent piece, often ",").

Choices where the paper is silent: a piece's characters are its text without WordPiece's ``##``
continuation marker; the space before a word is not counted (it is not predicted), special tokens
count 0 characters and are never labelled. Accuracy is top-1 per piece.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

IGNORE_INDEX = -100
LN2 = math.log(2.0)


def piece_characters(vocab: Mapping[str, int], special_tokens: set[str] = frozenset()) -> torch.Tensor:
    """(V,) long: how many characters of text each piece spells (``##`` stripped, specials 0).

    ``vocab`` maps piece -> id, as ``tokenizers.Tokenizer.get_vocab()`` returns it.
    """
    chars = torch.zeros(max(vocab.values()) + 1, dtype=torch.long)  # (V,)
    for piece, i in vocab.items():
        if piece not in special_tokens:
            chars[i] = len(piece[2:] if piece.startswith("##") else piece)
    return chars


def word_pieces(vocab: Mapping[str, int], special_tokens: set[str] = frozenset()) -> torch.Tensor:
    """(V,) bool: True for the pieces that spell part of a word (a letter in them; specials never)."""
    is_word = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)  # (V,)
    for piece, i in vocab.items():
        if piece not in special_tokens:
            is_word[i] = any(ch.isalpha() for ch in piece.removeprefix("##"))
    return is_word


def shown_as_mask(input_ids: torch.Tensor, position_ids: torch.Tensor, mask_id: int) -> torch.Tensor:
    """(B, L) bool: True where the context token at this row's position is ``[M]``.

    The context fills indices 0..n-1 with position ids 0..n-1 (:mod:`pmlm.layout`), and every
    appended ``[P]`` reuses the position of the token it stands for, so the context token that a
    row's position shows is ``input_ids[b, position_ids[b, r]]``: for an AE row its own token, for
    a PAR row the context token at the masked position.
    """
    shown = input_ids.gather(1, position_ids)  # (B, L): the context token at each row's position
    return shown == mask_id


def bits_per_character(nats: float, characters: float) -> float:
    """Summed cross entropy (nats) of some pieces over the characters they spell, in bits/char."""
    if characters <= 0:
        raise ValueError(f"bits per character needs a positive character count, got {characters}")
    return nats / LN2 / characters


def row_scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row cross entropy in nats (N,) float64 and top-1 correctness (N,) bool; logits (N, V)."""
    nats = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none")  # (N,)
    return nats, logits.argmax(-1) == labels


class MetricSums:
    """Running sums for one group of rows: nats, correct, count and characters; ``result()`` -> means."""

    def __init__(self) -> None:
        self.nats = self.correct = self.count = self.characters = 0.0

    def add(self, nats: torch.Tensor, correct: torch.Tensor, chars: torch.Tensor) -> None:
        """Add the rows of one batch: (N,) nats, (N,) bool correct, (N,) characters."""
        self.nats += float(nats.sum())
        self.correct += float(correct.sum())
        self.count += float(nats.numel())
        self.characters += float(chars.sum())

    def result(self) -> dict[str, float | None]:
        """``loss`` (mean nats per piece), ``acc``, ``bpc``, ``count``; None where there are no rows."""
        if not self.count:
            return {"loss": None, "acc": None, "bpc": None, "count": 0}
        return {"loss": self.nats / self.count, "acc": self.correct / self.count,
                "bpc": bits_per_character(self.nats, self.characters) if self.characters else None,
                "count": int(self.count)}
