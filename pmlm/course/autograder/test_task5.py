"""Task 5, the AE and PAR losses (section 3.3, Eqs. 4, 5, 7)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import oracles
import public_checks
from helpers import random_example, tiny_model

pytestmark = pytest.mark.task5


@pytest.mark.points(4)
def test_public_checks():
    from pmlm.losses import combine, grouped_components
    public_checks.losses(grouped_components, combine)


@pytest.mark.points(3)
@given(n=st.integers(1, 30), v=st.integers(2, 12), seed=st.integers(0, 10**6))
def test_random_groups_against_the_reference(n, v, seed):
    from pmlm.losses import grouped_components
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, v, generator=g) * 3
    labels = torch.randint(0, v, (n,), generator=g)
    groups = {"a": torch.rand(n, generator=g) < 0.5}
    groups["b"] = ~groups["a"]
    got = grouped_components(logits, labels, groups)
    for name, rows in groups.items():
        loss, acc, count = oracles.mean_cross_entropy(logits, labels, rows)
        assert abs(float(got[name]["loss"]) - loss) < 1e-4, f"group {name}: mean cross entropy {loss:.5f}, yours {float(got[name]['loss']):.5f}"
        assert abs(float(got[name]["acc"]) - acc) < 1e-6 and int(got[name]["count"]) == count, f"group {name}: acc/count"


@pytest.mark.points(3)
@pytest.mark.parametrize("objective", ["ae", "par", "ae+par"])
def test_model_loss_on_a_batch(objective):
    import pmlm
    model = tiny_model(3)
    exs = [random_example(s) for s in range(3)]
    out = [model(e.input_ids[None], e.position_ids[None], e.attention_mask[None], e.segment_ids[None])[0] for e in exs]
    logits = torch.cat(out)  # (sum L, V)
    parts = {}
    for name in ("ae", "par"):
        labels = torch.cat([getattr(e, f"{name}_labels") for e in exs])
        rows = labels != -100
        parts[name] = oracles.mean_cross_entropy(logits, labels.clamp(min=0), rows)[0]
    want = sum(parts[n] for n in pmlm.losses.OBJECTIVES[objective])
    batch = {"ae_labels": torch.cat([e.ae_labels for e in exs]), "par_labels": torch.cat([e.par_labels for e in exs])}
    got = pmlm.losses.pmlm_loss(logits, batch, objective)
    assert abs(float(got["loss"]) - want) < 1e-4, f"objective {objective}: loss {want:.5f} (Eq. 7), yours {float(got['loss']):.5f}"
