"""Algorithm 1 and the 80/10/10 replacement: statistics over many draws, and clear errors."""

import random
from collections import Counter

import pytest
import torch

import pmlm
from pmlm.masking import random_non_special, replacement_tokens


def draw(num, n=128, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return [pmlm.sample_blocks(n, generator=g, **kw) for _ in range(num)]


def test_masked_share_and_block_lengths_follow_the_paper():
    # Algorithm 1 (section 3.1.2) on 128 maskable tokens, mean share ~16.5%, ~63% of blocks of length 1
    draws = draw(2000)
    shares = [sum(len(b) for b in blocks) / 128 for blocks in draws]
    lengths = Counter(len(b) for blocks in draws for b in blocks)
    total = sum(lengths.values())
    assert 0.15 <= min(shares) and max(shares) <= 0.15 + 6 / 128
    assert 0.160 < sum(shares) / len(shares) < 0.170
    assert 0.60 < lengths[1] / total < 0.67
    assert set(lengths) <= {1, 2, 3, 4, 5, 6}
    # spans 2..6 are uniform before the overlap rejection, which favours the shorter ones
    spans = [lengths[k] for k in range(2, 7)]
    assert all(a > b for a, b in zip(spans, spans[1:]))
    assert spans[-1] / sum(spans) > 0.1


def test_blocks_are_disjoint_contiguous_in_range_and_not_sorted():
    unsorted = 0
    for blocks in draw(500, n=50):
        flat = [p for b in blocks for p in b]
        assert len(flat) == len(set(flat))
        assert all(0 <= p < 50 for p in flat)
        assert all(b == list(range(b[0], b[0] + len(b))) for b in blocks)
        starts = [b[0] for b in blocks]
        unsorted += starts != sorted(starts)
    assert unsorted > 400  # the draw order is the factorization order, a random permutation


def test_never_masks_non_maskable_positions():
    maskable = [i % 5 != 0 for i in range(100)]
    for blocks in draw(300, n=100, maskable=maskable):
        assert all(maskable[p] for b in blocks for p in b)


def test_seeded_generator_reproduces_the_blocks():
    assert draw(5, seed=3) == draw(5, seed=3)
    assert draw(5, seed=3) != draw(5, seed=4)


def test_replacement_shares_are_80_10_10_and_never_special():
    rng = random.Random(0)
    special = [0, 1, 2, 3, 4, 5]
    originals = [rng.randrange(6, 50) for _ in range(20000)]
    shown = replacement_tokens(originals, mask_id=4, vocab_size=50, special_ids=special, rng=rng)
    masked = sum(s == 4 for s in shown) / len(shown)
    kept = sum(s == o for s, o in zip(shown, originals)) / len(shown)
    assert abs(masked - 0.8) < 0.015
    # a random draw equals the original 1 time in 44, so "kept" is 0.1 + 0.1/44
    assert abs(kept - (0.1 + 0.1 / 44)) < 0.01
    assert not any(s in special for s in shown if s != 4)


def test_random_replacement_is_uniform_over_non_special_ids():
    rng = random.Random(1)
    counts = Counter(random_non_special(rng, 10, [0, 3, 9]) for _ in range(14000))
    assert set(counts) == {1, 2, 4, 5, 6, 7, 8}
    assert max(counts.values()) / min(counts.values()) < 1.15


def test_collator_never_masks_or_draws_special_tokens(collator, real_ids, vocab):
    specials = {vocab[s] for s in ("[PAD]", "[UNK]", "[SOS]", "[EOS]", "[MASK]", "[P]")}
    for _ in range(50):
        batch = collator(real_ids)
        ctx = batch["step_ids"] == 0
        labelled = batch["ae_labels"] != -100
        original = torch.full_like(batch["input_ids"], -1)
        for b, ids in enumerate(real_ids):
            original[b, : len(ids)] = torch.tensor(ids)
        assert not any(int(t) in specials for t in batch["ae_labels"][labelled])
        changed = ctx & labelled & (batch["input_ids"] != vocab["[MASK]"]) & (batch["input_ids"] != original)
        assert not any(int(t) in specials for t in batch["input_ids"][changed])


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_tokens=0), "empty"),
    (dict(num_tokens=10, mask_ratio=0.0), "mask_ratio"),
    (dict(num_tokens=10, mask_ratio=1.0), "mask_ratio"),
    (dict(num_tokens=10, block_prob=1.5), "block_prob"),
    (dict(num_tokens=10, block_len=(3, 2)), "block_len"),
    (dict(num_tokens=10, maskable=[True] * 9), "maskable"),
])
def test_bad_sampler_arguments_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pmlm.sample_blocks(**kwargs)


@pytest.mark.parametrize("blocks, message", [
    ([[1, 2], [2, 3]], "overlap at position 2"),
    ([[1], []], "block 1 is empty"),
    ([[6]], "outside the sequence"),
    ([[-1]], "outside the sequence"),
])
def test_bad_blocks_fail_clearly(blocks, message):
    with pytest.raises(ValueError, match=message):
        pmlm.build_pmlm_example([7, 8, 9, 10, 11, 12], blocks, mask_id=1, pseudo_id=2, vocab_size=20)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mask_id=20, pseudo_id=2), "mask_id=20 is outside"),
    (dict(mask_id=1, pseudo_id=-1), "pseudo_id=-1 is outside"),
    (dict(mask_id=1, pseudo_id=1), "distinct"),
])
def test_bad_special_ids_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pmlm.build_pmlm_example([7, 8, 9], [[1]], vocab_size=20, **kwargs)


def test_empty_sequence_fails_clearly(collator):
    with pytest.raises(ValueError, match="empty"):
        pmlm.build_pmlm_example([], [], mask_id=1, pseudo_id=2)
    with pytest.raises(ValueError, match="empty sequence"):
        collator([[5, 6, 7], []])


def test_random_replacement_needs_the_vocabulary_size():
    with pytest.raises(ValueError, match="vocab_size"):
        pmlm.build_pmlm_example([7, 8, 9], [[1]], mask_id=1, pseudo_id=2)
