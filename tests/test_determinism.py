"""Reproducible and exact resume, bit for bit, with a fixed thread count (docs/training.md, Guarantees).

With the same seed, tokenizer and number of torch threads, two runs log the same losses and end
with the same weights, compared with ``==`` and ``torch.equal``; so does a run killed with SIGKILL
and resumed from its last checkpoint. The thread count is part of the arithmetic: a matrix product
on 2 threads sums in another order than on 1, so runs on different counts differ in the last bits
(measured: up to 9.5e-7 in the losses and 6e-8 in the weights after 20 tiny steps), and a run that
leaves the count to :func:`pmlm.machine.choose_threads` (one thread per core free at its start) may
get another count than its rerun or its resume on a machine whose load has changed.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pmlm.checkpoint import read_checkpoint, read_metrics
from pmlm.train import TrainConfig, pretrain

ROOT = Path(__file__).resolve().parents[1]
from tiny import MODEL



def cfg(out, tokenizer_path, threads: int, **kw) -> TrainConfig:
    base = dict(model="tiny", model_overrides=MODEL, max_documents=12, vocab_size=1000, max_length=48,
                steps=12, batch_size=4, warmup_steps=2, log_every=1, eval_every=6, eval_examples=8,
                save_every=4, out_dir=str(out), progress=False, tokenizer=tokenizer_path, threads=threads)
    base.update(kw)
    return TrainConfig(**base)


def curve(run) -> list[tuple]:
    """Every logged loss, train and validation, with its step."""
    return [(r["step"], r.get("ae_loss"), r.get("par_loss"), r.get("val_ae_loss"), r.get("val_par_loss"))
            for r in read_metrics(run) if r.get("split") in ("train", "val")]


def weights(run) -> dict[str, torch.Tensor]:
    return read_checkpoint(run, map_location="cpu")["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tokenizer_path):
    """The uninterrupted run on 1 and on 2 threads."""
    out = tmp_path_factory.mktemp("reference")
    return {n: pretrain(cfg(out / f"threads{n}", tokenizer_path, n)) for n in (1, 2)}


@pytest.mark.parametrize("threads", [1, 2])
def test_two_runs_on_the_same_thread_count_are_bit_for_bit(tmp_path, tokenizer_path, reference, threads):
    again = pretrain(cfg(tmp_path / "again", tokenizer_path, threads))
    assert curve(again) == curve(reference[threads])  # ==, not approx
    assert same_weights(weights(again), weights(reference[threads]))


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
@pytest.mark.parametrize("threads", [1, 2])
def test_a_killed_run_resumes_bit_for_bit(tmp_path, tokenizer_path, reference, threads):
    killed = cfg(tmp_path / "killed", tokenizer_path, threads)
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(killed.to_dict()), "6"],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert read_checkpoint(killed.out_dir)["step"] == 4  # the kill came after step 6: two steps are redone
    resumed = pretrain(cfg(tmp_path / "killed", tokenizer_path, threads, resume=True))
    assert curve(resumed) == curve(reference[threads])
    assert same_weights(weights(resumed), weights(reference[threads]))


def test_another_thread_count_differs_only_in_the_last_bits(reference):
    """What the docs state for runs on different thread counts: at most 1e-5 apart here."""
    one, two = curve(reference[1]), curve(reference[2])
    assert [r[0] for r in one] == [r[0] for r in two]
    gaps = [abs(x - y) for a, b in zip(one, two) for x, y in zip(a[1:], b[1:]) if x is not None]
    assert max(gaps) <= 1e-5, max(gaps)
    a, b = weights(reference[1]), weights(reference[2])
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_a_resume_without_threads_takes_the_count_the_run_started_with(tmp_path, tokenizer_path, monkeypatch):
    """Left to itself, a resume would choose from the cores free at *its* start, and so could
    compute in another order than the run it continues; it takes the recorded count instead."""
    from pmlm import machine

    for name in machine.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(machine, "free_cores", lambda: 1)  # the resume starts on a busier machine
    run = pretrain(cfg(tmp_path / "run", tokenizer_path, 2, steps=4, eval_every=0))
    pretrain(cfg(tmp_path / "run", tokenizer_path, None, steps=6, eval_every=0, resume=True))
    ends = [r for r in read_metrics(run) if r.get("event") == "end"]
    assert [(r["threads"], r["threads_chosen_by"]) for r in ends] == [
        (2, "--threads"), (2, "the count the resumed run started with")]
    pretrain(cfg(tmp_path / "run", tokenizer_path, 1, steps=8, eval_every=0, resume=True))  # --threads wins
    assert [r["threads"] for r in read_metrics(run) if r.get("event") == "end"][-1] == 1
