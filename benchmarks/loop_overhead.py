"""The training loop's own overhead: tokens/s of ``pmlm.train`` against the bare step on the same batches.

    python benchmarks/loop_overhead.py --write            # tiny preset, 300 steps x 3 rounds

The loop (:func:`pmlm.train.pretrain`) does more than the step: it builds every masked batch
(Algorithm 1, layout, masks), evaluates every ``eval_every`` steps, logs and saves checkpoints; its
time is the run's ``loop_s`` (from the first step to the last checkpoint; loading the corpus before
and writing the model files after are not part of it). The *bare step* is forward, backward, clipping and the AdamW update on batches
built beforehand. Both run the tiny preset's model and the very same micro-batches (micro-steps
0..N-1 of seed 0), interleaved round by round on one machine; the overhead is
``1 - loop tokens/s / bare tokens/s``, median over rounds (target: under 10%). Text tokens are the
context tokens, as ``tokens_per_s`` counts them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import common

from pmlm.checkpoint import read_metrics
from pmlm.train import TrainConfig, pretrain
from pmlm.train.batches import BatchOrder, MicroBatches, load_corpus
from pmlm.train.distributed import Dist
from pmlm.train.optim import init_for_short_runs, make_optimizer
from pmlm.data import unigram_log_probs
from pmlm.model import PMLMModel
from pmlm.tokenizer import make_collator, save_tokenizer


def bare_steps(cfg: TrainConfig, corpus, batches: list[dict]) -> float:
    """Seconds for the bare steps over ``batches`` (fresh model and optimizer, as the run starts)."""
    torch.manual_seed(cfg.seed)
    model = PMLMModel(cfg.model_config(corpus.tokenizer.get_vocab_size()))
    init_for_short_runs(model, unigram_log_probs(corpus))
    model.train()
    opt = make_optimizer(model, cfg)
    t = time.perf_counter()
    for batch in batches:
        model.loss(batch, cfg.objective)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    common.keep_freed_memory()
    info = common.machine()
    with tempfile.TemporaryDirectory() as tmp:
        base = TrainConfig.preset("tiny", steps=args.steps, progress=False, out_dir=f"{tmp}/run",
                                  overwrite=True)  # smoke mode (PMLM_SMOKE=1) shrinks the data
        d = Dist(rank=0, world=1, local_rank=0, owns_group=False)
        corpus = load_corpus(base, None, d)
        tok_path = Path(tmp) / "tokenizer.json"
        save_tokenizer(corpus.tokenizer, tok_path)
        cfg = TrainConfig.preset("tiny", steps=base.steps, progress=False, out_dir=f"{tmp}/run",
                                 overwrite=True, tokenizer=str(tok_path),
                                 **({"max_documents": base.max_documents} if base.max_documents else {}))
        collator = make_collator(corpus.tokenizer, objective=cfg.objective, max_length=cfg.max_length,
                                 generator=torch.Generator())
        micro = MicroBatches(corpus.train, BatchOrder(corpus.train, cfg.batch_size, cfg.seed, d),
                             collator, cfg.seed, 0)
        batches = [micro[m] for m in range(cfg.steps)]
        tokens = sum(float(b.pop("text_tokens")) for b in batches)
        ratios, loops, bares = [], [], []
        for r in range(args.rounds):
            run = pretrain(cfg)
            loop_s = next(r for r in read_metrics(run) if r.get("event") == "end")["loop_s"]
            bare_s = bare_steps(cfg, corpus, batches)
            loops.append(tokens / loop_s)
            bares.append(tokens / bare_s)
            ratios.append(loops[-1] / bares[-1])
            print(f"round {r + 1}: loop {loops[-1]:,.0f} text tokens/s (training loop), bare step "
                  f"{bares[-1]:,.0f}: loop / bare {ratios[-1]:.3f}", flush=True)
    med = statistics.median(ratios)
    text = (f"### Training-loop overhead (tiny preset, {cfg.steps} steps x {args.rounds} rounds)\n\n"
            f"Machine: {common.machine_line(info)}; {info['date']}.\n\n"
            f"| | text tokens/s (median) |\n|---|---|\n"
            f"| bare step (batches built beforehand) | {statistics.median(bares):,.0f} |\n"
            f"| `pmlm.train.pretrain`, its training loop: batches built on the fly, evaluation every "
            f"{cfg.eval_every} steps, logging, checkpoints | {statistics.median(loops):,.0f} |\n\n"
            f"Loop / bare: median {med:.3f} over rounds ({', '.join(f'{x:.3f}' for x in ratios)}), i.e. "
            f"an overhead of {100 * (1 - med):.1f}% (target: under 10%). Written by `benchmarks/loop_overhead.py`.")
    print(text)
    if args.write:
        common.update_results("loop-overhead", text)


if __name__ == "__main__":
    main()
