"""The loss helpers: grouped components equal per-group components, on random logits."""

import torch

from pmlm.losses import components, grouped_components


def test_grouped_components_equal_components_of_each_group():
    g = torch.Generator().manual_seed(0)
    N, V = 37, 11
    logits = torch.randn(N, V, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (N,), generator=g)
    labels[:5] = logits.detach()[:5].argmax(-1)  # some correct rows, so accuracy is not trivially 0
    first = torch.rand(N, generator=g) < 0.4
    groups = {"a": first, "b": ~first}
    grouped = grouped_components(logits, labels, groups)
    for name, rows in groups.items():
        alone = components(logits[rows], labels[rows])
        for key in ("loss", "acc", "count"):
            torch.testing.assert_close(grouped[name][key].float(), alone[key].float())
    total = grouped["a"]["loss"] + grouped["b"]["loss"]
    (grad,) = torch.autograd.grad(total, logits)
    expected = sum(torch.autograd.grad(components(logits[r], labels[r])["loss"], logits)[0] for r in groups.values())
    torch.testing.assert_close(grad, expected)


def test_an_empty_group_gives_zero_loss():
    logits = torch.randn(4, 6, requires_grad=True)
    labels = torch.tensor([1, 2, 3, 4])
    out = grouped_components(logits, labels, {"a": torch.ones(4, dtype=torch.bool),
                                              "b": torch.zeros(4, dtype=torch.bool)})
    assert float(out["b"]["loss"].detach()) == 0.0 and int(out["b"]["count"]) == 0
    out["a"]["loss"].backward()
    assert torch.isfinite(logits.grad).all()
