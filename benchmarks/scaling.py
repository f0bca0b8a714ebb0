"""Step cost and peak memory against the context length n, for the four methods of ``common.py``.

    python benchmarks/scaling.py                       # n = 64 .. 512, batch 16, 2 threads (long)
    python benchmarks/scaling.py --lengths 64,128 --rounds 2 --no-memory     # quicker
    python benchmarks/scaling.py --write               # also RESULTS.md and the figure
    python benchmarks/scaling.py --plot-only runs/scaling.json --figure figures/step_cost_vs_length.png

For each n the methods run interleaved (``common.interleaved``); the table gives median seconds per
step and the ratios measured within rounds. The naive recomputation runs 1 + (number of steps)
passes, about 0.165 n / 2 of them, each over about n tokens, so its cost grows about as n^2 and it
dominates the run time: ``--naive-max-n`` stops it early.

Peak memory: each (method, n) runs one training step in a fresh process, and we report the peak
resident memory (Linux ``VmHWM``) above the resident memory just before the step, i.e. the step's
activations, gradients, AdamW state and temporaries (the same parameter-sized part for all methods).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import torch

import common
from common import LABELS, METHODS


def probe_memory(method: str, size: common.Size, seed: int) -> dict:
    """Run in a fresh process: one step of ``method``; peak RSS above the RSS before it, MiB."""
    batches = common.make_batches(size, seed)
    step = common.build_step(method, size, batches, seed=seed)
    before = common.rss_mib()["rss"]
    exact = common.reset_peak_rss()
    step()
    after = common.rss_mib()
    return {"before": before, "peak": after["peak"], "delta": after["peak"] - before, "exact": exact}


def measure_memory(method: str, size: common.Size, args) -> dict | None:
    cmd = [sys.executable, __file__, "--probe-memory", method, "--threads", str(args.threads),
           "--seed", str(args.seed), "--malloc", args.malloc]
    for f in dataclasses.fields(common.Size):
        cmd += ["--" + f.name.replace("_", "-"), str(getattr(size, f.name))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        print(f"memory probe {method} n={size.n} failed:\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(data: dict, path: Path) -> None:
    """Step seconds (log scale) and peak memory against n, one line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    fig, axes = plt.subplots(1, 2 if any(r.get("memory") for r in rows) else 1, figsize=(11, 4.2), squeeze=False)
    styles = {"mlm": "o-", "pmlm": "s-", "naive": "^--", "hf_mlm": "d:"}
    ax = axes[0][0]
    for m in METHODS:
        pts = [(r["n"], r["median"][m]) for r in rows if m in r["median"]]
        if pts:
            ax.plot(*zip(*pts), styles[m], label=LABELS[m])
    ax.set_xlabel("context length n (tokens)")
    ax.set_ylabel(f"{'CPU' if data.get('clock') == 'cpu' else 'wall-clock'} seconds per training step (median)")
    ax.set_yscale("log")
    ax.set_title("Step cost (forward, backward, AdamW)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if axes.shape[1] > 1:
        ax = axes[0][1]
        for m in METHODS:
            pts = [(r["n"], r["memory"][m]["delta"]) for r in rows if r.get("memory") and r["memory"].get(m)]
            if pts:
                ax.plot(*zip(*pts), styles[m], label=LABELS[m])
        ax.set_xlabel("context length n (tokens)")
        ax.set_ylabel("peak memory of one step, MiB")
        ax.set_title("Peak resident memory above the model")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    s = data["size"]
    fig.suptitle(f"batch {s['batch']}, {s['layers']} layers x {s['hidden']} hidden, {s['heads']} heads, "
                 f"vocab {s['vocab']}; {data['machine'].get('cpu', '')}, threads: {data['machine'].get('threads')}; "
                 "methods interleaved", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(data: dict) -> str:
    rows = data["rows"]
    present = [m for m in METHODS if any(m in r["median"] for r in rows)]
    s = data["size"]
    lines = [f"Measured {data['machine']['date']} on {common.machine_line(data['machine'])}.", "",
             f"Batch {s['batch']}, {s['layers']} layers, hidden {s['hidden']}, {s['heads']} heads, FFN {s['ffn']}, "
             f"vocab {s['vocab']}, dropout {s['dropout']}/{s['attention_dropout']}; {data['rounds']} interleaved "
             f"rounds per n. {'Process CPU' if data.get('clock') == 'cpu' else 'Wall-clock'} seconds per step "
             "(median); ratios are medians of per-round ratios [min, max].", "",
             "| n | L (PMLM) | naive passes | " + " | ".join(present) + " | pmlm/mlm | naive/pmlm | pmlm/hf_mlm |",
             "|---" * (6 + len(present)) + "|"]
    for r in rows:
        cells = [f"{r['median'][m]:.3f}" if m in r["median"] else "-" for m in present]
        rat = [f"{r['ratios'][k]['median']:.2f} [{r['ratios'][k]['min']:.2f}, {r['ratios'][k]['max']:.2f}]"
               if k in r["ratios"] else "-" for k in ("pmlm/mlm", "naive/pmlm", "pmlm/hf_mlm")]
        lines.append(f"| {r['n']} | {r['L']} | {r['passes']} | " + " | ".join(cells) + " | " + " | ".join(rat) + " |")
    if any(r.get("memory") for r in rows):
        lines += ["", "Peak resident memory of one step above the memory before it (MiB; activations, "
                  "gradients, AdamW state, temporaries):", "",
                  "| n | " + " | ".join(present) + " | pmlm/mlm |", "|---" * (2 + len(present)) + "|"]
        for r in rows:
            mem = r.get("memory") or {}
            cells = [f"{mem[m]['delta']:.0f}" if mem.get(m) else "-" for m in present]
            ratio = (f"{mem['pmlm']['delta'] / mem['mlm']['delta']:.2f}"
                     if mem.get("pmlm") and mem.get("mlm") and mem["mlm"]["delta"] > 0 else "-")
            lines.append(f"| {r['n']} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_size_args(p)
    p.add_argument("--lengths", default="64,128,256,384,512", help="comma-separated context lengths n")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="cpu: process CPU seconds (with --threads 1 nearly blind to other processes)")
    p.add_argument("--naive-max-n", type=int, default=512, help="skip the naive method above this n")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory probes")
    p.add_argument("--write", action="store_true", help="update RESULTS.md and figures/step_cost_vs_length.png")
    p.add_argument("--figure", type=Path, default=None, help="write the figure here")
    p.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    p.add_argument("--plot-only", type=Path, default=None, help="redraw the figure from a --json file")
    p.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = common.size_from_args(args)
    if args.probe_memory:
        print(json.dumps(probe_memory(args.probe_memory, base, args.seed)))
        return {}
    figure = args.figure or (common.FIGURES / "step_cost_vs_length.png" if args.write else None)
    if args.plot_only:
        data = json.loads(args.plot_only.read_text())
        plot(data, figure or common.FIGURES / "step_cost_vs_length.png")
        return data

    methods = [m for m in args.methods.split(",") if m]
    if "hf_mlm" in methods and not common.hf_available():
        print("transformers is not installed: skipping hf_mlm (pip install -r requirements-bench.txt)")
        methods.remove("hf_mlm")
    lengths = [int(x) for x in args.lengths.split(",")] if not args.tiny else [16, 32]
    data = {"size": dataclasses.asdict(base), "rounds": args.rounds, "clock": args.clock, "machine": common.machine(),
            "rows": []}
    for n in lengths:
        size = dataclasses.replace(base, n=n, max_positions=max(base.max_positions, n))
        batches = common.make_batches(size, args.seed)
        here = [m for m in methods if m != "naive" or n <= args.naive_max_n]
        steps = {m: common.build_step(m, size, batches, seed=args.seed) for m in here}
        cpu: dict[str, list[float]] = {}
        wall = common.interleaved(steps, args.rounds, args.warmup, cpu_times=cpu)
        times = cpu if args.clock == "cpu" else wall
        del steps
        row = {"n": n, "L": int(batches["pmlm"]["input_ids"].shape[1]), "passes": len(batches["naive"]),
               "median": {m: common.spread(t)["median"] for m, t in times.items()}, "times": times, "ratios": {}}
        for num, den in (("pmlm", "mlm"), ("naive", "pmlm"), ("pmlm", "hf_mlm")):
            if num in times and den in times:
                row["ratios"][f"{num}/{den}"] = common.ratios(times, num, den)
        if args.memory:
            row["memory"] = {m: measure_memory(m, size, args) for m in here}
        data["rows"].append(row)
        print(f"n={n}: " + ", ".join(f"{m} {row['median'][m]:.3f}s" for m in here), flush=True)
    text = table(data)
    print(text)
    if args.write:
        common.update_results("scaling", text + "\n\n![step cost against n](../figures/step_cost_vs_length.png)")
    if figure:
        plot(data, figure)
        print(f"figure: {figure}")
    if args.json:
        common.dump_json(data, args.json)
    return data


if __name__ == "__main__":
    main()
