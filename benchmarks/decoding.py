"""Cached decoding against recomputation, side by side: ``python benchmarks/decoding.py``.

The `tiny` model (random weights: cost does not depend on what it has learned), 16 sources of 30
tokens, ``[EOS]`` forbidden so that every step runs; for each (max_length, beam) both ways are
timed in interleaved rounds (the order alternating), the speed-up is the median of the per-round
ratios. Both ways must give the same tokens (checked here and in ``tests/test_decoding.py``).
Writes ``results/decoding.json``, which ``docs/finetuning.md`` renders (``pmlm.reports``).
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
from pmlm.finetune.decoding import generate  # noqa: E402
from pmlm.machine import machine_info  # noqa: E402

IDS = {"pad": 0, "sos": 1, "eos": 2, "mask": 3, "pseudo": 4, "unk": 5}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "results" / "decoding.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = pmlm.PMLMModel(pmlm.PMLMConfig.preset("tiny", vocab_size=8192)).eval()
    g = torch.Generator().manual_seed(0)
    sources = [torch.randint(6, 8192, (30,), generator=g).tolist() for _ in range(16)]
    rows = []
    for max_length in (32, 64):
        for beam in (1, 4):
            kw = dict(beam_size=beam, max_length=max_length, min_length=max_length)
            times = {"cached": [], "recomputed": []}
            outputs = {}
            for r in range(args.rounds):
                for way in (("cached", "recomputed") if r % 2 == 0 else ("recomputed", "cached")):
                    start = time.perf_counter()
                    outputs[way] = generate(model, sources, IDS, use_cache=way == "cached", **kw)
                    times[way].append(time.perf_counter() - start)
            same = outputs["cached"] == outputs["recomputed"]
            ratio = statistics.median(b / a for a, b in zip(times["cached"], times["recomputed"]))
            rows.append({"max_length": max_length, "beam": beam, "cached_s": statistics.median(times["cached"]),
                         "recomputed_s": statistics.median(times["recomputed"]), "speedup": ratio,
                         "same_tokens": same})
            print(f"max_length {max_length}, beam {beam}: cached {rows[-1]['cached_s']:.2f} s, recomputed "
                  f"{rows[-1]['recomputed_s']:.2f} s, {ratio:.1f}x, same tokens: {same}", flush=True)
    result = {"machine": machine_info(), "threads": args.threads, "rounds": args.rounds, "sources": 16,
              "source_tokens": 30, "model": "tiny", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
