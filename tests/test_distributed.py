"""Distributed pre-training: 2 processes, gloo on the CPU, launched by torchrun.

DistributedDataParallel averages the gradients of both ranks before every optimizer step, so both
ranks must hold bit-identical weights after every step although each reads different examples;
rank 0 alone writes the run directory.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pmlm.checkpoint import load_pretrained, read_checkpoint, read_metrics
from pmlm.data import PackedDataset
from pmlm.train import BatchOrder, Dist, TrainConfig

ROOT = Path(__file__).resolve().parents[1]

RANK_SCRIPT = """
import hashlib, json, os, sys
import torch
from pmlm.train import TrainConfig, pretrain

cfg = TrainConfig(**json.loads(sys.argv[1]))
rank = int(os.environ["RANK"])
fingerprints = []

def on_step(step, model, record):
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    fingerprints.append({"step": step, "sha1": hashlib.sha1(flat.numpy().tobytes()).hexdigest()})

pretrain(cfg, on_step=on_step)
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump(fingerprints, f)
"""


def test_ranks_read_disjoint_examples():
    data = PackedDataset([[2, i, 3, i, 3] for i in range(40)])
    orders = [BatchOrder(data, 4, seed=0, d=Dist(rank=r, world=2)) for r in (0, 1)]
    for micro in range(12):  # two epochs of 5 batches per rank, and a bit of the third
        a, b = orders[0](micro), orders[1](micro)
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    epoch = [i for m in range(5) for o in orders for i in o(m)]
    assert sorted(epoch) == list(range(40))  # one epoch covers the data once across ranks


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync(tmp_path):
    cfg = TrainConfig(model="tiny", model_overrides={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                     "intermediate_size": 64, "max_positions": 64},
                      max_documents=10, vocab_size=800, max_length=48, steps=4, batch_size=4,
                      warmup_steps=1, log_every=1, eval_every=2, eval_examples=8, save_every=2,
                      out_dir=str(tmp_path / "run"), progress=False, device="cpu")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(  # torchrun --standalone --nproc_per_node 2 rank.py CONFIG OUT
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), json.dumps(cfg.to_dict()), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [f["step"] for f in ranks[0]] == [1, 2, 3, 4]
    assert ranks[0] == ranks[1]  # identical weights on both ranks after every step
    assert len({f["sha1"] for f in ranks[0]}) == 4  # and they did change every step

    records = read_metrics(tmp_path / "run")  # rank 0 alone logs: one line per step
    train_steps = [r["step"] for r in records if r.get("split") == "train"]
    assert train_steps == [1, 2, 3, 4]
    assert records[0]["event"] == "start" and records[0]["world_size"] == 2
    state = read_checkpoint(tmp_path / "run")
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # own dropout per rank
    model, tok = load_pretrained(tmp_path / "run")
    assert model.config.vocab_size == tok.get_vocab_size()
