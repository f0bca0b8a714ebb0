"""Task 3, the layout with position reuse (section 3.2, Figs. 1 and 4)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import oracles
import public_checks

pytestmark = pytest.mark.task3


@pytest.mark.points(5)
def test_public_checks():
    from pmlm.layout import layout_1d
    public_checks.layout_1d(layout_1d)


@st.composite
def layouts(draw):
    n = draw(st.integers(1, 30))
    order = draw(st.permutations(list(range(n))))
    k = draw(st.integers(0, n))
    masked, steps = order[:k], []
    while masked:
        size = draw(st.integers(1, min(4, len(masked))))
        steps.append(sorted(masked[:size]))
        masked = masked[size:]
    tokens = draw(st.lists(st.integers(5, 99), min_size=n, max_size=n))
    context = [1 if any(p in s for s in steps) else t for p, t in enumerate(tokens)]
    segments = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return tokens, steps, context, segments, draw(st.booleans())


@pytest.mark.points(6)
@given(layouts())
def test_random_layouts_against_the_reference(case):
    from pmlm.layout import layout_1d
    tokens, steps, context, segments, drop = case
    got = layout_1d(tokens, steps, context_ids=context, pseudo_id=2, segment_ids=segments, drop_last_originals=drop)
    want = oracles.layout(tokens, steps, context, 2, segments, drop)
    for key, value in want.items():
        have = got[key].tolist()
        assert have == value, (f"{key} differs from the layout of Fig. 4 for steps {steps} "
                               f"(drop_last_originals={drop}): expected {value}, got {have}")


@pytest.mark.points(4)
@given(layouts())
def test_every_appended_token_reuses_its_position(case):
    from pmlm.layout import layout_1d
    tokens, steps, context, _, _ = case
    got = layout_1d(tokens, steps, context_ids=context, pseudo_id=2)
    sid, pos, ids = got["step_ids"].tolist(), got["position_ids"].tolist(), got["input_ids"].tolist()
    n = len(tokens)
    for j in range(n, len(ids)):
        step = abs(sid[j])
        assert 1 <= step <= len(steps), f"appended token {j} has step id {sid[j]}; steps are 1..{len(steps)}"
        assert pos[j] in steps[step - 1], (f"appended token {j} of step {step} sits at position {pos[j]}, not at a "
                                          f"position of its block {steps[step - 1]}: positions are reused")
        if sid[j] > 0:
            assert ids[j] == tokens[pos[j]], f"the original copy at {j} should be x{pos[j]} = {tokens[pos[j]]}"
