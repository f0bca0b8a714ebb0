"""The model on PMLM inputs: no leak (by perturbation), one pass equals recomputation per step,
the fast loss path equals the full-logits path, padding changes nothing, clear errors."""

import pytest
import torch

import pmlm
from pmlm.attention import pmlm_attention_mask
from random_models import twin


@pytest.fixture
def example(real_ids, vocab):
    """A real sentence with three steps (a 2-block, a 1-block, a 3-block), [M] everywhere."""
    ids = real_ids[1]
    return pmlm.build_pmlm_example(ids, [[5, 6], [2], [10, 11, 12]], mask_id=vocab["[MASK]"],
                                   pseudo_id=vocab["[P]"], vocab_size=len(vocab),
                                   replace_probs=(1.0, 0.0, 0.0))


def logits_of(model, ids, pos, mask):
    with torch.no_grad():
        return model(ids[None], pos[None], mask[None])[0]  # (L, V)


def perturb(ids, where, vocab_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = ids.clone()
    out[where] = (ids[where] + 1 + torch.randint(0, vocab_size - 7, ids[where].shape, generator=g)) % vocab_size
    return out


def test_appended_tokens_never_change_the_context(tiny_model, example, vocab):
    ex, n = example, example.num_context
    base = logits_of(tiny_model, ex.input_ids, ex.position_ids, ex.attention_mask)
    for j in range(n, ex.length):  # each appended token alone ...
        changed = perturb(ex.input_ids, [j], len(vocab), seed=j)
        out = logits_of(tiny_model, changed, ex.position_ids, ex.attention_mask)
        torch.testing.assert_close(out[:n], base[:n], rtol=0, atol=1e-5)
    changed = perturb(ex.input_ids, list(range(n, ex.length)), len(vocab))  # ... and all at once
    out = logits_of(tiny_model, changed, ex.position_ids, ex.attention_mask)
    torch.testing.assert_close(out[:n], base[:n], rtol=0, atol=1e-5)


def test_pseudo_masks_see_exactly_the_earlier_steps(tiny_model, example, vocab):
    ex = example
    steps = ex.step_ids
    base = logits_of(tiny_model, ex.input_ids, ex.position_ids, ex.attention_mask)
    num_steps = int(steps.max())
    for i in range(1, num_steps + 1):
        rows = (steps == -i).nonzero().flatten()
        # originals of steps >= i and [P]s of other steps: no effect on the [P]s of step i
        hidden = ((steps >= i) | ((steps < 0) & (steps != -i))).nonzero().flatten().tolist()
        for j in hidden:
            out = logits_of(tiny_model, perturb(ex.input_ids, [j], len(vocab), seed=j),
                            ex.position_ids, ex.attention_mask)
            torch.testing.assert_close(out[rows], base[rows], rtol=0, atol=1e-5)
        # originals of earlier steps: each one changes the prediction
        for j in ((steps > 0) & (steps < i)).nonzero().flatten().tolist():
            out = logits_of(tiny_model, perturb(ex.input_ids, [j], len(vocab), seed=j),
                            ex.position_ids, ex.attention_mask)
            assert (out[rows] - base[rows]).abs().max() > 1e-3, f"[P] of step {i} ignores token {j}"


def test_one_pass_equals_recomputation_per_step(tiny_model, example):
    ex, n = example, example.num_context
    full = logits_of(tiny_model, ex.input_ids, ex.position_ids, ex.attention_mask)
    # AE: a plain bidirectional pass over the context alone, as BERT would run it
    ctx = logits_of(tiny_model, ex.input_ids[:n], ex.position_ids[:n], torch.ones(n, n, dtype=torch.bool))
    torch.testing.assert_close(full[:n], ctx, rtol=0, atol=1e-5)
    # PAR step i: a pass over the context, the originals of earlier steps and step i's [P]s only
    for i in range(1, int(ex.step_ids.max()) + 1):
        keep = (ex.step_ids == 0) | ((ex.step_ids > 0) & (ex.step_ids < i)) | (ex.step_ids == -i)
        sub_steps = ex.step_ids[keep]
        sub = logits_of(tiny_model, ex.input_ids[keep], ex.position_ids[keep], pmlm_attention_mask(sub_steps))
        torch.testing.assert_close(full[keep][sub_steps == -i], sub[sub_steps == -i], rtol=0, atol=1e-5)


@pytest.mark.parametrize("objective", ["ae", "par", "ae+par"])
def test_fast_loss_path_equals_full_logits(tiny_model, collator, real_ids, objective):
    torch.manual_seed(0)
    batch = collator(real_ids)
    logits = tiny_model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    slow = pmlm.pmlm_loss(logits, batch, objective)
    fast = tiny_model.loss(batch, objective)
    assert slow.keys() == fast.keys()
    for key in slow:
        torch.testing.assert_close(fast[key].float(), slow[key].float(), rtol=1e-5, atol=1e-6)
    expected = {"ae": slow["ae"], "par": slow["par"], "ae+par": slow["ae"] + slow["par"]}[objective]
    torch.testing.assert_close(slow["loss"], expected)


def test_fast_path_gradients_equal_full_path(tiny_model, collator, real_ids):
    batch = collator(real_ids)
    tiny_model.zero_grad()
    tiny_model.loss(batch)["loss"].backward()
    fast = [p.grad.clone() for p in tiny_model.parameters()]
    tiny_model.zero_grad()
    logits = tiny_model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    pmlm.pmlm_loss(logits, batch)["loss"].backward()
    for a, p in zip(fast, tiny_model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_padding_in_a_batch_changes_no_logit(tiny_model, collator, real_ids):
    batch = collator(real_ids)
    with torch.no_grad():
        out = tiny_model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
        for b in range(len(real_ids)):
            L = int(batch["valid"][b].sum())
            one = tiny_model(*(batch[k][b : b + 1, :L] for k in ("input_ids", "position_ids")),
                             batch["attention_mask"][b : b + 1, :L, :L], batch["segment_ids"][b : b + 1, :L])
            torch.testing.assert_close(out[b, :L], one[0], rtol=0, atol=1e-5)
    assert not torch.isnan(out).any()  # padding rows attend to themselves: no empty softmax row


def test_losses_are_averages_over_labelled_tokens(tiny_model, collator, real_ids):
    batch = collator(real_ids)
    logits = tiny_model(batch["input_ids"], batch["position_ids"], batch["attention_mask"])
    out = pmlm.pmlm_loss(logits, batch)
    rows = batch["par_labels"] != -100
    expected = torch.nn.functional.cross_entropy(logits[rows], batch["par_labels"][rows])
    torch.testing.assert_close(out["par"], expected)
    assert int(out["par_tokens"]) == int(rows.sum())


def test_without_relative_bias_the_model_still_has_no_leak(vocab, example):
    torch.manual_seed(1)
    cfg = pmlm.PMLMConfig(vocab_size=len(vocab), hidden_size=32, num_layers=2, num_heads=2,
                          intermediate_size=64, max_positions=64, rel_pos_buckets=0, dropout=0.0,
                          attention_dropout=0.0, initializer_range=0.3)
    model = pmlm.PMLMModel(cfg).eval()
    ex, n = example, example.num_context
    base = logits_of(model, ex.input_ids, ex.position_ids, ex.attention_mask)
    out = logits_of(model, perturb(ex.input_ids, list(range(n, ex.length)), len(vocab)), ex.position_ids,
                    ex.attention_mask)
    torch.testing.assert_close(out[:n], base[:n], rtol=0, atol=1e-5)


def test_relative_bias_puts_a_pseudo_mask_at_distance_zero_from_its_token():
    from pmlm.relpos import relative_position_bucket
    pos = torch.tensor([0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1])
    buckets = relative_position_bucket(pos[None, :] - pos[:, None])
    assert buckets[6, 3] == buckets[3, 3] == buckets[6, 8] == 0  # [P]4 ~ [M]4 ~ x4: same place
    b = relative_position_bucket(torch.arange(-200, 201))  # distances -200..200
    # as in T5, distance 0 has one bucket (0), so 31 of the 32 buckets are used
    assert len(set(b.tolist())) == 31 and b.max() == 31
    assert (b[200 + 1 : 200 + 8] != b[200 - 7 : 200][::1].flip(0)).all()  # left and right differ
    assert b[0] == b[200 - 128] and b[-1] == b[200 + 128]  # beyond max_distance: the last bucket


def test_bad_model_inputs_fail_clearly(tiny_model):
    ids = torch.zeros(1, 70, dtype=torch.long)
    pos = torch.arange(70)[None]
    mask = torch.ones(1, 70, 70, dtype=torch.bool)
    with pytest.raises(ValueError, match="max_positions"):
        tiny_model(ids, pos, mask)
    with pytest.raises(ValueError, match="bool"):
        tiny_model(ids[:, :5], pos[:, :5], mask[:, :5, :5].float())
    with pytest.raises(ValueError, match="outside"):
        tiny_model(ids[:, :5] + 10_000, pos[:, :5], mask[:, :5, :5])
    with pytest.raises(ValueError, match="objective"):
        pmlm.pmlm_loss(torch.zeros(1, 2, 3), {"ae_labels": torch.zeros(1, 2).long(),
                                              "par_labels": torch.zeros(1, 2).long()}, "mlm")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="divisible"):
        pmlm.PMLMConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown model preset"):
        pmlm.PMLMConfig.preset("huge")
    assert pmlm.PMLMConfig.preset("tiny", vocab_size=100).vocab_size == 100


def loss_and_grads(model, batch):
    model.zero_grad()
    out = model.loss(batch)
    out["loss"].backward()
    return out, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("equal_lengths", [True, False])
def test_context_split_equals_one_dense_call(tiny_model, collator, real_ids, equal_lengths):
    """Context rows over the C x C block plus appended rows over all keys == one (L, L) call."""
    n = min(len(s) for s in real_ids)
    seqs = [s[:n] for s in real_ids] if equal_lengths else real_ids
    batch = collator(seqs)
    C = tiny_model.context_size(batch["attention_mask"], batch["step_ids"], batch["valid"])
    if equal_lengths:
        assert C == n  # the split is taken: every context is the first n positions
    model = tiny_model.double()  # float64: the two ways may differ only by rounding
    dense = twin(model, split_context_attention=False).double()
    assert dense.context_size(batch["attention_mask"], batch["step_ids"], batch["valid"]) is None
    split_out, split_grads = loss_and_grads(model, batch)
    dense_out, dense_grads = loss_and_grads(dense, batch)
    for key in dense_out:
        torch.testing.assert_close(split_out[key], dense_out[key], rtol=1e-12, atol=1e-12)
    for a, b in zip(split_grads, dense_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    args = (batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    with torch.no_grad():
        hidden = model.encode(*args, step_ids=batch["step_ids"], valid=batch["valid"])  # (B, L, H)
        torch.testing.assert_close(hidden, dense.encode(*args), rtol=1e-12, atol=1e-12)


def test_context_split_only_where_the_mask_allows_it(tiny_model, collator, real_ids):
    n = min(len(s) for s in real_ids)
    batch = collator([s[:n] for s in real_ids])
    mask, steps, valid = batch["attention_mask"], batch["step_ids"], batch["valid"]
    assert tiny_model.context_size(mask, steps, valid) == n
    leaky = mask.clone()
    leaky[1, 0, n] = True  # one context row that may see an appended token: no split
    assert tiny_model.context_size(leaky, steps, valid) is None
    assert tiny_model.context_size(mask, None, valid) is None  # without step ids: no split
    mlm = pmlm.PMLMCollator(mask_id=collator.mask_id, pseudo_id=collator.pseudo_id, pad_id=collator.pad_id,
                            vocab_size=collator.vocab_size, objective="ae")([s[:n] for s in real_ids])
    assert tiny_model.context_size(mlm["attention_mask"], mlm["step_ids"], mlm["valid"]) is None  # L = n


def test_context_split_keeps_the_relative_bias_gradient(tiny_model, collator, real_ids):
    """The bias table gets its gradient through both blocks and the top layer's rows."""
    n = min(len(s) for s in real_ids)
    batch = collator([s[:n] for s in real_ids])
    model = tiny_model.double()
    _, grads = loss_and_grads(model, batch)
    names = [name for name, _ in model.named_parameters()]
    table = grads[names.index("rel_bias.table.weight")]
    assert table.abs().sum() > 0
    dense = twin(model, split_context_attention=False).double()
    _, dense_grads = loss_and_grads(dense, batch)
    torch.testing.assert_close(table, dense_grads[names.index("rel_bias.table.weight")], rtol=1e-10, atol=1e-12)
