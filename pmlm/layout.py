"""Pseudo masks and position reuse: one PMLM training example (section 3.2, Figs. 1, 4, 5).

Given the n context tokens and the blocks in factorization order, the example is laid out as::

    context (n tokens, masked positions shown as [M] / random / unchanged)
    then for each step i:  one [P] per token of the block,  then a copy of each original token

and every appended token carries the *position id of the token it stands for* (position reuse),
so the model sees ``[M]``, ``[P]`` and the original copy of x4 all at position 4. The paper's worked
example (x1..x6, masked x2, x4, x5, order {x4, x5} then {x2}), with positions from 0 here::

    token : x1 [M] x3 [M] [M] x6 [P] [P] x4 x5 [P] x2
    pos   :  0   1  2   3   4  5   3   4  3  4   1  1
    step  :  0   0  0   0   0  0  -1  -1 +1 +1  -2 +2

Labels: ``ae_labels`` holds the original token at each masked *context* position (AE, Eq. 4),
``par_labels`` the original token at each ``[P]`` (PAR, Eq. 5); -100 elsewhere, as PyTorch's
cross entropy ignores.

Choices where the paper is silent:

* The last step's original copies are attended by nobody (pmlm/attention.py), so they change no
  output. :func:`build_pmlm_example` keeps them by default, to match the paper's figure; pass
  ``drop_last_originals=True`` (what :class:`pmlm.PMLMCollator` does for training) to save 2-3
  positions per example.
* Segment ids of appended tokens are copied from the tokens they stand for, like positions.
* ``factorization="token"`` (the AR rows of Table 6) keeps the sampled masked set but makes every
  masked token its own step, in a random order over all masked tokens (an XLNet-style permutation);
  ``"block"`` is the paper's blockwise factorization.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from pmlm.attention import pmlm_attention_mask
from pmlm.masking import check_blocks, python_rng, replacement_tokens

IGNORE_INDEX = -100  # label value that the losses skip


@dataclass
class PMLMExample:
    """One laid-out example; every tensor is (L,) but ``attention_mask`` (L, L), True = may attend."""

    input_ids: torch.Tensor  # (L,) long: context with [M]/random/kept, then [P]s and originals per step
    position_ids: torch.Tensor  # (L,) long: 0..n-1 for the context, reused for appended tokens
    attention_mask: torch.Tensor  # (L, L) bool: True = query row may attend key column
    ae_labels: torch.Tensor  # (L,) long: original token at masked context positions, -100 elsewhere
    par_labels: torch.Tensor  # (L,) long: original token at each [P], -100 elsewhere
    step_ids: torch.Tensor  # (L,) long: 0 context, -i [P] of step i, +i original of step i
    segment_ids: torch.Tensor  # (L,) long: 0 for S1, 1 for S2, copied for appended tokens
    steps: list[list[int]] = field(default_factory=list)  # masked positions of each step, in order
    num_context: int = 0  # n

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def factorize(blocks: Sequence[Sequence[int]], factorization: str, rng: random.Random) -> list[list[int]]:
    """Factorization steps from blocks: the blocks themselves, or one masked token per step."""
    if factorization == "block":
        return [sorted(int(p) for p in b) for b in blocks]
    if factorization == "token":
        tokens = [int(p) for b in blocks for p in b]
        rng.shuffle(tokens)
        return [[p] for p in tokens]
    raise ValueError(f"factorization must be 'block' or 'token', got {factorization!r}")


def layout_1d(
    token_ids: Sequence[int],
    steps: Sequence[Sequence[int]],
    *,
    context_ids: Sequence[int],
    pseudo_id: int,
    segment_ids: Sequence[int] | None = None,
    append: bool = True,
    drop_last_originals: bool = False,
) -> dict[str, torch.Tensor]:
    """The (L,) fields of an example, given the context as shown (after replacement).

    ``append=False`` gives the plain masked-LM layout (AE only, L = n): no [P], no copies.
    """
    n = len(token_ids)
    seg = list(segment_ids) if segment_ids is not None else [0] * n
    ### BEGIN SOLUTION
    ids, pos, segs, step_ids = list(context_ids), list(range(n)), list(seg), [0] * n
    ae = [IGNORE_INDEX] * n
    for block in steps:
        for p in block:
            ae[p] = int(token_ids[p])
    par = [IGNORE_INDEX] * n
    if append:
        for i, block in enumerate(steps, start=1):
            originals = [int(token_ids[p]) for p in block]
            ids += [pseudo_id] * len(block)  # the [P]s of step i ...
            par += originals  # ... predict the originals of step i
            pos += list(block)
            segs += [seg[p] for p in block]
            step_ids += [-i] * len(block)
            if drop_last_originals and i == len(steps):
                continue
            ids += originals  # the original copies, visible to later steps
            par += [IGNORE_INDEX] * len(block)
            pos += list(block)
            segs += [seg[p] for p in block]
            step_ids += [i] * len(block)
    ae += [IGNORE_INDEX] * (len(ids) - n)
    ### END SOLUTION
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return {"input_ids": as_long(ids), "position_ids": as_long(pos), "segment_ids": as_long(segs),
            "step_ids": as_long(step_ids), "ae_labels": as_long(ae), "par_labels": as_long(par)}


def check_ids(mask_id: int, pseudo_id: int, vocab_size: int | None) -> None:
    """ValueError if the mask or pseudo-mask id is negative or outside the vocabulary."""
    for name, value in (("mask_id", mask_id), ("pseudo_id", pseudo_id)):
        if value is None or int(value) < 0 or (vocab_size is not None and int(value) >= vocab_size):
            raise ValueError(f"{name}={value} is outside the vocabulary of {vocab_size} ids; "
                             "pass the id the tokenizer gives to the special token")
    if mask_id == pseudo_id:
        raise ValueError(f"mask_id and pseudo_id are both {mask_id}; [M] and [P] need distinct ids "
                         "(a BERT vocabulary has one [MASK]: add a [P] token to pre-train with it)")


def build_pmlm_example(
    token_ids: Sequence[int] | torch.Tensor,
    blocks: Sequence[Sequence[int]],
    *,
    mask_id: int,
    pseudo_id: int,
    vocab_size: int | None = None,
    replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),
    special_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
    segment_ids: Sequence[int] | None = None,
    factorization: str = "block",
    drop_last_originals: bool = False,
) -> PMLMExample:
    """Lay out one PMLM example from the context tokens and the blocks in factorization order.

    Never changes ``token_ids`` in place. See the module docstring for the layout.
    """
    ids = [int(t) for t in (token_ids.tolist() if torch.is_tensor(token_ids) else token_ids)]
    n = len(ids)
    if n == 0:
        raise ValueError("token_ids is empty: a PMLM example needs at least one context token")
    check_ids(mask_id, pseudo_id, vocab_size)
    if vocab_size is not None:
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary of {vocab_size} ids")
    if segment_ids is not None and len(segment_ids) != n:
        raise ValueError(f"segment_ids has {len(segment_ids)} entries for {n} tokens")
    check_blocks(blocks, n)
    fields_, steps = corrupt_and_lay_out(
        ids, blocks, rng=python_rng(generator), mask_id=mask_id, pseudo_id=pseudo_id,
        vocab_size=vocab_size, replace_probs=replace_probs,
        special_ids=list(special_ids) + [pseudo_id], segment_ids=segment_ids,
        factorization=factorization, drop_last_originals=drop_last_originals)
    return PMLMExample(attention_mask=pmlm_attention_mask(fields_["step_ids"]), steps=steps,
                       num_context=n, **fields_)


def corrupt_and_lay_out(
    ids: list[int],
    blocks: Sequence[Sequence[int]],
    *,
    rng: random.Random,
    mask_id: int,
    pseudo_id: int,
    vocab_size: int | None,
    replace_probs: tuple[float, float, float],
    special_ids: Sequence[int],
    segment_ids: Sequence[int] | None,
    factorization: str,
    append: bool = True,
    drop_last_originals: bool = False,
) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
    """Factorize the blocks, replace the masked context tokens 80/10/10, and lay the example out.

    Shared by :func:`build_pmlm_example` and :class:`pmlm.PMLMCollator`; returns the (L,) fields
    and the factorization steps.
    """
    steps = factorize(blocks, factorization, rng)
    masked = [p for block in steps for p in block]
    context = list(ids)
    shown = replacement_tokens([ids[p] for p in masked], mask_id=mask_id, vocab_size=vocab_size,
                               replace_probs=replace_probs, special_ids=special_ids, rng=rng)
    for p, tok in zip(masked, shown):
        context[p] = tok
    fields_ = layout_1d(ids, steps, context_ids=context, pseudo_id=pseudo_id, segment_ids=segment_ids,
                        append=append, drop_last_originals=drop_last_originals)
    return fields_, steps
