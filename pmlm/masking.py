"""Blockwise masking and the factorization order (Algorithm 1, section 3.1.2 of the paper).

Algorithm 1 draws blocks until 15% of the tokens are masked::

    repeat
        p = uniform start position
        l = uniform in {2..6} with probability 0.4, else 1
        if none of x[p .. p+l-1] is masked yet: M.append({p .. p+l-1})
    until total masked >= 15% of |x|

The order in which the blocks are drawn *is* the factorization order: each block is one step of
the partially autoregressive (PAR) objective, so the list we return is already a random
permutation of the blocks (one order per example).

Choices where the paper is silent (ours, documented here and tested in ``tests/test_masking.py``):

* ``|x|`` counts only *maskable* tokens: special tokens and padding are never masked.
* A block is rejected, not clipped, when it runs past the end of the sequence or touches a
  non-maskable token; "already masked" means any overlap. Rejection favours short blocks, so on
  128 maskable tokens about 63% of the accepted blocks have length 1 and the mean masked share is
  about 16.5% (the loop stops at the first draw that reaches 15%).
* The start position is drawn uniformly among the maskable positions.
* Randomness: one draw from the torch ``generator`` (or torch's global RNG) seeds a Python
  ``random.Random``, so a seeded generator reproduces the blocks and a DataLoader worker, whose
  global RNG torch seeds per worker, draws its own.

The 80/10/10 replacement of section 4.1 (``[M]`` / random token / unchanged) is decided per masked
token by :func:`replacement_tokens`; random replacements are never special tokens.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch


def python_rng(generator: torch.Generator | None) -> random.Random:
    """A ``random.Random`` seeded by one draw from ``generator`` (torch's global RNG if None)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return random.Random(seed)


def sample_blocks(
    num_tokens: int,
    *,
    mask_ratio: float = 0.15,
    block_prob: float = 0.4,
    block_len: tuple[int, int] = (2, 6),
    maskable: Sequence[bool] | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Algorithm 1: blocks of contiguous positions, in factorization order (the order drawn).

    Args:
        num_tokens: length n of the sequence.
        mask_ratio: stop once at least this share of the maskable tokens is masked; in (0, 1).
        block_prob: probability that a draw is a span of length uniform in ``block_len``
            (otherwise a single token).
        block_len: inclusive range of span lengths, the paper's (2, 6).
        maskable: optional n bools; False marks special tokens and padding, never masked.
        generator: a ``torch.Generator`` for reproducible draws.

    Returns:
        A list of blocks, each a sorted list of positions; blocks are disjoint and non-empty.
    """
    if num_tokens <= 0:
        raise ValueError(f"cannot mask an empty sequence (num_tokens={num_tokens})")
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}")
    if not 0.0 <= block_prob <= 1.0:
        raise ValueError(f"block_prob must lie in [0, 1], got {block_prob}")
    lo, hi = block_len
    if not 1 <= lo <= hi:
        raise ValueError(f"block_len must be (lo, hi) with 1 <= lo <= hi, got {block_len}")
    if maskable is None:
        maskable = [True] * num_tokens
    else:
        maskable = [bool(m) for m in maskable]
        if len(maskable) != num_tokens:
            raise ValueError(f"maskable has {len(maskable)} entries for {num_tokens} tokens")

    candidates = [i for i, m in enumerate(maskable) if m]
    if not candidates:
        return []
    rng = python_rng(generator)
    ### BEGIN SOLUTION
    target = mask_ratio * len(candidates)
    free = list(maskable)  # free[i]: maskable and not masked yet
    blocks: list[list[int]] = []
    masked = 0
    while masked < target:
        p = candidates[rng.randrange(len(candidates))]
        length = rng.randint(lo, hi) if rng.random() < block_prob else 1
        end = p + length
        if end > num_tokens or not all(free[p:end]):
            continue  # runs past the end, overlaps a masked block or touches a special token
        for i in range(p, end):
            free[i] = False
        blocks.append(list(range(p, end)))
        masked += length
    ### END SOLUTION
    return blocks


def check_blocks(blocks: Sequence[Sequence[int]], num_tokens: int) -> None:
    """Raise a ValueError that names the problem if ``blocks`` are empty, overlap or leave [0, n)."""
    seen: dict[int, int] = {}
    for step, block in enumerate(blocks):
        if len(block) == 0:
            raise ValueError(f"block {step} is empty; every factorization step needs >= 1 position")
        for pos in block:
            if not isinstance(pos, int) and not (torch.is_tensor(pos) and pos.dim() == 0):
                raise ValueError(f"block {step} holds {pos!r}; positions must be integers")
            pos = int(pos)
            if not 0 <= pos < num_tokens:
                raise ValueError(
                    f"block {step} holds position {pos}, outside the sequence of {num_tokens} tokens")
            if pos in seen:
                raise ValueError(
                    f"blocks overlap at position {pos} (blocks {seen[pos]} and {step}); "
                    "each position may be masked once")
            seen[pos] = step


def random_non_special(rng: random.Random, vocab_size: int, excluded: Sequence[int]) -> int:
    """A token id drawn uniformly from [0, vocab_size) without the ``excluded`` ids.

    Draw r among the ``vocab_size - k`` allowed ids, then step over each excluded id at or below
    it, in increasing order: e.g. V=6, excluded (0, 2): r=0 -> 1, r=1 -> 3, r=3 -> 5.
    """
    r = rng.randrange(vocab_size - len(excluded))
    for s in excluded:  # sorted, unique
        if r >= s:
            r += 1
    return r


def replacement_tokens(
    originals: Sequence[int],
    *,
    mask_id: int,
    vocab_size: int | None,
    replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),
    special_ids: Sequence[int] = (),
    rng: random.Random,
) -> list[int]:
    """What the context shows at each masked position: ``[M]``, a random token or the original.

    Decided independently per token with probabilities ``replace_probs`` (section 4.1: 80/10/10).
    Random tokens are drawn from the vocabulary without ``special_ids`` and ``mask_id``.
    """
    p_mask, p_random, p_keep = replace_probs
    if min(replace_probs) < 0 or not math.isclose(p_mask + p_random + p_keep, 1.0, abs_tol=1e-6):
        raise ValueError(f"replace_probs must be three non-negative numbers summing to 1, got {replace_probs}")
    excluded = sorted({int(s) for s in special_ids} | {mask_id})
    if p_random > 0:
        if vocab_size is None:
            raise ValueError("vocab_size is needed to draw random replacement tokens "
                             "(or pass replace_probs with a zero random share)")
        if len(excluded) >= vocab_size:
            raise ValueError("every vocabulary id is special: no token is left to draw at random")
    ### BEGIN SOLUTION
    out = []
    for tok in originals:
        u = rng.random()
        if u < p_mask:
            out.append(mask_id)
        elif u < p_mask + p_random:
            out.append(random_non_special(rng, vocab_size, excluded))
        else:
            out.append(int(tok))
    ### END SOLUTION
    return out
