"""pmlm.naive: the one-pass-per-step computation that notebook 3 compares PMLM against."""

import pytest
import torch

import pmlm
from pmlm import naive, viz


def examples(count=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        n = int(torch.randint(6, 40, (1,), generator=g))
        blocks = pmlm.sample_blocks(n, mask_ratio=0.25, generator=g)
        yield viz.text_example([f"w{i}" for i in range(n)], blocks)[0]


@pytest.fixture
def model():
    torch.manual_seed(0)
    cfg = pmlm.PMLMConfig(vocab_size=48, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                          max_positions=64, dropout=0.0, attention_dropout=0.0)
    return pmlm.PMLMModel(cfg).eval()


def test_one_pass_equals_one_pass_per_step(model):
    for ex in examples():
        with torch.no_grad():
            ctx, steps = naive.one_pass_logits(model, ex)
            torch.testing.assert_close(ctx, naive.context_logits(model, ex), rtol=0, atol=1e-5)
            for a, b in zip(steps, naive.stepwise_logits(model, ex), strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_step_masks_are_the_pmlm_mask_restricted_to_the_step():
    # written without pmlm_attention_mask, they agree with it on the tokens each step keeps
    for ex in examples():
        for step in range(1, len(ex.steps) + 1):
            inp = naive.step_inputs(ex, step)
            idx = torch.tensor(inp["index"])
            torch.testing.assert_close(inp["attention_mask"][0], ex.attention_mask[idx][:, idx])
            assert (ex.step_ids[idx][inp["pseudo"]] == -step).all()


def test_pass_costs_count_tokens_both_ways():
    ex, _ = viz.worked_example()
    assert naive.pass_costs(ex) == {"n": 6, "m": 3, "steps": 2, "pmlm_passes": 1, "pmlm_tokens": 12,
                                    "naive_passes": 3, "naive_tokens": 6 + (6 + 2) + (6 + 2 + 1)}
    with pytest.raises(ValueError, match="step must lie"):
        naive.step_inputs(ex, 3)
