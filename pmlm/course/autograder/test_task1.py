"""Task 1, Algorithm 1 (section 3.1.2): blockwise masking."""

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import public_checks

pytestmark = pytest.mark.task1


@pytest.mark.points(5)
def test_public_checks():
    from pmlm.masking import sample_blocks
    public_checks.sample_blocks(sample_blocks)


@pytest.mark.points(4)
@given(n=st.integers(1, 300), ratio=st.floats(0.05, 0.6), block_prob=st.floats(0.0, 1.0),
       seed=st.integers(0, 10**6), holes=st.integers(0, 5))
def test_invariants_on_random_inputs(n, ratio, block_prob, seed, holes):
    from pmlm.masking import sample_blocks
    maskable = [(i % 7) >= holes for i in range(n)]  # up to 5 of every 7 positions are special
    blocks = sample_blocks(n, mask_ratio=ratio, block_prob=block_prob, maskable=maskable,
                           generator=torch.Generator().manual_seed(seed))
    flat = [p for b in blocks for p in b]
    assert len(flat) == len(set(flat)), f"blocks overlap (n={n}, seed={seed}): {blocks}"
    assert all(maskable[p] for p in flat), f"a non-maskable position was masked (n={n}, seed={seed})"
    assert all(b == list(range(b[0], b[0] + len(b))) for b in blocks), f"a block is not contiguous: {blocks}"
    assert all(len(b) == 1 or 2 <= len(b) <= 6 for b in blocks), f"block lengths 1 or 2..6 only: {blocks}"
    target = ratio * sum(maskable)
    if sum(maskable):
        assert len(flat) >= target, f"masked {len(flat)} < {ratio:.2f} x {sum(maskable)} maskable tokens"
        assert len(flat) - len(blocks[-1]) < target, "the loop must stop at the first block that reaches the ratio"


@pytest.mark.points(4)
def test_sampler_statistics():
    """Accepted lengths follow the draw (60% single, 40% uniform spans 2..6) thinned by rejection."""
    from pmlm.masking import sample_blocks
    g = torch.Generator().manual_seed(123)
    lengths, shares = Counter(), []
    for _ in range(1500):
        blocks = sample_blocks(128, generator=g)
        lengths.update(len(b) for b in blocks)
        shares.append(sum(map(len, blocks)) / 128)
    total = sum(lengths.values())
    single = lengths[1] / total
    assert 0.59 < single < 0.67, f"share of one-token blocks {single:.3f}; Algorithm 1 on 128 tokens gives about 0.63"
    spans = [lengths[k] / total for k in range(2, 7)]
    assert all(0.035 < s < 0.12 for s in spans), f"span lengths 2..6 drawn uniformly (then thinned); shares {spans}"
    assert spans[0] > spans[-1], "longer spans are rejected more often than short ones"
    mean_share = sum(shares) / len(shares)
    assert 0.155 < mean_share < 0.175, f"mean masked share {mean_share:.3f}; expected about 0.165 (stops at >= 15%)"


@pytest.mark.points(1)
def test_start_positions_cover_the_sequence():
    from pmlm.masking import sample_blocks
    g = torch.Generator().manual_seed(5)
    hits = Counter(p for _ in range(4000) for b in sample_blocks(40, generator=g) for p in b)
    assert set(hits) == set(range(40)), "every position can be masked"
    inner = [hits[p] for p in range(6, 34)]  # away from the ends, where spans are rejected more often
    mean = sum(inner) / len(inner)
    assert all(abs(h - mean) < 0.15 * mean for h in inner), f"start positions are drawn unevenly: masked counts {inner}"


@pytest.mark.points(1)
@pytest.mark.parametrize("bad", [dict(num_tokens=0), dict(num_tokens=10, mask_ratio=0.0),
                                 dict(num_tokens=10, mask_ratio=1.5), dict(num_tokens=10, block_len=(3, 2))])
def test_bad_input(bad):
    from pmlm.masking import sample_blocks
    with pytest.raises(ValueError):
        sample_blocks(**bad)
