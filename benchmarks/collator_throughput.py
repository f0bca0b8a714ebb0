"""What building a batch costs next to a training step: the collator alone, and in a DataLoader.

    python benchmarks/collator_throughput.py            # batch 16, n 128, 2 threads
    python benchmarks/collator_throughput.py --tiny     # smoke run

Two measurements, both interleaved:

1. In process (what ``num_workers=0`` costs): one ``PMLMCollator`` call (Algorithm 1, the 80/10/10
   replacement, the layout and the (B, L, L) masks of a batch) alternated with one PMLM training
   step; the ratio collate / step per round, median and spread. Target: under 5%. The collator's
   parts are timed too (sampling, corruption + layout, padding + masks).
2. Training loops fed by a ``DataLoader`` with 0, 1 and 2 workers against the same loop on a fixed,
   pre-built batch, in blocks of steps rotated round by round: the extra seconds per step that the
   data pipeline adds. Workers compete with the training threads for the same cores here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader

import common
import pmlm
from common import fmt_spread, spread
from pmlm.collator import pad_and_mask
from pmlm.masking import sample_blocks


def collator_parts(collator: pmlm.PMLMCollator, seqs: list[list[int]]) -> dict[str, float]:
    """Seconds, on one batch, of Algorithm 1 alone, of the per-example work (Algorithm 1, the
    replacement and the layout: ``collator.example``) and of padding plus the (B, L, L) masks."""
    t0 = time.perf_counter()
    for ids in seqs:
        sample_blocks(len(ids), maskable=[t not in collator._special for t in ids], **collator.sample_kwargs)
    t1 = time.perf_counter()
    examples = [collator.example(ids) for ids in seqs]
    t2 = time.perf_counter()
    pad_and_mask(examples, collator.pad_id)
    t3 = time.perf_counter()
    return {"sample": t1 - t0, "example": t2 - t1, "pad_mask": t3 - t2}


def endless(loader: DataLoader):
    while True:
        yield from loader


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_size_args(p)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--workers", default="0,1,2", help="DataLoader worker counts to try")
    p.add_argument("--loop-steps", type=int, default=4, help="steps per block in the DataLoader comparison")
    p.add_argument("--loop-rounds", type=int, default=3)
    p.add_argument("--write", action="store_true", help="update the collator section of RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = common.size_from_args(args)
    seqs = common.synthetic_sequences(size.batch, size.n, size.vocab, args.seed)
    collator = common.collator(size, "ae+par", args.seed)
    batches = common.make_batches(size, args.seed)
    step = common.build_step("pmlm", size, batches, seed=args.seed)

    # 1. collate vs. step, interleaved
    collator(seqs)
    step()
    times = {"collate": [], "step": []}
    parts = {"sample": [], "example": [], "pad_mask": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        collator(seqs)
        times["collate"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step()
        times["step"].append(time.perf_counter() - t0)
        for k, v in collator_parts(collator, seqs).items():
            parts[k].append(v)
    share = common.ratios(times, "collate", "step")

    # 2. training loops fed by DataLoaders vs. a fixed batch
    torch.manual_seed(args.seed)
    model = pmlm.PMLMModel(size.config()).train()
    opt = common.optimizer(model)

    def train_step(batch):
        opt.zero_grad(set_to_none=True)
        model.loss(batch)["loss"].backward()
        opt.step()

    corpus = common.synthetic_sequences(size.batch * 64, size.n, size.vocab, args.seed + 1)
    loop_collator = common.collator(size, "ae+par", seed=None)  # each worker draws from its own RNG
    feeds = {"fixed batch": None}
    loaders = []
    for w in (int(x) for x in args.workers.split(",") if x):
        loader = DataLoader(corpus, batch_size=size.batch, shuffle=True, collate_fn=loop_collator, num_workers=w,
                            persistent_workers=w > 0, prefetch_factor=2 if w > 0 else None)
        loaders.append(loader)
        feeds[f"DataLoader, {w} worker{'s' if w != 1 else ''}"] = endless(loader)
    for it in feeds.values():  # start the workers and warm up
        train_step(batches["pmlm"] if it is None else next(it))
    loop = {name: [] for name in feeds}
    names = list(feeds)
    for r in range(args.loop_rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            it = feeds[name]
            t0 = time.perf_counter()
            for _ in range(args.loop_steps):
                train_step(batches["pmlm"] if it is None else next(it))
            loop[name].append((time.perf_counter() - t0) / args.loop_steps)
    del feeds, loaders

    info = common.machine()
    lines = [f"Measured {info['date']} on {common.machine_line(info)}.", "",
             f"Batch {size.batch}, n {size.n}, PMLM collator (blockwise, 80/10/10, last copies dropped), "
             f"model {size.layers} x {size.hidden}; {args.rounds} interleaved rounds.", "",
             "| what | seconds: median [q25, q75] (min, max) |", "|---|---|",
             f"| collate one batch | {fmt_spread(spread(times['collate']), 4)} |",
             f"| - per example: Algorithm 1, replacement, layout | {fmt_spread(spread(parts['example']), 4)} |",
             f"| -- of which Algorithm 1 alone | {fmt_spread(spread(parts['sample']), 4)} |",
             f"| - padding and (B, L, L) masks | {fmt_spread(spread(parts['pad_mask']), 4)} |",
             f"| PMLM training step | {fmt_spread(spread(times['step']), 3)} |", "",
             f"Collate / step, same round: **{fmt_spread(share, 4)}** (target < 0.05: "
             f"{'met' if share['median'] < 0.05 else 'NOT met'}); one process collates "
             f"{1 / statistics.median(times['collate']):.0f} batches/s, "
             f"{size.batch / statistics.median(times['collate']):.0f} sequences/s.", "",
             f"Training loop, seconds per step ({args.loop_rounds} rotated blocks of {args.loop_steps} steps; "
             "DataLoader batches vary in L, so the loop includes that spread):", "",
             "| feed | s/step median [min, max] | vs fixed batch |", "|---|---|---|"]
    fixed = statistics.median(loop["fixed batch"])
    for name, ts in loop.items():
        lines.append(f"| {name} | {statistics.median(ts):.3f} [{min(ts):.3f}, {max(ts):.3f}] | "
                     f"{statistics.median(ts) / fixed:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        common.update_results("collator", text)
    return {"share": share, "times": times, "loop": loop}


if __name__ == "__main__":
    main()
