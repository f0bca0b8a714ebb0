"""The benchmarks measure what they claim: the naive baseline is the same math as the one pass, and
each benchmark script runs end to end at tiny sizes (a smoke test; the real runs are `make bench`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402

import pmlm  # noqa: E402


@pytest.fixture(scope="module")
def batches():
    return common.make_batches(common.TINY, seed=0)


def test_naive_passes_hold_each_step_once(batches):
    one, passes = batches["pmlm"], batches["naive"]
    steps = int(one["step_ids"].abs().max())
    assert len(passes) == 1 + steps
    assert int((passes[0]["ae_labels"] != -100).sum()) == int((one["ae_labels"] != -100).sum())
    assert sum(int((p["par_labels"] != -100).sum()) for p in passes) == int((one["par_labels"] != -100).sum())
    for i, p in enumerate(passes[1:], start=1):  # context, earlier originals, this step's [P]s: nothing else
        s = p["step_ids"][p["valid"]]
        assert ((s == 0) | ((s > 0) & (s < i)) | (s == -i)).all()
    assert (passes[0]["step_ids"] == 0).all()
    # the MLM batch is the one-pass context: same masks and replacements, L = n
    mlm = batches["mlm"]
    assert torch.equal(mlm["input_ids"], one["input_ids"][:, : mlm["input_ids"].shape[1]])


def test_naive_recomputation_gives_the_one_pass_loss_and_gradients(batches):
    torch.manual_seed(0)
    size = common.TINY
    model = pmlm.PMLMModel(size.config(dropout=0.0, attention_dropout=0.0, initializer_range=0.2))
    one = model.loss(batches["pmlm"])["loss"]
    one.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    naive = common.naive_loss_backward(model, batches["naive"])
    torch.testing.assert_close(naive, one.detach(), rtol=1e-5, atol=1e-6)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, a, rtol=1e-4, atol=1e-6)


def test_interleaved_rotates_the_order_and_ratios_pair_rounds():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = common.interleaved(steps, rounds=3, warmup=0)
    assert calls == list("abc") + list("bca") + list("cab")
    assert all(len(t) == 3 for t in times.values())
    r = common.ratios({"a": [2.0, 4.0, 6.0], "b": [1.0, 1.0, 2.0]}, "a", "b")
    assert r["median"] == 3.0 and r["min"] == 2.0 and r["max"] == 4.0


def run(script, *args):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--tiny", "--threads", "1", *args],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_step_cost_runs():
    out = run("step_cost.py", "--rounds", "2", "--warmup", "0")
    assert "pmlm / mlm" in out and "naive / pmlm" in out


@pytest.mark.slow
def test_scaling_runs_and_draws(tmp_path):
    fig, data = tmp_path / "fig.png", tmp_path / "scaling.json"
    out = run("scaling.py", "--rounds", "1", "--warmup", "0", "--methods", "mlm,pmlm,naive",
              "--figure", str(fig), "--json", str(data))
    assert "| 32 |" in out and "Peak resident memory" in out
    assert fig.stat().st_size > 10_000
    fig.unlink()
    run("scaling.py", "--plot-only", str(data), "--figure", str(fig))
    assert fig.exists()


@pytest.mark.slow
def test_collator_throughput_runs():
    out = run("collator_throughput.py", "--rounds", "2", "--workers", "0,1", "--loop-rounds", "1", "--loop-steps", "1")
    assert "Collate / step" in out and "DataLoader, 1 worker" in out


def test_gpu_check_script_parses():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_loop_overhead_runs():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_overhead.py"), "--steps", "4",
                          "--rounds", "1"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PMLM_SMOKE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Loop / bare: median" in out.stdout
