"""Training-step cost at the size of the performance targets: PMLM one pass vs. MLM, naive, HF.

    python benchmarks/step_cost.py                 # targets: n 128, batch 16, 4 x 256, 2 threads
    python benchmarks/step_cost.py --rounds 5      # quicker, noisier
    python benchmarks/step_cost.py --tiny          # smoke run (seconds)
    python benchmarks/step_cost.py --write         # also update benchmarks/RESULTS.md

All methods run on the same sequences and the same sampled masks (see ``common.py``), interleaved
round by round; every ratio is taken within a round and reported as median [quartiles] (range).
On a GPU: ``--device cuda --dtype bfloat16 --backends sdpa,flex`` adds a PMLM row per backend;
``--backends sdpa,dense`` measures the context-block split against one dense (L, L) attention call.
"""

from __future__ import annotations

import argparse

import torch

import common
from common import LABELS, fmt_spread, ratios, spread

TARGETS = [  # (numerator, denominator, bound, sense, what is asked)
    ("pmlm", "hf_mlm", 1.0, "<=", "PMLM one pass no slower than one HF BertForMaskedLM MLM step"),
    ("pmlm", "mlm", 1.45, "<=", "PMLM step <= 1.45x our own MLM step"),
    ("naive", "pmlm", 4.0, ">=", "PMLM one pass at least 4x faster than naive recomputation"),
]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_size_args(p)
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (each runs every method once)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--methods", default=",".join(common.METHODS), help="comma-separated subset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=[None, "bfloat16", "float16"], help="autocast dtype")
    p.add_argument("--backends", default="sdpa",
                   help="attention backends for the PMLM rows: sdpa,flex; dense = SDPA in one (L, L) call, "
                        "without the context-block split")
    p.add_argument("--mfu", action="store_true",
                   help="count each method's FLOPs per step; report TFLOP/s, tokens/s and (GPU) MFU")
    p.add_argument("--write", action="store_true", help="update a section of RESULTS.md")
    p.add_argument("--section", default="step_cost", help="which section --write replaces")
    p.add_argument("--json", default=None, help="also write the raw timings here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = common.size_from_args(args)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    methods = [m for m in args.methods.split(",") if m]
    if "hf_mlm" in methods and not common.hf_available():
        print("transformers is not installed: skipping hf_mlm (pip install -r requirements-bench.txt)")
        methods.remove("hf_mlm")
    batches = common.make_batches(size, args.seed)
    L, n = batches["pmlm"]["input_ids"].shape[1], batches["mlm"]["input_ids"].shape[1]
    print(f"batch {size.batch}, n {n}, L {L} (L/n {L / n:.2f}), {len(batches['naive'])} naive passes, "
          f"{size.layers} layers x {size.hidden} hidden, {size.heads} heads, FFN {size.ffn}, "
          f"vocab {size.vocab}, dropout {size.dropout}/{size.attention_dropout}, "
          f"{args.threads} threads, device {args.device}, dtype {args.dtype or 'float32'}")

    steps = {}
    for m in methods:
        if m == "pmlm":
            for backend in args.backends.split(","):
                name = "pmlm" if backend == "sdpa" else f"pmlm_{backend}"
                overrides = ({"split_context_attention": False} if backend == "dense"
                             else {"attention_backend": backend})
                steps[name] = common.build_step(m, size, batches, seed=args.seed, device=args.device, dtype=dtype,
                                                config_overrides=overrides)
        else:
            steps[m] = common.build_step(m, size, batches, seed=args.seed, device=args.device, dtype=dtype)
    cpu: dict[str, list[float]] = {}
    times = common.interleaved(steps, args.rounds, args.warmup, args.device, cpu_times=cpu)
    info = common.machine()
    flops = {}
    if args.mfu:  # model FLOPs: the flex rows count as their SDPA twin (same math, dense count)
        counted = {name: common.count_flops(step) for name, step in steps.items()
                   if not name.startswith("pmlm_") or name == "pmlm_dense"}
        flops = {name: counted.get(name, counted.get("pmlm")) for name in steps}
        flops = {name: f for name, f in flops.items() if f}

    lines = [f"Measured {info['date']} on {common.machine_line(info)}.", "",
             f"Size: batch {size.batch}, n {n} (PMLM L {L}, L/n {L / n:.2f}), {size.layers} layers, hidden "
             f"{size.hidden}, {size.heads} heads, FFN {size.ffn}, vocab {size.vocab}, dropout {size.dropout}, "
             f"attention dropout {size.attention_dropout}; {args.device}, {args.dtype or 'float32'}; "
             f"{args.rounds} interleaved rounds after {args.warmup} warm-up rounds; AdamW.", "",
             "| method | step, s: median [q25, q75] (min, max) |", "|---|---|"]
    for name, ts in times.items():
        base = name.split("_")[0] if name.startswith("pmlm_") else name
        lines.append(f"| {LABELS.get(base, name)}{' (' + name[5:] + ')' if name.startswith('pmlm_') else ''} "
                     f"| {fmt_spread(spread(ts), 3)} |")
    if flops:
        peak = common.peak_flops(args.device)
        lines += ["", f"Throughput ({n * size.batch} context tokens per step; model FLOPs counted by "
                  f"torch's FlopCounterMode; peak {peak / 1e12:.0f} TFLOP/s)" if peak else
                  f"Throughput ({n * size.batch} context tokens per step; model FLOPs by FlopCounterMode)", "",
                  "| method | GFLOP/step | context tokens/s | TFLOP/s | MFU |", "|---|---|---|---|---|"]
        for name, f in flops.items():
            t = spread(times[name])["median"]
            mfu = f"{f / t / peak:.1%}" if peak else "-"
            lines.append(f"| {name} | {f / 1e9:.2f} | {n * size.batch / t:,.0f} | {f / t / 1e12:.2f} | {mfu} |")
    lines += ["", "| ratio (same round) | median [q25, q75] (min, max) | target | met |", "|---|---|---|---|"]
    verdicts = {}
    for num, den, bound, sense, what in TARGETS:
        if num in times and den in times:
            r = ratios(times, num, den)
            ok = r["median"] <= bound if sense == "<=" else r["median"] >= bound
            verdicts[f"{num}/{den}"] = {"ratio": r, "bound": bound, "sense": sense, "met": ok}
            lines.append(f"| {num} / {den} | {fmt_spread(r)} | {sense} {bound} | {'yes' if ok else 'NO'} |")
    for name in times:
        if name.startswith("pmlm_"):
            lines.append(f"| {name} / pmlm | {fmt_spread(ratios(times, name, 'pmlm'))} | | |")
    if "hf_mlm" in times and "mlm" in times:
        lines.append(f"| mlm / hf_mlm | {fmt_spread(ratios(times, 'mlm', 'hf_mlm'))} | (info) | |")
    if args.device == "cpu":
        lines += ["", "The same ratios in process CPU seconds (with one thread other processes move them less "
                  "than wall time; with several threads they also count the threads' waits for each other):", "",
                  "| ratio (CPU time, same round) | median [q25, q75] (min, max) |", "|---|---|"]
        for num, den, *_ in TARGETS:
            if num in cpu and den in cpu:
                lines.append(f"| {num} / {den} | {fmt_spread(ratios(cpu, num, den))} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        common.update_results(args.section, text)
    result = {"times": times, "cpu_times": cpu, "verdicts": verdicts, "machine": info, "L": L, "n": n, "flops": flops}
    if args.json:
        common.dump_json(result, common.Path(args.json))
    return result


if __name__ == "__main__":
    main()
