"""Fine-tuning that scales like pre-training (pmlm.finetune.loop): torchrun, accumulation, resume.

* Two processes (``torchrun``, gloo on the CPU, the rendezvous on 127.0.0.1) give the weights of one
  process with the same global batch: each rank reads its part of every batch, the loss of a step
  is the mean over the target tokens of the whole global batch, and everything random in a batch
  is drawn per example.
* One batch in ``grad_accum`` micro-batches is the same step as one micro-batch.
* A run killed after a checkpoint and resumed ends with the weights, and logs the losses, of the
  run that was never stopped (dropout and word drop on: the RNG comes back from the checkpoint).
* A loss that stops being finite still stops the run before its step, naming the last checkpoint.

Every subprocess runs under a time limit and is killed with its children when it passes it.
"""

import copy
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_unilmv2 import files, synthetic_state  # noqa: F401  (files: a fixture)

import pmlm
from pmlm.checkpoint import read_checkpoint, read_metrics
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq
from pmlm.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the , . and of to a in was her it she not be he".split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_bounded(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``args`` in its own process group; past ``timeout`` seconds the whole group is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(args[:6])} ... ran past {timeout} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


def weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


@pytest.mark.slow
def test_two_gloo_processes_give_the_weights_of_one_with_the_same_global_batch(files, tmp_path):
    config = json.loads((files / "config.json").read_text())
    (files / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0,
                                                   "attention_probs_dropout_prob": 0.0}))
    torch.save(synthetic_state(True), files / "pytorch_model.bin")
    data = files / "train.jsonl"
    data.write_text("".join(json.dumps({"src": " ".join(WORDS[i:i + 5 + i % 4]), "tgt": " ".join(WORDS[i + 1:i + 2 + i % 5])})
                            + "\n" for i in range(11)))
    common = ["-m", "pmlm.finetune", "seq2seq", "--pretrained", str(files), "--data", str(data), "--preset", "tiny",
              "--steps", "3", "--batch-size", "8", "--word-drop", "0.5", "--max-source-length", "16",
              "--max-target-length", "8", "--device", "cpu", "--threads", "1"]
    two = run_bounded([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                       "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "ft",
                       "--max-restarts", "0", *common, "--save", str(tmp_path / "two"),
                       "--out-dir", str(tmp_path / "run"), "--save-every", "2"], timeout=300)
    assert two.returncode == 0, two.stdout[-3000:]
    one = run_bounded([sys.executable, *common, "--grad-accum", "2", "--save", str(tmp_path / "one")], timeout=300)
    assert one.returncode == 0, one.stdout[-3000:]

    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    start, _ = pmlm.unilmv2.load_unilmv2(files)
    moved = max(float((a[k] - start.state_dict()[k]).abs().max()) for k in a)
    differ = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved > 1e-4  # the steps changed the weights ...
    assert differ < 1e-5, differ  # ... and both runs alike, but for the order of float sums
    state = read_checkpoint(tmp_path / "run")
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert [r["step"] for r in read_metrics(tmp_path / "run") if r.get("split") == "train"] == [1, 2, 3]
    assert two.stdout.count('"world_size": 2') == 1  # rank 0 alone prints the metrics


def toy_task(seed: int = 0):
    """Pairs "w1 w2 w3 w4" -> "w2 w1 w3 w4", a tokenizer and a tiny model with dropout."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(48):
        s = rng.sample(WORDS[3:], 4)
        rows.append({"source": " ".join(s), "target": " ".join([s[1], s[0]] + s[2:])})
    tok = train_tokenizer([r["source"] for r in rows], vocab_size=60)
    torch.manual_seed(seed)
    model = pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=1, num_heads=2,
                                           intermediate_size=64, max_positions=32, dropout=0.1))
    return {"train": rows, "validation": [], "test": []}, tok, model


CFG = dict(lr=5e-3, batch_size=8, max_steps=4, warmup_steps=1, max_source_len=12, max_target_len=12, word_drop=0.3)


def test_accumulated_micro_batches_are_the_step_of_one_batch():
    splits, tok, model = toy_task()
    out = []
    for accum in (1, 4):
        m = pmlm.PMLMModel(pmlm.PMLMConfig(**{**model.config.to_dict(), "dropout": 0.0}))
        m.load_state_dict(model.state_dict())
        finetune_seq2seq(m, tok, splits, Seq2SeqConfig(**CFG, grad_accum=accum), log=lambda _: None)
        out.append(m.state_dict())
    assert all(torch.allclose(out[0][k], out[1][k], atol=1e-6) for k in out[0])
    with pytest.raises(ValueError, match=r"must be at least 1 and divide batch_size \(--batch-size 6\)"):
        Seq2SeqConfig(**{**CFG, "batch_size": 6}, grad_accum=4)


def test_a_resumed_run_is_the_run_never_stopped(tmp_path):
    splits, tok, model = toy_task()
    cfg = Seq2SeqConfig(**CFG, save_every=2, factorization="block")
    straight = copy.deepcopy(model)
    finetune_seq2seq(straight, tok, splits, cfg, log=lambda _: None, out_dir=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill_at_2(step, _model):
        if step == 2:  # after the step-2 checkpoint, as a kill would find it
            raise Killed

    part = copy.deepcopy(model)
    with pytest.raises(Killed):
        finetune_seq2seq(part, tok, splits, cfg, log=lambda _: None, out_dir=tmp_path / "b", on_step=kill_at_2)
    assert read_checkpoint(tmp_path / "b")["step"] == 2
    resumed = copy.deepcopy(model)  # a fresh process starts from the pre-trained weights again
    logs = []
    finetune_seq2seq(resumed, tok, splits, cfg, log=logs.append, out_dir=tmp_path / "b", resume=True)
    assert any("resumed" in line and "at step 2 of 4" in line for line in logs)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    losses = lambda run: [r["loss"] for r in read_metrics(run) if r.get("split") == "train"]  # noqa: E731
    assert losses(tmp_path / "b") == losses(tmp_path / "a") and len(losses(tmp_path / "a")) == 4
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        finetune_seq2seq(copy.deepcopy(model), tok, splits, cfg, log=lambda _: None, out_dir=tmp_path / "b")
    other = {**splits, "train": splits["train"][:40]}
    with pytest.raises(ValueError, match="fine-tuned on other examples"):
        finetune_seq2seq(copy.deepcopy(model), tok, other, cfg, log=lambda _: None, out_dir=tmp_path / "b", resume=True)


def test_a_loss_that_is_not_finite_stops_the_run_naming_the_last_checkpoint(tmp_path, monkeypatch):
    import pmlm.finetune.seq2seq as s2s

    splits, tok, model = toy_task()
    calls = {"n": 0}
    real = s2s.seq2seq_loss

    def poisoned(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(s2s, "seq2seq_loss", poisoned)
    with pytest.raises(ValueError, match=r"diverged at step 3: .*the last good checkpoint is .*checkpoint.pt \(step 2\)"):
        finetune_seq2seq(model, tok, splits, Seq2SeqConfig(**CFG, save_every=1), log=lambda _: None,
                         out_dir=tmp_path / "run")
    assert read_checkpoint(tmp_path / "run")["step"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: run on a GPU machine with "
                                                          "pytest tests/test_finetune_distributed.py -m gpu")
def test_bf16_autocast_on_a_gpu_trains_float32_weights():
    splits, tok, model = toy_task()
    model.cuda()
    metrics = finetune_seq2seq(model, tok, splits, Seq2SeqConfig(**CFG), log=lambda _: None)
    assert metrics["train_loss"] is not None and metrics["train_loss"] < 10
    assert all(p.dtype == torch.float32 for p in model.parameters())
