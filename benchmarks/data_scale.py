"""Pre-training data at scale: today's in-memory path against a prepared directory, side by side.

For each corpus size (synthetic: the bundled Austen chapters, paragraphs shuffled, one document per
``.txt`` file, repeated to the size) it measures, in one run on this machine:

* ``prepare``: wall time, MB/s and peak resident memory (GNU time), and the limit it is held
  against: the tokenizer's own ``encode_batch`` on the same text with the same cores;
* training: the time from the command to the end of 2 steps and its peak memory, with
  ``--dataset DIR`` (today's path: every document in Python lists) and ``--data PREPARED``;
* the step: fetching a 32-example batch from the memory-mapped shards against the in-memory lists,
  interleaved, next to a tiny training step, so the ratio of the two training steps is
  ``(step + fetch_prepared) / (step + fetch_memory)``.

Corpora are built under ``runs/data_scale/`` (never committed). Today's path is not run above
``--memory-limit-mb`` of text (its ~35 MB of memory per MB of text would not fit). Results go to
``results/data_scale.json`` and, with ``--write``, to a table in ``benchmarks/RESULTS.md``.

    python benchmarks/data_scale.py --sizes 10 100 1000 --write
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "data_scale"
RESULTS_JSON = ROOT / "results" / "data_scale.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_corpus(mb: int, folder: Path) -> Path:
    """``mb`` MB of Austen chapters, paragraphs shuffled, one document per ``.txt`` file."""
    from pmlm.data import load_documents

    if (folder / "DONE").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    docs, _ = load_documents()
    rng, size, i = random.Random(0), 0, 0
    while size < mb * 1e6:
        doc = list(docs[i % len(docs)])
        rng.shuffle(doc)
        text = "\n\n".join(doc) + "\n"
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(exist_ok=True)
        (sub / f"doc{i:07d}.txt").write_text(text)
        size += len(text)
        i += 1
    (folder / "DONE").write_text(str(i))
    return folder


def timed(cmd: list[str], env=None) -> dict:
    """Wall seconds and peak resident MB of a command (GNU time), or its error."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    last = out.stderr.strip().splitlines()[-1].split()
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-2][:300] if len(out.stderr.splitlines()) > 1 else "failed"}
    return {"seconds": float(last[0]), "peak_mb": int(last[1]) / 1024}


def encode_limit(folder: Path, tokenizer: Path, budget_mb: float = 50.0) -> float:
    """MB/s of ``encode_batch`` alone (its own threads, all cores) on the first ``budget_mb`` MB."""
    from pmlm.data.sources import read_text_file, split_paragraphs
    from pmlm.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    paragraphs, size = [], 0
    for p in sorted(folder.rglob("*.txt")):
        paragraphs += split_paragraphs(read_text_file(p))
        size = sum(map(len, paragraphs)) if len(paragraphs) % 50 == 0 else size
        if size > budget_mb * 1e6:
            break
    size = sum(map(len, paragraphs))
    t = time.perf_counter()
    for i in range(0, len(paragraphs), 4096):
        tok.encode_batch(paragraphs[i:i + 4096], add_special_tokens=False)
    return size / 1e6 / (time.perf_counter() - t)


def fetch_and_step(prepared: Path, folder: Path, rounds: int = 5) -> dict:
    """Seconds to fetch a 32-example batch, prepared vs in memory (interleaved), and a tiny step."""
    import torch

    from pmlm.data import prepare_corpus
    from pmlm.data.shards import open_prepared
    from pmlm.train import TrainConfig
    from pmlm.train.batches import BatchOrder, MicroBatches
    from pmlm.train.distributed import Dist
    from pmlm.tokenizer import make_collator

    disk = open_prepared(prepared, 64)
    files = sorted(folder.rglob("*.txt"))[:300]  # the in-memory side: a 300-document sample
    sample = folder.parent / (folder.name + "-sample")
    if not sample.is_dir():
        sample.mkdir()
        for p in files:
            shutil.copy(p, sample / p.name)
    memory = prepare_corpus(str(sample), max_length=64, tokenizer=disk.tokenizer)
    times = {"prepared": [], "memory": []}
    for _ in range(rounds):
        for name, split in (("prepared", disk.train), ("memory", memory.train)):
            order = BatchOrder(split, 32, 0, Dist())
            t = time.perf_counter()
            for m in range(200):
                [split[i] for i in order(m)]
            times[name].append((time.perf_counter() - t) / 200)
    cfg = TrainConfig.preset("tiny")
    model = __import__("pmlm").PMLMModel(cfg.model_config(disk.tokenizer.get_vocab_size()))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = MicroBatches(memory.train, BatchOrder(memory.train, 32, 0, Dist()),
                           make_collator(disk.tokenizer, max_length=64, generator=torch.Generator()), 0, 0)
    steps = []
    for m in range(25):
        batch = batches[m]
        batch.pop("text_tokens")
        t = time.perf_counter()
        model.loss(batch, objective="ae+par")["loss"].backward()
        opt.step()
        opt.zero_grad()
        steps.append(time.perf_counter() - t)
    step = sorted(steps[5:])[len(steps[5:]) // 2]
    fp, fm = (sorted(v)[len(v) // 2] for v in (times["prepared"], times["memory"]))
    return {"fetch_prepared_s": fp, "fetch_memory_s": fm, "tiny_step_s": step,
            "step_ratio": (step + fp) / (step + fm), "arrow": arrow_against_shards(disk.train, rounds)}


def arrow_against_shards(split, rounds: int, n: int = 20_000) -> dict:
    """The format question: the same examples as a ``datasets`` Arrow table (``save_to_disk``, read
    memory-mapped by ``load_from_disk``) against the shards, for random 32-example batches."""
    import tempfile

    import datasets

    datasets.disable_progress_bars()
    n = min(n, len(split))
    examples = [split[i] for i in range(n)]
    rng = random.Random(0)
    picks = [[rng.randrange(n) for _ in range(32)] for _ in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        datasets.Dataset.from_dict({"ids": examples}).save_to_disk(tmp)
        write_s = time.perf_counter() - t
        table = datasets.load_from_disk(tmp)
        arrow_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        times = {"shards": [], "arrow": []}
        for _ in range(rounds):
            t = time.perf_counter()
            for batch in picks:
                [split[i] for i in batch]
            times["shards"].append((time.perf_counter() - t) / len(picks))
            t = time.perf_counter()
            for batch in picks:
                table[batch]["ids"]
            times["arrow"].append((time.perf_counter() - t) / len(picks))
    tokens = sum(len(e) for e in examples)
    width = split.dtype.itemsize if hasattr(split, "dtype") else 2
    return {"examples": n, "arrow_batch_s": sorted(times["arrow"])[rounds // 2],
            "shards_batch_s": sorted(times["shards"])[rounds // 2], "arrow_write_s": write_s,
            "arrow_bytes_per_token": arrow_bytes / tokens, "shard_bytes_per_token": width}


def measure(mb: int, memory_limit: int, workers: int) -> dict:
    folder = build_corpus(mb, RUNS / f"corpus-{mb}MB")
    text_mb = sum(p.stat().st_size for p in folder.rglob("*.txt")) / 1e6
    py = sys.executable
    row = {"size_mb": mb, "text_mb": round(text_mb, 1)}
    prepared = RUNS / f"prepared-{mb}MB"
    shutil.rmtree(prepared, ignore_errors=True)
    row["prepare"] = timed([py, "-m", "pmlm.prepare", str(folder), "--out", str(prepared), "--max-length", "64",
                            "--workers", str(workers), "--no-progress"])
    if "seconds" in row["prepare"]:
        row["prepare"]["mb_per_s"] = text_mb / row["prepare"]["seconds"]
        phases = json.loads((prepared / "manifest.json").read_text())["seconds"]
        row["prepare"]["phases_s"] = phases
        row["prepare"]["encode_mb_per_s"] = text_mb / phases["encode"]
        row["encode_batch_mb_per_s"] = encode_limit(folder, prepared / "tokenizer.json")
        row["prepare_share_of_limit"] = row["prepare"]["mb_per_s"] / row["encode_batch_mb_per_s"]
        row["encode_share_of_limit"] = row["prepare"]["encode_mb_per_s"] / row["encode_batch_mb_per_s"]
    train = [py, "-m", "pmlm.train", "--steps", "2", "--eval-every", "0", "--no-progress", "--overwrite"]
    row["train_prepared"] = timed([*train, "--data", str(prepared), "--out-dir", str(RUNS / "run-prepared")])
    if mb <= memory_limit:
        row["train_memory"] = timed([*train, "--dataset", str(folder), "--out-dir", str(RUNS / "run-memory")])
    else:
        row["train_memory"] = {"skipped": f"over {memory_limit} MB of text: ~35 MB of memory per MB would not fit"}
    row["step"] = fetch_and_step(prepared, folder)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="corpus sizes in MB")
    p.add_argument("--memory-limit-mb", type=int, default=100, help="largest corpus today's path is run on")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    p.add_argument("--step-only", action="store_true",
                   help="re-measure only the step comparison of the recorded sizes (their corpora still on disk)")
    args = p.parse_args(argv)
    import common

    if args.step_only:
        results = json.loads(RESULTS_JSON.read_text())
        for row in results["rows"]:
            mb = row["size_mb"]
            row["step"] = fetch_and_step(RUNS / f"prepared-{mb}MB", RUNS / f"corpus-{mb}MB")
            row["step_machine"] = common.machine_line(common.machine())
            print(mb, json.dumps(row["step"]), flush=True)
        results["step_date"] = time.strftime("%Y-%m-%d")
        common.dump_json(results, RESULTS_JSON)
        args.sizes = []
    else:
        results = {"machine": common.machine_line(common.machine()), "workers": args.workers, "rows": [],
                   "date": time.strftime("%Y-%m-%d")}
    if RESULTS_JSON.is_file() and not args.step_only:  # keep sizes measured earlier that this run does not repeat
        old = json.loads(RESULTS_JSON.read_text())
        results["rows"] = [r for r in old.get("rows", []) if r["size_mb"] not in args.sizes]
    for mb in args.sizes:
        row = measure(mb, args.memory_limit_mb, args.workers)
        row["machine"] = common.machine_line(common.machine())
        results["rows"] = sorted([r for r in results["rows"] if r["size_mb"] != mb] + [row],
                                 key=lambda r: r["size_mb"])
        common.dump_json(results, RESULTS_JSON)
        print(json.dumps(row, indent=1), flush=True)
    from pmlm.report_tables import data_scale_block

    print(data_scale_block())
    if args.write:
        common.update_results("data_scale", "## Pre-training data at scale (benchmarks/data_scale.py)\n\n"
                              + data_scale_block())


if __name__ == "__main__":
    main()
