"""The paper's recipe as presets (section 4.1) and ``--plan``, the cost of a run before it starts.

* the counted FLOPs equal a hand count of the matrix products the tiny model runs on its layout;
* one optimizer step of the ``base`` recipe runs on the CPU on the BASE model;
* ``python -m pmlm.train --plan`` prints the plan and creates no run directory;
* the ``base`` and ``large`` presets carry the paper's values.
"""

import json
from dataclasses import replace

import pytest
import torch
from sentences import SENTENCES

from pmlm.config import PRESETS, PMLMConfig
from pmlm.model import PMLMModel
from pmlm.tokenizer import make_collator, train_tokenizer
from pmlm.train.cli import main
from pmlm.train.config import TRAIN_PRESETS, TrainConfig
from pmlm.train.optim import lr_lambda, make_optimizer
from pmlm.train.plan import PAPER_RUN, format_plan, plan


@pytest.fixture(scope="module")
def tiny_plans():
    cfg = replace(TRAIN_PRESETS["tiny"], batch_size=4, grad_accum=3, steps=10)
    return {objective: plan(replace(cfg, objective=objective), draws=11) for objective in ("ae+par", "ae")}


def hand_count(p, config: PMLMConfig) -> int:
    """Matrix-product FLOPs of one training step on one example, written out (pmlm.model, pmlm.layers).

    Two FLOPs a multiply-add. n context rows (the text), L rows in all, A = L - n appended,
    R labelled rows. Embedding lookups, LayerNorm, softmax, GELU and the loss are not matrix products.
    """
    H, F, V, layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_layers
    n, L, R = p.text_tokens, p.counted_length, p.labelled_rows
    A = L - n
    # attention of the lower layers: with appended rows the n context rows attend the n x n context
    # block only and the A appended rows all L keys (ContextSplit); without, one L x L block.
    # Scores q k^T and the weighted sum of values: 2 products of 2 d FLOPs per pair, over h heads.
    pairs = n * n + A * L if A else L * L
    lower = (2 * L * H * 3 * H  # q, k, v projections of every row
             + 4 * H * pairs  # scores and values
             + 2 * L * H * H  # output projection
             + 2 * 2 * L * H * F)  # FFN, two matrices
    # the top layer computes only the R labelled rows (keys and values still from all L rows)
    top = (2 * L * H * 2 * H  # k, v of every row
           + 2 * R * H * H  # q of the R rows
           + 4 * H * R * L  # their scores and values over all L keys
           + 2 * R * H * H  # output projection
           + 2 * 2 * R * H * F)  # FFN
    head = 2 * R * H * H + 2 * R * H * V  # MLM head transform, then the tied vocabulary projection
    forward = (layers - 1) * lower + top + head
    # backward: each product y = x W gives dx = dy W^T and dW = x^T dy, two products of its size
    # (every input needs its gradient: the embeddings are trained); attention's two likewise
    return 3 * forward


@pytest.mark.parametrize("objective", ["ae+par", "ae"])
def test_counted_flops_equal_the_hand_count_of_the_tiny_model(tiny_plans, objective):
    p = tiny_plans[objective]
    config = TRAIN_PRESETS["tiny"].model_config(p.vocab_size)
    n, m, L = p.text_tokens, p.masked, p.counted_length
    assert n == 64 and 0 < m < n
    if objective == "ae":  # BERT's layout: nothing appended, the m [M] rows carry the labels
        assert (L, p.labelled_rows) == (n, m)
    else:  # m [P] appended, and the originals of all steps but the last: n + m <= L < n + 2 m
        assert n + m <= L < n + 2 * m and p.labelled_rows == 2 * m
    # exact: FlopCounterMode counts 2 M K N for every (M, K) x (K, N) product, as the hand count does
    assert p.flops_per_example == hand_count(p, config)
    assert p.flops_per_step == p.flops_per_example * 4 * 3  # batch_size x grad_accum, linearly
    assert p.total_flops == p.flops_per_step * 10
    assert p.text_tokens_per_step == 12 * n and p.positions_per_step == 12 * L
    assert p.parameters == sum(t.numel() for t in PMLMModel(config).parameters())


def test_memory_and_time_follow_from_the_counts(tiny_plans):
    p = tiny_plans["ae+par"]
    assert p.weights_and_optimizer_bytes == 16 * p.parameters  # fp32 weight, gradient, two moments
    assert 0 < p.attention_scratch_bytes_per_example < p.saved_bytes_per_example
    assert p.gpu_memory_bytes == p.weights_and_optimizer_bytes + 4 * p.activation_bytes_per_example
    assert p.gpu_hours["A100"] == pytest.approx(p.total_flops / (312e12 * 0.4) / 3600)
    assert p.gpu_hours["A100"] / p.gpu_hours["H100 SXM"] == pytest.approx(989 / 312)
    assert p.paper_v100_hours is None  # the tiny run is not the paper's
    paper_like = format_plan(replace(p, paper_v100_hours=PAPER_RUN["v100_hours"]))
    assert "30,720 V100-hours" in paper_like and "section 4.1" in paper_like


@pytest.mark.slow
def test_one_base_step_runs_on_the_cpu():
    torch.set_num_threads(2)  # conftest's one thread per module would double the time
    cfg = replace(TRAIN_PRESETS["base"], max_length=32, batch_size=1, grad_accum=1)  # not smoke-shrunk
    tok = train_tokenizer(SENTENCES, vocab_size=200)
    config = cfg.model_config(tok.get_vocab_size())
    assert (config.num_layers, config.hidden_size, config.num_heads, config.intermediate_size) == (12, 768, 12, 3072)
    torch.manual_seed(0)
    model = PMLMModel(config).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    collator = make_collator(tok, objective=cfg.objective, max_length=cfg.max_length,
                             mask_ratio=cfg.mask_ratio, generator=torch.Generator().manual_seed(0))
    batch = collator([tok.encode(SENTENCES[1], SENTENCES[0]).ids[:32]])
    before = model.layers[0].ffn[0].weight.detach().clone()
    result = model.loss(batch, objective=cfg.objective)  # what LossModule runs
    result["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    assert scheduler.get_last_lr()[0] == pytest.approx(6e-4 / 24_000)  # first step of the warm-up
    optimizer.step()
    scheduler.step()
    assert torch.isfinite(result["loss"]) and result["ae_tokens"] > 0 and result["par_tokens"] > 0
    assert not torch.equal(before, model.layers[0].ffn[0].weight)


def test_cli_plan_prints_the_plan_and_creates_no_run_directory(tmp_path, monkeypatch, capsys):
    for env in ("CI", "PMLM_SMOKE"):  # the tiny preset itself, not its smoke shrink
        monkeypatch.delenv(env, raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    main(["--preset", "tiny", "--plan", "--out-dir", str(out), "--plan-json", "plan.json"])  # returns: exit 0
    text = capsys.readouterr().out
    for line in ("tokens per optimizer step: 2,048 text tokens", "FLOPs per example:",
                 "FLOPs per optimizer step:", "= 32 x the example", "GPU memory:", "GPU-hours at 40% MFU",
                 "A100 (312 TFLOP/s bf16 dense)", "H100 SXM (989 TFLOP/s bf16 dense)", "appended",
                 "plan written to plan.json"):
        assert line in text, line
    assert not out.exists() and not (tmp_path / "runs").exists()
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["examples_per_step"] == 32 and saved["counted_length"] > saved["text_tokens"] == 64
    assert saved["flops_per_step"] == 32 * saved["flops_per_example"]


def test_plan_refuses_a_bad_run_with_a_message():
    with pytest.raises(SystemExit, match="max_length=600 exceeds the model's max_positions=512"):
        main(["--preset", "base", "--plan", "--max-length", "600"])


PAPER = [  # (field, section 4.1's value)
    ("max_length", 512), ("vocab_size", 30522), ("mask_ratio", 0.15), ("steps", 500_000),
    ("lr", 6e-4), ("warmup_steps", 24_000), ("weight_decay", 0.01), ("betas", (0.9, 0.98)), ("eps", 1e-6),
]
MODELS = {  # (layers, H, h, FFN, vocabulary, positions, dropout)
    "base": (12, 768, 12, 3072, 30522, 512, 0.1),  # section 4.1
    "large": (24, 1024, 16, 4096, 30522, 512, 0.1),  # BERT-LARGE, as unilm2-large-uncased
}


@pytest.mark.parametrize("preset", ["base", "large"])
@pytest.mark.parametrize("name,value", PAPER)
def test_presets_carry_the_papers_values(preset, name, value):
    assert getattr(TRAIN_PRESETS[preset], name) == value


@pytest.mark.parametrize("preset", ["base", "large"])
def test_preset_models_and_the_global_batch(preset):
    cfg = TRAIN_PRESETS[preset]
    assert cfg.model == preset and cfg.batch_size * cfg.grad_accum == 7680  # one process
    c = PRESETS[preset]
    assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size, c.vocab_size, c.max_positions,
            c.dropout) == MODELS[preset]


def test_the_base_preset_is_the_run_the_plan_compares_with_the_paper():
    cfg = TRAIN_PRESETS["base"]
    assert (cfg.model, cfg.steps, cfg.batch_size * cfg.grad_accum, cfg.max_length) == (
        PAPER_RUN["model"], PAPER_RUN["steps"], PAPER_RUN["examples_per_step"], PAPER_RUN["max_length"])
    assert PAPER_RUN["v100_hours"] == 64 * 20 * 24  # "about 20 days using 64 Nvidia V100-32GB"


def test_smoke_mode_shrinks_the_accumulated_presets(monkeypatch):
    monkeypatch.setenv("PMLM_SMOKE", "1")
    for name in ("base", "large"):
        cfg = TrainConfig.preset(name)
        assert cfg.model == name and cfg.steps <= 8 and cfg.grad_accum == 1 and cfg.max_length <= 256
    for name in ("tiny", "small"):  # as before
        assert TrainConfig.preset(name).max_length == TRAIN_PRESETS[name].max_length
