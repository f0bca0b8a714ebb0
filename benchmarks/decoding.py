"""Decoding speed, two questions side by side: ``python benchmarks/decoding.py``.

1. *The cache*: cached decoding against recomputing the prefix every step. The `tiny` model
   (random weights: cost does not depend on what it has learned), 16 sources of 30 tokens,
   ``[EOS]`` forbidden so that every step runs; for each (max_length, beam) both ways are timed in
   interleaved rounds (the order alternating), the speed-up is the median of the per-round ratios.
   Both ways must give the same tokens (checked here and in ``tests/test_decoding.py``).
2. *Batches*: sources per second decoded one at a time against in batches (sorted by length, as
   ``python -m pmlm.predict generate`` does), greedy and beam 5, with the shipped reference model
   (``pmlm.load_reference``) on test verses of the verse task cut to 64 tokens, 32 tokens
   generated for each (``[EOS]`` forbidden, so that every source costs the same steps whatever the
   model would write). Interleaved rounds again; the outputs of both ways are compared.

Writes ``results/decoding.json`` (machine, threads, seeds, load at the start), which
``docs/finetuning.md`` renders (``python -m pmlm.reports``). About a minute on 2 free cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pmlm  # noqa: E402
from pmlm.corpora.splits import bible_splits  # noqa: E402
from pmlm.finetune.common import encode_texts  # noqa: E402
from pmlm.finetune.data import subsample  # noqa: E402
from pmlm.finetune.decoding import generate  # noqa: E402
from pmlm.machine import busy_cores, machine_info  # noqa: E402
from pmlm.model_files import write_atomic  # noqa: E402
from pmlm.pretrained import REFERENCE, load_reference  # noqa: E402
from pmlm.tokenizer import special_ids  # noqa: E402

IDS = {"pad": 0, "sos": 1, "eos": 2, "mask": 3, "pseudo": 4, "unk": 5}
SOURCE_TOKENS = 64  # verses cut to this many word pieces (most are shorter: ragged, as real input is)
TARGET_TOKENS = 32


def interleaved(ways: dict, rounds: int) -> tuple[dict[str, list[float]], dict]:
    """Seconds of each way (a function of no arguments) per round, the order alternating; last outputs."""
    times: dict[str, list[float]] = {w: [] for w in ways}
    outputs = {}
    for r in range(rounds):
        for way in (list(ways) if r % 2 == 0 else list(reversed(ways))):
            start = time.perf_counter()
            outputs[way] = ways[way]()
            times[way].append(time.perf_counter() - start)
    return times, outputs


def cache_rows(rounds: int, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    model = pmlm.PMLMModel(pmlm.PMLMConfig.preset("tiny", vocab_size=8192)).eval()
    g = torch.Generator().manual_seed(seed)
    sources = [torch.randint(6, 8192, (30,), generator=g).tolist() for _ in range(16)]
    rows = []
    for max_length in (32, 64):
        for beam in (1, 4):
            kw = dict(beam_size=beam, max_length=max_length, min_length=max_length)
            times, outputs = interleaved({way: (lambda c=way == "cached": generate(model, sources, IDS, use_cache=c, **kw))
                                          for way in ("cached", "recomputed")}, rounds)
            same = outputs["cached"] == outputs["recomputed"]
            ratio = statistics.median(b / a for a, b in zip(times["cached"], times["recomputed"]))
            rows.append({"max_length": max_length, "beam": beam, "cached_s": statistics.median(times["cached"]),
                         "recomputed_s": statistics.median(times["recomputed"]), "speedup": ratio,
                         "same_tokens": same})
            print(f"max_length {max_length}, beam {beam}: cached {rows[-1]['cached_s']:.2f} s, recomputed "
                  f"{rows[-1]['recomputed_s']:.2f} s, {ratio:.1f}x, same tokens: {same}", flush=True)
    return rows


def throughput(rounds: int, n_sources: int, batch_size: int, seed: int) -> dict:
    model, tok = load_reference()
    rows = subsample(bible_splits()["test"], n_sources, seed)
    sources = [s[:SOURCE_TOKENS] for s in encode_texts(tok, [r["source"] for r in rows])]
    ids = special_ids(tok)
    out = []
    for beam in (1, 5):
        kw = dict(beam_size=beam, max_length=TARGET_TOKENS, min_length=TARGET_TOKENS)
        times, outputs = interleaved({"one": lambda: generate(model, sources, ids, batch_size=1, **kw),
                                      "batched": lambda: generate(model, sources, ids, batch_size=batch_size, **kw)},
                                     rounds)
        one, batched = statistics.median(times["one"]), statistics.median(times["batched"])
        same = outputs["one"] == outputs["batched"]
        differ = sum(a != b for a, b in zip(outputs["one"], outputs["batched"]))
        ratio = statistics.median(a / b for a, b in zip(times["one"], times["batched"]))
        out.append({"beam": beam, "one_s": one, "batched_s": batched, "one_per_s": n_sources / one,
                    "batched_per_s": n_sources / batched, "speedup": ratio, "same_tokens": same,
                    "sources_differing": differ})
        print(f"beam {beam}: one at a time {n_sources / one:.1f} sources/s, batches of {batch_size} "
              f"{n_sources / batched:.1f} sources/s ({ratio:.1f}x), same tokens: {same}", flush=True)
    lengths = sorted(len(s) for s in sources)
    return {"model": REFERENCE, "sources": n_sources, "batch_size": batch_size,
            "source_tokens": {"min": lengths[0], "median": statistics.median(lengths), "max": lengths[-1]},
            "target_tokens": TARGET_TOKENS, "rounds": rounds, "rows": out}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the tiny model's weights and sources; the verse sample")
    p.add_argument("--sources", type=int, default=64, help="test verses decoded in the throughput part")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "results" / "decoding.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    busy = busy_cores()
    machine = machine_info()
    start = time.perf_counter()
    rows = cache_rows(args.rounds, args.seed)
    result = {"machine": machine, "busy_cores_at_start": round(busy, 2), "threads": args.threads,
              "seed": args.seed, "rounds": args.rounds, "sources": 16, "source_tokens": 30, "model": "tiny",
              "rows": rows, "throughput": throughput(args.rounds, args.sources, args.batch_size, args.seed)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    write_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")
    print(f"{result['seconds']:.0f} s; written to {args.out}")
    return result


if __name__ == "__main__":
    main()
