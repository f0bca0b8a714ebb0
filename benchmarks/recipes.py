"""Pre-training recipes side by side: each trains for the same wall-time budget on this machine.

    python benchmarks/recipes.py                 # every recipe not yet in recipes.jsonl, 5 minutes each
    python benchmarks/recipes.py --only vocab-4k,pre-ln --minutes 5
    python benchmarks/recipes.py --report        # only rewrite the table in docs/training.md

Each recipe is the ``tiny`` preset with some fields changed (:data:`RECIPES`), trained by
``pmlm.train.pretrain`` with ``time_budget`` minutes (the schedule runs on the elapsed fraction, so
every recipe gets the same wall time, however fast its steps). One line per finished recipe goes
to ``results/recipes.jsonl`` (the machine, threads, load, date, seed and the final validation
record); recipes already there are skipped, so the study may run piecewise and resume after a
stop. ``--report`` renders the table between the ``recipes`` markers of ``docs/training.md``
(:mod:`pmlm.reports`).

The numbers to compare: masked bits per character and ``[M]``-only AE and PAR accuracy on the same
256 held-out Austen examples with the same masks (every recipe with the Austen validation split
of seed 0; recipes with another vocabulary score other pieces, which is why bits per character
is the column that compares them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import machine  # noqa: E402

from pmlm.checkpoint import read_metrics  # noqa: E402
from pmlm.reports import append_jsonl  # noqa: E402
from pmlm.train import TrainConfig, pretrain  # noqa: E402

RESULTS = ROOT / "results" / "recipes.jsonl"

# name -> (TrainConfig overrides of the tiny preset, what the row tests). "baseline" is the tiny
# recipe as it stood before this study (8k pieces, post-LN, 2 x 128, lr 3e-3), stretched to the budget.
RECIPES: dict[str, tuple[dict, str]] = {
    "baseline": ({}, "the tiny preset before the study: 8k pieces, post-LN, 2 x 128, lr 3e-3"),
    "vocab-4k": ({"vocab_size": 4096}, "4k pieces"),
    "vocab-2k": ({"vocab_size": 2048}, "2k pieces"),
    "pre-ln": ({"model_overrides": {"dropout": 0.0, "norm": "pre"}}, "pre-LN instead of post-LN"),
    "wide": ({"model_overrides": {"dropout": 0.0, "hidden_size": 256, "num_heads": 4,
                                  "intermediate_size": 1024}}, "2 x 256 instead of 2 x 128"),
    "deep": ({"model_overrides": {"dropout": 0.0, "num_layers": 4}}, "4 x 128 instead of 2 x 128"),
    "lr-1.5e-3": ({"lr": 1.5e-3}, "peak learning rate 1.5e-3 instead of 3e-3"),
    "lr-6e-3": ({"lr": 6e-3}, "peak learning rate 6e-3 instead of 3e-3"),
    "warmup-2%": ({"warmup_fraction": 0.02}, "warm-up 2% of the budget instead of 6%"),
    "mask-25%": ({"mask_ratio": 0.25}, "25% of the tokens masked in training instead of 15%"),
    "batch-ramp": ({"grad_accum": 2, "batch_ramp": 0.3}, "batch 32 -> 64 over the first 30% (accumulation)"),
    "dropout-0.1": ({"model_overrides": {"dropout": 0.1}}, "hidden dropout 0.1 (BERT's) instead of none"),
    "tasks-text": ({"extra_text": "tasks"}, "Austen + the tasks' training text (2.3x the words)"),
}


def run_recipe(name: str, minutes: float, seed: int, out_root: Path) -> dict:
    overrides, what = RECIPES[name]
    # every row evaluates every 150 steps (the tiny preset's cadence when the study began)
    cfg = TrainConfig.preset("tiny", **{"time_budget": minutes, "seed": seed, "progress": False,
                                        "out_dir": str(out_root / name), "overwrite": True,
                                        "save_every": 0, "eval_every": 150, **overrides})
    info = machine()
    t0 = time.time()
    run = pretrain(cfg)
    records = read_metrics(run)
    val = [r for r in records if r.get("split") == "val"][-1]
    end = next(r for r in records if r.get("event") == "end")
    start = next(r for r in records if r.get("event") == "start")
    train = [r for r in records if r.get("split") == "train"]
    return {"name": name, "what": what, "overrides": overrides, "minutes": minutes, "seed": seed,
            "wall_s": round(time.time() - t0, 1), "cpu_s": end.get("cpu_s"), "steps": end["step"],
            "parameters": start["parameters"], "vocab_size": start["vocab_size"],
            "tokens_per_s": round(sum(r["tokens_per_s"] for r in train) / max(1, len(train))),
            "machine": info, "val": val}


def load_results() -> list[dict]:
    from pmlm.reports import read_jsonl

    return read_jsonl(RESULTS)


def write_report() -> None:
    from pmlm.reports import write_reports

    for path in write_reports():
        print(f"updated {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated recipe names (default: all)")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-root", default="runs/recipes")
    p.add_argument("--report", action="store_true", help="only rewrite the table in docs/training.md")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipes {unknown}; known: {sorted(RECIPES)}")
    if not args.report:
        done = {(r["name"], r["minutes"], r["seed"]) for r in load_results()}
        for name in names:
            if (name, args.minutes, args.seed) in done:
                print(f"{name}: already in {RESULTS.name}, skipped")
                continue
            result = run_recipe(name, args.minutes, args.seed, Path(args.out_root))
            append_jsonl(RESULTS, result)
            v = result["val"]
            print(f"{name}: {result['steps']} steps, AE [M] acc {v['val_ae_m_acc']:.3f} bpc "
                  f"{v['val_ae_m_bpc']:.3f}, PAR [M] acc {v['val_par_m_acc']:.3f} bpc {v['val_par_m_bpc']:.3f}",
                  flush=True)
    write_report()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
