"""Training on a prepared directory (--data): the same run as in memory, exact resume of the data
position, a refused tokenizer, and 2 nodes on localhost (torchrun, c10d on 127.0.0.1, gloo)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pmlm.checkpoint import read_checkpoint, read_metrics
from pmlm.data import load_documents
from pmlm.prepare import prepare
from pmlm.train import TrainConfig, pretrain

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "max_positions": 64}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    docs, _ = load_documents()
    folder = tmp_path_factory.mktemp("text")
    for i, doc in enumerate(docs[:12]):
        (folder / f"c{i:02d}.txt").write_text("\n\n".join(doc) + "\n")
    out = tmp_path_factory.mktemp("prep") / "p"
    prepare([str(folder)], out, vocab_size=800, max_lengths=(48,), workers=1, shard_tokens=10_000, progress=False)
    return folder, out


def config(tmp_path, name, **kw):
    base = dict(model="tiny", model_overrides=SMALL, max_length=48, steps=6, batch_size=4, warmup_steps=1,
                log_every=1, eval_every=3, eval_examples=8, save_every=3, out_dir=str(tmp_path / name),
                progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def train_losses(run):
    return [r["loss"] for r in read_metrics(run) if r.get("split") == "train"]


@pytest.mark.slow
def test_prepared_run_is_the_in_memory_run(prepared, tmp_path):
    folder, data = prepared
    a = pretrain(config(tmp_path, "disk", data=str(data)))
    b = pretrain(config(tmp_path, "memory", dataset=str(folder), tokenizer=str(data / "tokenizer.json")))
    assert train_losses(a) == train_losses(b)  # same examples, order, masks and init
    state = read_checkpoint(a)
    assert state["data"]["micro_step"] == 6 and state["data"]["examples_consumed"] == 24
    assert state["data"]["fingerprint"] and read_checkpoint(b)["data"]["fingerprint"] is None


@pytest.mark.slow
def test_a_resumed_run_continues_at_the_exact_sample(prepared, tmp_path):
    _, data = prepared
    straight = pretrain(config(tmp_path, "straight", data=str(data)))

    class Killed(Exception):
        pass

    def kill_at_3(step, model, record):
        if step == 3:  # after the step-3 checkpoint, as a kill would find it
            raise Killed

    with pytest.raises(Killed):
        pretrain(config(tmp_path, "part", data=str(data)), on_step=kill_at_3)
    assert read_checkpoint(tmp_path / "part")["data"]["micro_step"] == 3
    resumed = pretrain(config(tmp_path, "part", data=str(data), resume=True))
    assert train_losses(resumed) == pytest.approx(train_losses(straight), rel=1e-6)


@pytest.mark.slow
def test_another_tokenizer_or_corpus_is_refused_with_one_line(prepared, tmp_path):
    folder, data = prepared
    run = pretrain(config(tmp_path, "mem", dataset=str(folder), steps=2, vocab_size=500))
    r = subprocess.run([sys.executable, "-m", "pmlm.train", "--data", str(data), "--max-length", "48",
                        "--tokenizer", str(run / "tokenizer.json"), "--out-dir", str(tmp_path / "x"), "--steps", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "another tokenizer" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "pmlm.train", "--data", str(data), "--dataset", str(folder),
                        "--out-dir", str(tmp_path / "y")], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--dataset belong to python -m pmlm.prepare" in r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_localhost_read_one_prepared_directory(prepared, tmp_path):
    _, data = prepared
    port, out = free_port(), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    model = ["--set", "hidden_size=32", "--set", "num_layers=1", "--set", "num_heads=2",
             "--set", "intermediate_size=64", "--set", "max_positions=64"]
    train = ["-m", "pmlm.train", "--data", str(data), "--max-length", "48", "--steps", "4", "--batch-size", "2",
             "--warmup-steps", "1", "--eval-every", "2", "--eval-examples", "8", "--log-every", "1",
             "--out-dir", str(out), "--device", "cpu", "--no-progress", *model]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "pmlm-test",
                               "--max-restarts", "0", *train],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    try:
        logs = [n.communicate(timeout=400)[0] for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    assert all(n.returncode == 0 for n in nodes), "\n".join(log[-2000:] for log in logs)
    records = read_metrics(out)
    assert records[0]["event"] == "start" and records[0]["world_size"] == 2
    assert [r["step"] for r in records if r.get("split") == "train"] == [1, 2, 3, 4]
    state = read_checkpoint(out)
    assert state["world_size"] == 2 and state["data"]["examples_consumed"] == 4 * 2 * 2
    assert json.loads((out / "training.json").read_text())["train_config"]["data"] == str(data)
