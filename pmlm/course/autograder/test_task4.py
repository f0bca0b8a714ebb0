"""Task 4, the attention rule (section 3.2, Figs. 4 and 5): table, leaks, one pass = recomputation."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import oracles
import public_checks
from helpers import random_example, tiny_model

pytestmark = pytest.mark.task4


@pytest.mark.points(5)
def test_public_checks():
    from pmlm.attention import may_attend
    public_checks.may_attend(may_attend)


def describe(q: int, k: int) -> str:
    kind = lambda s: "context" if s == 0 else f"[P] of step {-s}" if s < 0 else f"original of step {s}"  # noqa: E731
    return f"a {kind(q)} attending a {kind(k)}"


@pytest.mark.points(5)
@given(st.lists(st.integers(-6, 6), min_size=1, max_size=40))
def test_random_step_ids_against_the_rule_table(step_ids):
    from pmlm.attention import pmlm_attention_mask
    got = pmlm_attention_mask(torch.tensor(step_ids)).tolist()
    want = oracles.reference_attention_mask(step_ids)
    for i, (g_row, w_row) in enumerate(zip(got, want)):
        for j, (g, w) in enumerate(zip(g_row, w_row)):
            assert g == w, f"{describe(step_ids[i], step_ids[j])}: the rule says {w}, yours {g}"


@pytest.mark.points(2)
def test_padding_is_seen_by_nobody():
    from pmlm.attention import pmlm_attention_mask
    sid = torch.tensor([[0, 0, -1, 1, 0], [0, -1, 1, 0, 0]])
    valid = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    m = pmlm_attention_mask(sid, valid)
    assert not m[0, :4, 4].any() and not m[1, :3, 3:].any(), "a padding key is attended by a real token"
    assert m[0, 4, 4] and m[1, 3, 3], "a padding query attends itself (no empty softmax row)"


@pytest.mark.points(5)
@pytest.mark.parametrize("seed", range(6))
def test_no_leak_by_perturbation(seed):
    """Change the originals of step i and later: no [P] of step <= i and no context output may move."""
    from pmlm.attention import pmlm_attention_mask
    model = tiny_model(seed)
    ex = random_example(seed)
    sid = ex.step_ids
    base = model(ex.input_ids[None], ex.position_ids[None], pmlm_attention_mask(sid)[None], ex.segment_ids[None])[0]
    for i in range(1, int(sid.max()) + 1):
        changed = ex.input_ids.clone()
        later = sid >= i
        changed[later] = (changed[later] + 7) % 35 + 5
        out = model(changed[None], ex.position_ids[None], pmlm_attention_mask(sid)[None], ex.segment_ids[None])[0]
        rows = (sid == 0) | ((sid < 0) & (sid >= -i))
        moved = (out[rows] - base[rows]).abs().amax(-1)
        assert moved.max() < 1e-4, (f"changing the originals of steps >= {i} changed the output of a "
                                    f"{'[P] of step ' + str(-int(sid[rows][moved.argmax()])) if sid[rows][moved.argmax()] < 0 else 'context token'}"
                                    f": {'explicit' if sid[rows][moved.argmax()] == -i else 'implicit'} leak")


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", range(4))
def test_one_pass_equals_one_pass_per_step(seed):
    from pmlm.attention import pmlm_attention_mask
    model = tiny_model(seed)
    ex = random_example(100 + seed)
    sid = ex.step_ids
    logits = model(ex.input_ids[None], ex.position_ids[None], pmlm_attention_mask(sid)[None], ex.segment_ids[None])[0]
    for step in range(1, int(sid.max()) + 1):
        naive = oracles.naive_step_logits(model, ex, step)
        assert torch.allclose(logits[sid == -step], naive, atol=1e-4), \
            f"the [P] of step {step} in one pass differs from its own pass (context + originals of steps < {step})"
