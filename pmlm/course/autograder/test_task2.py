"""Task 2, the 80/10/10 replacement (section 4.1)."""

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import public_checks

pytestmark = pytest.mark.task2


@pytest.mark.points(4)
def test_public_checks():
    from pmlm.masking import replacement_tokens
    public_checks.replacement_tokens(replacement_tokens)


@pytest.mark.points(3)
@pytest.mark.parametrize("probs", [(0.5, 0.3, 0.2), (0.2, 0.2, 0.6), (0.0, 0.5, 0.5)])
def test_other_probabilities(probs):
    from pmlm.masking import replacement_tokens
    out = replacement_tokens([50] * 30000, mask_id=1, vocab_size=400, replace_probs=probs, special_ids=[0],
                             rng=random.Random(9))
    shares = (out.count(1) / len(out), sum(t not in (1, 50) for t in out) / len(out), out.count(50) / len(out))
    assert all(abs(a - b) < 0.015 for a, b in zip(shares, probs)), \
        f"replace_probs={probs} gave shares [M] {shares[0]:.3f}, random {shares[1]:.3f}, kept {shares[2]:.3f}"


@pytest.mark.points(2)
@given(vocab=st.integers(6, 60), specials=st.sets(st.integers(0, 5), max_size=4), seed=st.integers(0, 10**6))
def test_random_tokens_avoid_specials(vocab, specials, seed):
    from pmlm.masking import replacement_tokens
    mask_id = 5
    out = replacement_tokens([vocab - 1] * 200, mask_id=mask_id, vocab_size=vocab, replace_probs=(0.0, 1.0, 0.0),
                             special_ids=sorted(specials), rng=random.Random(seed))
    bad = [t for t in out if t in specials or t == mask_id or not 0 <= t < vocab]
    assert not bad, f"random replacement {bad[0]} is special, [M] or outside the vocabulary of {vocab}"


@pytest.mark.points(1)
def test_decided_per_token():
    """Independent per token: a run of the same original is not replaced all alike."""
    from pmlm.masking import replacement_tokens
    runs = [tuple(replacement_tokens([8] * 3, mask_id=1, vocab_size=50, rng=random.Random(s))) for s in range(400)]
    patterns = Counter(tuple("M" if t == 1 else "K" if t == 8 else "R" for t in r) for r in runs)
    assert patterns[("M", "M", "M")] / 400 < 0.62, "tokens are replaced independently (0.8^3 = 0.51 all [M])"
    assert len(patterns) >= 10, f"only {len(patterns)} of 27 patterns occur: the choice is not made per token"


@pytest.mark.points(1)
def test_bad_probabilities():
    from pmlm.masking import replacement_tokens
    with pytest.raises(ValueError):
        replacement_tokens([1], mask_id=0, vocab_size=5, replace_probs=(0.5, 0.5, 0.5), rng=random.Random(0))
