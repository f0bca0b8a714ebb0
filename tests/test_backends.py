"""The fast paths give the same numbers as the plain ones: relative bias by distance lookup, the top
layer on labelled rows only, and the FlexAttention backend against SDPA (forward on the CPU; forward
and gradients on a GPU, skipped without one: ``pytest -m gpu`` on a CUDA machine)."""

import pytest
import torch

import pmlm
from pmlm.model import row_index
from pmlm.relpos import RelativePositionBias, relative_position_bucket
from random_models import twin

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def config(vocab, **kw):
    base = dict(vocab_size=len(vocab), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                max_positions=64, dropout=0.0, attention_dropout=0.0, initializer_range=0.3)
    return pmlm.PMLMConfig(**{**base, **kw})


def test_relative_bias_by_distance_equals_bucketing_every_pair():
    torch.manual_seed(0)
    rb = RelativePositionBias(num_buckets=32, num_heads=3, max_distance=20)
    pos = torch.randint(0, 100, (2, 30))  # distances far beyond max_distance too
    expected = rb.table(relative_position_bucket(pos.unsqueeze(1) - pos.unsqueeze(2), 32, 20)).permute(0, 3, 1, 2)
    got = rb(pos)  # (B, h, L, L)
    assert torch.equal(got, expected)
    g = torch.randn_like(got)
    (grad_fast,) = torch.autograd.grad(got, rb.table.weight, g)
    (grad_plain,) = torch.autograd.grad(expected, rb.table.weight, g)
    torch.testing.assert_close(grad_fast, grad_plain)
    # queries against other keys (decoding): the same as the rows of the square bias
    torch.testing.assert_close(rb(pos[:, 5:9], key_position_ids=pos), rb(pos)[:, :, 5:9])
    assert list(rb.state_dict()) == ["table.weight"]  # the distance buckets are not saved


def test_row_index_docstring_example():
    rows = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)
    index, slot = row_index(rows)
    assert index.tolist() == [[1, 3], [0, 0]]
    assert slot.tolist() == [[True, True], [True, False]]
    index, slot = row_index(torch.zeros(2, 3, dtype=torch.bool))  # no rows at all: one padding slot
    assert index.shape == (2, 1) and not slot.any()


@pytest.mark.parametrize("rel_pos_buckets", [32, 0])
def test_top_layer_on_selected_rows_equals_the_full_encoder(vocab, collator, real_ids, rel_pos_buckets):
    torch.manual_seed(0)
    model = pmlm.PMLMModel(config(vocab, rel_pos_buckets=rel_pos_buckets)).eval()
    batch = collator(real_ids)
    args = [batch[k] for k in ("input_ids", "position_ids", "attention_mask", "segment_ids")]
    rows = (batch["ae_labels"] != -100) | (batch["par_labels"] != -100)
    with torch.no_grad():
        full = model.encode(*args)  # (B, L, H)
        part = model.encode(*args, rows=rows)  # (N, H)
    torch.testing.assert_close(part, full[rows], rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile")  # eager on the CPU: unfused
def test_flex_backend_equals_sdpa_forward_on_cpu(vocab, collator, real_ids):
    torch.manual_seed(0)
    sdpa = pmlm.PMLMModel(config(vocab)).eval()
    flex = twin(sdpa, attention_backend="flex")
    batch = collator(real_ids)  # padded: padding rows attend themselves only, in both backends
    args = [batch[k] for k in ("input_ids", "position_ids", "attention_mask", "segment_ids")]
    with torch.no_grad():
        torch.testing.assert_close(flex(*args), sdpa(*args), rtol=0, atol=1e-4)  # mask read from the matrix
        fast, plain = flex.loss(batch), sdpa.loss(batch)  # block mask from the step ids, top layer on rows
    for key in plain:
        torch.testing.assert_close(fast[key].float(), plain[key].float(), rtol=1e-5, atol=1e-5)


def test_flex_backend_refuses_cpu_training_and_attention_dropout(vocab, collator, real_ids):
    model = pmlm.PMLMModel(config(vocab, attention_backend="flex")).train()
    with pytest.raises(ValueError, match="cannot train on the CPU"):
        model.loss(collator(real_ids))
    with pytest.raises(ValueError, match="attention dropout"):
        config(vocab, attention_backend="flex", attention_dropout=0.1)
    with pytest.raises(ValueError, match="attention_backend"):
        config(vocab, attention_backend="xformers")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("rel_pos_buckets", [32, 0])
def test_flex_equals_sdpa_on_gpu_outputs_and_gradients(vocab, collator, real_ids, rel_pos_buckets):
    torch.manual_seed(0)
    sdpa = pmlm.PMLMModel(config(vocab, rel_pos_buckets=rel_pos_buckets, initializer_range=0.05)).cuda()
    flex = twin(sdpa, attention_backend="flex").cuda()
    batch = {k: v.cuda() for k, v in collator(real_ids).items()}
    args = [batch[k] for k in ("input_ids", "position_ids", "attention_mask", "segment_ids")]
    with torch.no_grad():
        torch.testing.assert_close(flex(*args), sdpa(*args), rtol=2e-3, atol=2e-3)
    losses = {}
    for name, model in (("sdpa", sdpa), ("flex", flex)):
        model.zero_grad()
        losses[name] = model.loss(batch)
        losses[name]["loss"].backward()
    torch.testing.assert_close(losses["flex"]["loss"], losses["sdpa"]["loss"], rtol=1e-3, atol=1e-3)
    for (name, a), b in zip(sdpa.named_parameters(), flex.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=2e-2, atol=2e-3, msg=lambda m: f"{name}: {m}")


@pytest.mark.gpu
@cuda
def test_flex_bf16_training_step_runs_on_gpu(vocab, collator, real_ids):
    torch.manual_seed(0)
    model = pmlm.PMLMModel(config(vocab, attention_backend="flex", initializer_range=0.02)).cuda().train()
    batch = {k: v.cuda() for k, v in collator(real_ids).items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(batch)["loss"]
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
