"""Train a preset (``small`` by default) for a fixed number of steps; print tokens/s and MFU.

    python benchmarks/train_throughput.py --steps 150                     # GPU: the small preset, SDPA
    python benchmarks/train_throughput.py --steps 150 --backend flex      # FlexAttention
    PMLM_SMOKE=1 python benchmarks/train_throughput.py --device cpu       # CPU smoke run

Runs ``pmlm.train`` (skips with a message where that module is absent), reads the run's
``metrics.jsonl`` and reports the median ``tokens_per_s`` (context tokens; the first log window,
which holds compilation and warm-up, is left out), the model FLOPs per context token (counted by
torch's FlopCounterMode on one step of the run's model at the run's batch shape, dense attention),
their product in TFLOP/s, and the model FLOPs utilisation against the device's bf16 peak
(``PEAK_TFLOPS`` overrides it).

Where ``datasets`` is not installed (the GPU machine has none), the bundled Austen corpus is read
with ``gzip`` and ``json`` instead: the same rows, grouped into the same documents.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib.util
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

import common


def read_bundled_without_datasets() -> None:
    """Make ``pmlm.data.load_documents`` read the bundled corpus without ``datasets``."""
    import pmlm.data as data
    import pmlm.data.corpus as corpus_module

    original = data.load_documents

    def load_documents(dataset=None, text_column=None, doc_column=None):
        if dataset not in (None, "austen"):
            return original(dataset, text_column, doc_column)
        with gzip.open(data.bundled_austen_file(), "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        texts = [r[text_column or "text"] for r in rows]
        keys = [tuple(r[c] for c in ((doc_column,) if doc_column else ("book", "chapter"))) for r in rows]
        return data.group_rows(texts, keys), "bundled Jane Austen novels (read without datasets)"

    corpus_module.load_documents = load_documents


def flops_per_step(cfg, vocab_size: int, device: str) -> tuple[int, int]:
    """Model FLOPs of one training step of ``cfg``'s model and batch shape, and its context tokens."""
    import pmlm
    model_cfg = dataclasses.replace(cfg.model_config(vocab_size), attention_backend="sdpa",
                                    dropout=0.0, attention_dropout=0.0)
    size = common.Size(batch=cfg.batch_size, n=cfg.max_length, layers=model_cfg.num_layers,
                       hidden=model_cfg.hidden_size, heads=model_cfg.num_heads, ffn=model_cfg.intermediate_size,
                       vocab=model_cfg.vocab_size, dropout=0.0, attention_dropout=0.0,
                       max_positions=model_cfg.max_positions)
    batch = common.to_device(common.make_batches(size, 0)["pmlm"], device)
    model = pmlm.PMLMModel(model_cfg).to(device)
    objective = cfg.objective

    def step():
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                            enabled=torch.device(device).type == "cuda" and cfg.bf16):
            model.loss(batch, objective)["loss"].backward()

    return common.count_flops(step), size.batch * size.n


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--backend", default="sdpa", choices=("sdpa", "flex"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out-dir", type=Path, default=None, help="the run directory (default: a temporary one)")
    p.add_argument("--tokenizer", default=None, help="reuse this tokenizer.json (skips training one)")
    p.add_argument("--log-every", type=int, default=10)
    args, extra = p.parse_known_args(argv)  # anything else goes to pmlm.train as it is
    if importlib.util.find_spec("pmlm.train") is None:
        print("pmlm.train is not in this checkout: skipping the training run")
        return {}
    if importlib.util.find_spec("datasets") is None:
        read_bundled_without_datasets()
    from pmlm.checkpoint import METRICS_FILE
    from pmlm.train import TrainConfig, main as train_main, parse_args

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix=f"pmlm-{args.preset}-{args.backend}-"))
    train_argv = ["--preset", args.preset, "--steps", str(args.steps), "--log-every", str(args.log_every),
                  "--eval-every", "0", "--save-every", "0", "--out-dir", str(out_dir), "--overwrite",
                  "--no-progress", "--device", args.device]
    if args.tokenizer:
        train_argv += ["--tokenizer", args.tokenizer]
    if args.backend == "flex":  # FlexAttention has no attention dropout
        train_argv += ["--set", "attention_backend=flex", "--set", "attention_dropout=0.0"]
    train_argv += extra
    cfg: TrainConfig = parse_args(train_argv)
    print("pmlm.train " + " ".join(train_argv), flush=True)
    train_main(train_argv)

    records = [json.loads(line) for line in (out_dir / METRICS_FILE).read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("split") == "train" and "tokens_per_s" in r]
    speeds = [r["tokens_per_s"] for r in (train[1:] if len(train) > 1 else train)]
    tokens_per_s = statistics.median(speeds) if speeds else float("nan")
    from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer
    vocab = load_tokenizer(out_dir / TOKENIZER_FILE).get_vocab_size()
    flops, tokens = flops_per_step(cfg, vocab, args.device)
    achieved = tokens_per_s * flops / tokens
    peak = common.peak_flops(args.device)
    result = {"preset": args.preset, "backend": args.backend, "steps": args.steps, "device": args.device,
              "tokens_per_s": tokens_per_s, "flops_per_token": flops / tokens, "tflops": achieved / 1e12,
              "mfu": achieved / peak if peak else None, "final_loss": train[-1]["loss"] if train else None,
              "out_dir": str(out_dir)}
    print(f"{args.preset} preset, {args.backend}, {args.steps} steps on {args.device}: "
          f"{tokens_per_s:,.0f} context tokens/s, {flops / tokens / 1e6:.1f} MFLOP per context token, "
          f"{achieved / 1e12:.2f} TFLOP/s, MFU " + (f"{achieved / peak:.1%}" if peak else "- (no known peak)")
          + (f", last train loss {train[-1]['loss']:.3f}" if train else ""))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
