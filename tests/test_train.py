"""pmlm.train and pmlm.checkpoint: Table 6 flags, the schedule, reproducibility, exact resume after a
kill, atomic checkpoints, and bad input that fails with a clear message and clobbers nothing."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from pmlm.checkpoint import (MissingFileError, load_model_state, load_pretrained, read_checkpoint,
                             read_metrics, save_checkpoint)
from pmlm.config import PMLMConfig
from pmlm.data import prepare_corpus
from pmlm.model import PMLMModel
from pmlm.tokenizer import save_tokenizer
from pmlm.train import TrainConfig, lr_lambda, main, make_optimizer, parse_args, pretrain, smoke_mode

ROOT = Path(__file__).resolve().parents[1]
from tiny import MODEL



def cfg(out, tokenizer_path, **kw) -> TrainConfig:
    base = dict(model="tiny", model_overrides=MODEL, max_documents=12, vocab_size=1000, max_length=48,
                steps=8, batch_size=4, warmup_steps=2, log_every=1, eval_every=4, eval_examples=8,
                save_every=4, out_dir=str(out), progress=False, tokenizer=tokenizer_path)
    base.update(kw)
    return TrainConfig(**base)


def train_losses(run) -> list[tuple[int, float, float]]:
    return [(r["step"], r["ae_loss"], r["par_loss"]) for r in read_metrics(run) if r.get("split") == "train"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tokenizer_path):
    out = tmp_path_factory.mktemp("runs") / "a"
    return pretrain(cfg(out, tokenizer_path))


# ------------------------------------------------------------------------- configuration, CLI

@pytest.mark.parametrize("argv, objective, factorization, rel_pos", [
    ([], "ae+par", "block", True),  # row 1: UniLMv2
    (["--no-rel-pos"], "ae+par", "block", False),  # row 2
    (["--no-rel-pos", "--factorization", "token"], "ae+par", "token", False),  # row 3: AE+AR
    (["--no-rel-pos", "--objective", "ae"], "ae", "block", False),  # row 4: BERT
    (["--no-rel-pos", "--objective", "par"], "par", "block", False),  # row 5
    (["--no-rel-pos", "--objective", "par", "--factorization", "token"], "par", "token", False),  # 6: AR
])
def test_table6_rows_are_flags(argv, objective, factorization, rel_pos):
    c = parse_args(argv)
    assert (c.objective, c.factorization, c.rel_pos) == (objective, factorization, rel_pos)
    assert (c.model_config(8192).rel_pos_buckets > 0) == rel_pos


def test_presets_overrides_and_smoke_switch(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PMLM_SMOKE", raising=False)
    assert not smoke_mode()
    tiny = TrainConfig.preset("tiny")
    assert tiny.model == "tiny" and TrainConfig.preset("small").model == "small"
    c = parse_args(["--preset", "tiny", "--steps", "7", "--lr", "3e-4", "--set", "num_layers=3",
                    "--init", "bert"])
    assert (c.steps, c.lr, c.init) == (7, 3e-4, "bert")
    assert c.model_overrides == {**tiny.model_overrides, "num_layers": 3}  # --set adds to the preset's
    assert c.model_config(500).num_layers == 3 and c.model_config(500).vocab_size == 500
    assert (c.betas, c.eps, c.weight_decay) == ((0.9, 0.98), 1e-6, 0.01)  # section 4.1
    for env in ("PMLM_SMOKE", "CI"):
        monkeypatch.setenv(env, "1")
        assert smoke_mode() and TrainConfig.preset("tiny").steps <= 8 < tiny.steps
        monkeypatch.delenv(env)


@pytest.mark.parametrize("argv", [["--preset", "huge"], ["--bogus"], ["--objective", "mlm"],
                                  ["--set", "num_layers=two"], ["--set", "depth=2"]])
def test_unknown_preset_flag_or_value_exits_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_schedule_warms_up_then_decays_linearly_to_zero():
    c = TrainConfig(steps=100, warmup_steps=10)
    f = lr_lambda(c)
    assert [round(f(s), 6) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(10) == 1.0 and f(55) == pytest.approx(0.5) and f(100) == 0.0


def test_optimizer_is_adamw_without_decay_on_biases_and_layernorms():
    model = PMLMModel(PMLMConfig(vocab_size=100, **MODEL))
    opt = make_optimizer(model, TrainConfig())
    decay, no_decay = opt.param_groups
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"]
                                                               if p is not model.rel_bias.table.weight)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters())


def test_fast_init_keeps_the_softmax_tied_and_starts_at_word_frequencies():
    from pmlm.train import init_for_short_runs

    torch.manual_seed(0)
    model = PMLMModel(PMLMConfig(vocab_size=500, **MODEL))
    log_p = torch.randn(500).log_softmax(0)
    init_for_short_runs(model, log_p)
    assert model.head.embedding.weight is model.token_embedding.weight  # still tied (Eqs. 4-5)
    assert torch.equal(model.head.bias, log_p) and not model.segment_embedding.weight.any()
    assert model.token_embedding.weight.std().item() == pytest.approx(32 ** -0.5, rel=0.05)


# ------------------------------------------------------------------------------ a real run

def test_run_directory_layout_and_metrics(finished_run):
    run = Path(finished_run)
    assert {p.name for p in run.iterdir()} == {"checkpoint.pt", "tokenizer.json", "metrics.jsonl", "config.json",
                                              "model.safetensors", "training.json"}
    state = read_checkpoint(run)
    assert state["step"] == 8 and len(state["rng"]) == 1
    assert {"model", "optimizer", "scheduler", "model_config", "train_config", "tokenizer"} <= set(state)
    records = read_metrics(run)
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    assert [r["step"] for r in train] == list(range(1, 9)) and [r["step"] for r in val] == [0, 4, 8]
    for r in train:
        assert {"loss", "ae_loss", "par_loss", "ae_acc", "par_acc", "lr", "tokens_per_s"} <= set(r)
        assert r["loss"] == pytest.approx(r["ae_loss"] + r["par_loss"]) and r["tokens_per_s"] > 0
    assert {"val_ae_loss", "val_par_loss", "val_ae_acc", "val_par_acc"} <= set(val[-1])
    start = records[0]
    assert start["event"] == "start" and 0 < start["unigram_val_acc"] < 0.2


def test_load_pretrained_reproduces_the_logged_validation(finished_run, tokenizer_path):
    from pmlm.tokenizer import make_collator

    model, tok = load_pretrained(finished_run)
    assert not model.training and tok.get_vocab_size() == model.config.vocab_size
    c = cfg(finished_run, tokenizer_path)
    corpus = prepare_corpus(None, max_documents=12, max_length=48, tokenizer=tok)
    collator = make_collator(tok, objective="ae+par", max_length=48,
                             generator=torch.Generator().manual_seed(c.seed + 12345))
    batches = [collator(corpus.validation.examples[i:i + 4]) for i in (0, 4)]
    from pmlm.data import unigram_log_probs
    from pmlm.metrics import piece_characters
    from pmlm.tokenizer import SPECIAL_TOKENS, special_ids
    from pmlm.train import evaluate

    got = evaluate(model, batches, torch.device("cpu"), autocast=False, mask_id=special_ids(tok)["mask"],
                   unigram_log_probs=unigram_log_probs(corpus),
                   piece_chars=piece_characters(tok.get_vocab(), set(SPECIAL_TOKENS)))
    logged = [r for r in read_metrics(finished_run) if r.get("split") == "val"][-1]
    for key in ("val_ae_loss", "val_par_loss", "val_ae_m_loss", "val_par_m_bpc", "unigram_m_bpc"):
        assert got[key] == pytest.approx(logged[key], rel=1e-5), key


def test_same_seed_same_curve_and_training_never_projects_all_rows(tmp_path, tokenizer_path,
                                                                    finished_run, monkeypatch):
    def full_logits(*args, **kwargs):
        raise AssertionError("training must use the fast path model.loss, not full logits")

    monkeypatch.setattr(PMLMModel, "forward", full_logits)
    again = pretrain(cfg(tmp_path / "again", tokenizer_path, num_workers=2))  # workers build batches
    assert train_losses(again) == train_losses(finished_run)  # bit for bit on the CPU
    other = pretrain(cfg(tmp_path / "other", tokenizer_path, seed=1, steps=2))
    assert train_losses(other)[:2] != train_losses(finished_run)[:2]


def test_gradient_accumulation_and_other_objectives_run(tmp_path, tokenizer_path):
    run = pretrain(cfg(tmp_path / "ae", tokenizer_path, objective="ae", factorization="token",
                       rel_pos=False, steps=2, grad_accum=2, eval_every=2))
    train = [r for r in read_metrics(run) if r.get("split") == "train"]
    assert train[-1]["par_loss"] is None and train[-1]["loss"] == pytest.approx(train[-1]["ae_loss"])
    val = [r for r in read_metrics(run) if r.get("split") == "val"][-1]
    assert val["val_par_loss"] > 0  # validation lays out PAR for every objective
    assert read_checkpoint(run)["model_config"]["rel_pos_buckets"] == 0


KILLER = """
import json, os, signal, sys
from pmlm.train import TrainConfig, pretrain
cfg = TrainConfig(**json.loads(sys.argv[1]))
def on_step(step, model, record):
    if step == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, like a lost machine
pretrain(cfg, on_step=on_step)
"""


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path, tokenizer_path, finished_run):
    killed = cfg(tmp_path / "killed", tokenizer_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(killed.to_dict()), "6"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert read_checkpoint(killed.out_dir)["step"] == 4  # the last checkpoint before the kill
    assert max(r["step"] for r in read_metrics(killed.out_dir)) == 6  # logged past it
    assert not list(Path(killed.out_dir).glob("*.tmp"))

    pretrain(cfg(tmp_path / "killed", tokenizer_path, resume=True))
    resumed, uninterrupted = train_losses(killed.out_dir), train_losses(finished_run)
    assert [r[0] for r in resumed] == list(range(1, 9))  # lines logged after step 4 were replaced
    assert [x for r in resumed for x in r] == pytest.approx([x for r in uninterrupted for x in r], rel=1e-5)
    a, b = read_checkpoint(killed.out_dir)["model"], read_checkpoint(finished_run)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------- bad input

def snapshot(run) -> dict:
    return {p.name: p.read_bytes() for p in Path(run).iterdir()}


def test_an_existing_run_is_never_clobbered(finished_run, tokenizer_path):
    before = snapshot(finished_run)
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        pretrain(cfg(finished_run, tokenizer_path))
    with pytest.raises(ValueError, match="cannot resume.*num_layers"):
        pretrain(cfg(finished_run, tokenizer_path, resume=True, model_overrides={**MODEL, "num_layers": 2}))
    with pytest.raises(ValueError, match="cannot resume.*max_length"):
        pretrain(cfg(finished_run, tokenizer_path, resume=True, max_length=32))
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[: len(b) // 2], "cannot be read"),
    (lambda b: b"not a checkpoint at all" * 10, "cannot be read"),
    (lambda b: b"", "empty"),
])
def test_corrupt_checkpoint_fails_clearly(tmp_path, finished_run, tokenizer_path, damage, match):
    run = tmp_path / "damaged"
    run.mkdir()
    for name, data in snapshot(finished_run).items():
        (run / name).write_bytes(damage(data) if name == "checkpoint.pt" else data)
    before = snapshot(run)
    with pytest.raises(ValueError, match=match):
        load_pretrained(run)
    with pytest.raises(ValueError, match=match):
        pretrain(cfg(run, tokenizer_path, resume=True))
    assert snapshot(run) == before


def test_missing_files_and_mismatched_vocabulary_fail_clearly(tmp_path, finished_run):
    with pytest.raises(MissingFileError, match="no checkpoint"):
        load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="--resume: .* no checkpoint.pt"):
        pretrain(TrainConfig(out_dir=str(tmp_path), resume=True))
    state = read_checkpoint(finished_run)
    other = PMLMModel(PMLMConfig(**{**state["model_config"], "vocab_size": 999}))
    with pytest.raises(ValueError, match="vocab_size: checkpoint 1000 vs 999"):
        load_model_state(other, state)
    run = tmp_path / "mixed"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((Path(finished_run) / "checkpoint.pt").read_bytes())
    from pmlm.tokenizer import train_tokenizer

    save_tokenizer(train_tokenizer(["It is a truth universally acknowledged."] * 3, 60), run / "tokenizer.json")
    with pytest.raises(ValueError, match="different runs"):
        load_pretrained(run)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {}, "model_config": {}, "step": 1}, path)
    before = path.read_bytes()

    def dies_midway(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {}, "model_config": {}, "step": 2}, path)
    assert path.read_bytes() == before and read_checkpoint(path)["step"] == 1


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path / "run")])
    assert isinstance(exc.value.code, str) and "no such file" in exc.value.code
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_demo_runs_end_to_end_in_smoke_mode(tmp_path, monkeypatch, capsys):
    from pmlm import demo

    monkeypatch.setenv("PMLM_SMOKE", "1")
    demo.main(["--out-dir", str(tmp_path / "run"), "--figures", str(tmp_path / "fig"), "--examples", "2"])
    out = capsys.readouterr().out
    assert "AE fill-in" in out and "PAR fill-in" in out and "unigram baseline" in out
    assert out.count("validation example") == 2
    for name in ("loss_curves.png", "demo_attention_mask.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 10_000
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 8 and 0 <= summary["val_par_acc"] <= 1


def test_batches_are_prefetched_only_where_a_core_is_free(monkeypatch):
    from pmlm.train import batches

    monkeypatch.setattr(batches.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(batches.torch, "get_num_threads", lambda: 2)
    assert not batches.prefetch_pays(torch.device("cpu"))  # torch's threads fill both cores
    monkeypatch.setattr(batches.torch, "get_num_threads", lambda: 1)
    assert batches.prefetch_pays(torch.device("cpu"))
    assert batches.prefetch_pays(torch.device("cuda"))  # the step runs on the device


def test_prefetched_and_inline_batches_are_the_same(monkeypatch):
    from pmlm.train import batches, setup
    from pmlm.train.distributed import Dist

    cfg = TrainConfig.preset("tiny", steps=3, max_documents=4)
    d = Dist(rank=0, world=1, local_rank=0, owns_group=False)
    corpus = batches.load_corpus(cfg, None, d)
    streams = []
    for pays in (True, False):
        monkeypatch.setattr(setup, "prefetch_pays", lambda device, pays=pays: pays)
        it = setup.train_batches(cfg, corpus, d, torch.device("cpu"), 0)
        assert isinstance(it, batches.Prefetch) == pays
        streams.append([next(it) for _ in range(3)])
        if pays:
            it.close()
    for a, b in zip(*streams):
        assert a.keys() == b.keys() and all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
