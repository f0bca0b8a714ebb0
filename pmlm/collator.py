"""Batches of PMLM examples: sampling, layout and attention masks for a list of sequences.

:class:`PMLMCollator` is what a ``DataLoader`` calls. Per sequence it runs Algorithm 1
(:func:`pmlm.sample_blocks`), the 80/10/10 replacement and the layout of
:mod:`pmlm.layout`; then it pads the (L,) fields to the longest example and builds the (B, L, L)
attention masks for the whole batch at once from the step ids (:func:`pmlm.pmlm_attention_mask`,
tensor operations only).

Variants of the paper's Table 6:

* ``objective="ae"``: BERT's masked LM, no pseudo masks appended (L = n);
* ``objective="par"`` or ``"ae+par"``: pseudo masks and original copies appended (L = n + 2m, or
  less the last step's copies); the context still shows ``[M]`` at masked positions, otherwise the
  context would leak the originals to the ``[P]``s;
* ``factorization="token"`` gives the AR variants (one token per step), ``"block"`` the paper's.

Choices: special tokens (``special_ids``, which include ``[PAD]``) are never masked; the segment id
switches from 0 to 1 after the first ``eos_id`` (``[SOS] S1 [EOS] S2 [EOS]``); padding is on the
right and is attended by nobody. Without a ``generator`` the collator draws from torch's global
RNG, which a ``DataLoader`` seeds differently in each worker; a shared generator would make every
worker draw the same masks.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from pmlm.attention import pmlm_attention_mask
from pmlm.layout import IGNORE_INDEX, check_ids, corrupt_and_lay_out
from pmlm.masking import python_rng, sample_blocks

OBJECTIVES = ("ae", "par", "ae+par")
PAD_VALUES = {"input_ids": None, "position_ids": 0, "segment_ids": 0, "step_ids": 0,
              "ae_labels": IGNORE_INDEX, "par_labels": IGNORE_INDEX}


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


class PMLMCollator:
    """Turn a list of token-id sequences into a padded PMLM batch.

    Returns a dict of tensors: ``input_ids``, ``position_ids``, ``segment_ids``, ``step_ids``,
    ``ae_labels``, ``par_labels``, ``valid`` (B, L) and ``attention_mask`` (B, L, L) bool,
    True = query row may attend key column.
    """

    def __init__(
        self,
        *,
        mask_id: int,
        pseudo_id: int,
        pad_id: int,
        vocab_size: int,
        special_ids: Sequence[int] = (),
        eos_id: int | None = None,
        mask_ratio: float = 0.15,  # section 4.1
        block_prob: float = 0.4,  # Algorithm 1: a span with probability 0.4 ...
        block_len: tuple[int, int] = (2, 6),  # ... of length uniform in 2..6
        replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),  # [M] / random / unchanged
        factorization: str = "block",  # "block" (paper) or "token" (AR variants)
        objective: str = "ae+par",  # "ae" appends nothing
        drop_last_originals: bool = True,  # nobody attends them: save the positions
        max_length: int | None = None,  # refuse longer sequences (the model's max_positions)
        generator: torch.Generator | None = None,
    ) -> None:
        check_ids(mask_id, pseudo_id, vocab_size)
        check_objective(objective)
        if factorization not in ("block", "token"):
            raise ValueError(f"factorization must be 'block' or 'token', got {factorization!r}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id={pad_id} is outside the vocabulary of {vocab_size} ids")
        self.mask_id, self.pseudo_id, self.pad_id = mask_id, pseudo_id, pad_id
        self.vocab_size = vocab_size
        self.special_ids = sorted({int(s) for s in special_ids} | {mask_id, pseudo_id, pad_id})
        self._special = set(self.special_ids)
        self.eos_id = eos_id
        self.sample_kwargs = dict(mask_ratio=mask_ratio, block_prob=block_prob, block_len=block_len)
        sample_blocks(1, **self.sample_kwargs)  # validates the sampling arguments now
        self.replace_probs = replace_probs
        self.factorization = factorization
        self.objective = objective
        self.drop_last_originals = drop_last_originals
        self.max_length = max_length
        self.generator = generator

    def segments(self, ids: list[int]) -> list[int]:
        if self.eos_id is None or self.eos_id not in ids:
            return [0] * len(ids)
        first = ids.index(self.eos_id)
        return [0] * (first + 1) + [1] * (len(ids) - first - 1)

    def example(self, ids: list[int]) -> dict[str, torch.Tensor]:
        """The (L,) fields of one example: blocks, factorization, replacement and layout."""
        n = len(ids)
        if n == 0:
            raise ValueError("empty sequence in the batch: every example needs at least one token")
        if self.max_length is not None and n > self.max_length:
            raise ValueError(f"sequence of {n} tokens is longer than max_length={self.max_length}; "
                             "truncate it or raise the model's max_positions")
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary of {self.vocab_size} ids")
        maskable = [t not in self._special for t in ids]
        blocks = sample_blocks(n, maskable=maskable, generator=self.generator, **self.sample_kwargs)
        fields_, _ = corrupt_and_lay_out(
            ids, blocks, rng=python_rng(self.generator), mask_id=self.mask_id,
            pseudo_id=self.pseudo_id, vocab_size=self.vocab_size, replace_probs=self.replace_probs,
            special_ids=self.special_ids, segment_ids=self.segments(ids),
            factorization=self.factorization, append=self.objective != "ae",
            drop_last_originals=self.drop_last_originals)
        return fields_

    def __call__(self, sequences: Sequence[Sequence[int] | torch.Tensor | dict]) -> dict[str, torch.Tensor]:
        if len(sequences) == 0:
            raise ValueError("cannot collate an empty list of sequences")
        examples = [self.example(token_ids(seq["input_ids"] if isinstance(seq, dict) else seq, i))
                    for i, seq in enumerate(sequences)]
        return pad_and_mask(examples, self.pad_id)


def token_ids(seq, index: int = 0) -> list[int]:
    """One sequence of token ids as a list of Python ints, refusing what only looks like one: a
    string (tokenize it first), floats or bools (``int(6.5)`` would silently become 6)."""
    if isinstance(seq, (str, bytes)):
        raise ValueError(f"sequence {index} is a string ({seq[:20]!r}), not token ids: "
                         "encode it with the tokenizer first")
    if hasattr(seq, "dtype"):  # a tensor or a numpy array: one check of its dtype
        kind = str(seq.dtype).rsplit(".", 1)[-1]
        if "int" not in kind:
            raise ValueError(f"sequence {index} holds {kind} values, not token ids: pass integers")
        return [int(t) for t in seq.tolist()]
    ids = []
    for t in seq:
        if isinstance(t, bool) or not hasattr(t, "__index__"):
            raise ValueError(f"sequence {index} holds the {type(t).__name__} {t!r}, not a token id: "
                             "pass integers")
        ids.append(operator.index(t))
    return ids


def pad_and_mask(examples: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad (L,) fields to (B, L) and build the (B, L, L) attention masks in one go."""
    lengths = torch.tensor([e["input_ids"].shape[0] for e in examples])
    L = int(lengths.max())
    batch = {}
    for name, pad in PAD_VALUES.items():
        value = pad_id if pad is None else pad
        out = torch.full((len(examples), L), value, dtype=torch.long)  # (B, L)
        for b, e in enumerate(examples):
            out[b, : e[name].shape[0]] = e[name]
        batch[name] = out
    batch["valid"] = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)  # (B, L) False at padding
    batch["attention_mask"] = pmlm_attention_mask(batch["step_ids"], batch["valid"])  # (B, L, L)
    return batch
