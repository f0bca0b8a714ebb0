"""Tables of measurements rendered from their results files, for :mod:`pmlm.reports`' blocks.

Each function reads one results file written by a benchmark and returns a Markdown table, or a
line saying how to measure it when the file is not there yet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def machine_words(m: dict) -> str:
    """``AMD EPYC 7B13, 2 cores, 2 threads, torch 2.13.0`` from a benchmark machine record."""
    parts = [m.get("cpu", "?"), f"{m.get('cores', '?')} cores", f"{m.get('threads', '?')} threads"]
    if m.get("load"):
        parts.append(f"load {m['load']} at the start")
    parts.append(f"torch {m.get('torch', '?')}")
    return ", ".join(parts)


def data_scale_block() -> str:
    """Today's in-memory path against a prepared directory (``results/data_scale.json``)."""
    r = _json(RESULTS / "data_scale.json")
    if r is None:
        return "Not measured yet (`python benchmarks/data_scale.py --write`)."

    def cell(d: dict, key: str, form: str = "{:.1f}") -> str:
        if key in d:
            return form.format(d[key])
        return "not run" if "skipped" in d else "failed"

    lines = [f"Measured by `benchmarks/data_scale.py` on {r['date']} ({r['machine']}; `prepare` with "
             f"{r['workers']} workers, training with the `tiny` preset). Seconds and peak resident memory of "
             "each command (GNU time). *prepare*: the whole command, its tokenizer trained on the text; "
             "*encode pass*: its tokenizing pass alone, against `encode_batch` alone on the same text and "
             "cores. *To step 2*: from the command to the end of 2 training steps.", "",
             "| text | prepare | encode pass, share of `encode_batch` | prepare peak | `--data`: to step 2, peak "
             "| `--dataset`: to step 2, peak | step, prepared / in memory |",
             "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        p = row["prepare"]
        share = (f"{p['encode_mb_per_s']:.2f} MB/s, {row['encode_share_of_limit']:.0%} of "
                 f"{row['encode_batch_mb_per_s']:.2f}" if "encode_share_of_limit" in row else "-")
        lines.append(f"| {row['text_mb']:.0f} MB | {cell(p, 'mb_per_s', '{:.2f}')} MB/s in {cell(p, 'seconds', '{:.0f}')} s "
                     f"| {share} | {cell(p, 'peak_mb', '{:.0f}')} MB | {cell(row['train_prepared'], 'seconds')} s, "
                     f"{cell(row['train_prepared'], 'peak_mb', '{:.0f}')} MB | {cell(row['train_memory'], 'seconds')} s, "
                     f"{cell(row['train_memory'], 'peak_mb', '{:.0f}')} MB | {row['step']['step_ratio']:.3f} |")
    sizes = [row["text_mb"] for row in r["rows"]]
    peaks = [row["train_prepared"].get("peak_mb") for row in r["rows"]]
    preps = [row["prepare"].get("peak_mb") for row in r["rows"]]
    if len(peaks) > 1 and all(peaks) and all(preps):
        lines += ["", f"From {sizes[0]:.0f} MB to {sizes[-1]:.0f} MB of text, training's peak memory on prepared data "
                  f"goes from {peaks[0]:.0f} to {peaks[-1]:.0f} MB ({peaks[-1] / peaks[0] - 1:+.0%}; target within "
                  f"10%) and prepare's from {preps[0]:.0f} to {preps[-1]:.0f} MB ({preps[-1] / preps[0] - 1:+.0%}). "
                  "Targets: the encode pass at 80% of `encode_batch` or more, training started in under 10 s, "
                  "the step at most 2% slower."]
    arrow = r["rows"][0]["step"].get("arrow")
    if arrow:
        lines += ["", f"The format: {arrow['examples']:,} examples as a `datasets` Arrow table (`save_to_disk`, "
                  f"read memory-mapped) take {arrow['arrow_bytes_per_token']:.1f} bytes a token on disk against "
                  f"{arrow['shard_bytes_per_token']} in the shards, and a random 32-example batch "
                  f"{arrow['arrow_batch_s'] * 1e3:.2f} ms to read against {arrow['shards_batch_s'] * 1e3:.2f} ms."]
    return "\n".join(lines)


FAULT_OUTCOMES = {"clean": "an error was expected: one line that says what is wrong, no traceback",
                  "handled": "valid input or a fault to survive, and the result checks out",
                  "traceback": "a Python traceback", "vague": "an error, but its last line lacks what is wrong",
                  "silent": "exit 0 where an error was expected, or a wrong result",
                  "refused": "valid input, refused", "lost": "files lost, changed or left behind",
                  "hung": "still running at the time limit", "killed": "killed by the kernel (memory)",
                  "skipped": "the hunt itself failed on the case"}


def fault_hunt_block() -> str:
    """Outcomes of the fault hunt (``results/fault_hunt.json``, ``benchmarks/fault_hunt.py``)."""
    r = _json(RESULTS / "fault_hunt.json")
    if r is None:
        return "Not measured yet (`python benchmarks/fault_hunt.py`)."
    m = r["machine"]
    counts = r["counts"]
    lines = [f"Measured by `benchmarks/fault_hunt.py` on {r['date']} ({m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores, load {m.get('load', '?')} at the start, torch {m.get('torch', '?')}; "
             f"{'read-only and full disks on tmpfs' if r['mounts'] else 'no tmpfs: the disk cases left out'}; "
             f"{r['seconds'] / 60:.0f} minutes): {len(r['cases'])} cases.", "",
             "| outcome | cases | meaning |", "|---|---|---|"]
    lines += [f"| {o} | {counts[o]} | {meaning} |" for o, meaning in FAULT_OUTCOMES.items() if counts.get(o)]
    entries: dict[str, list[dict]] = {}
    for case in r["cases"]:
        entries.setdefault(case["entry"].split()[0], []).append(case)
    lines += ["", "| entry point | cases | clean | handled | other |", "|---|---|---|---|---|"]
    for entry, cases in entries.items():
        n = {o: sum(c["outcome"] == o for c in cases) for o in ("clean", "handled")}
        lines.append(f"| `{entry}` | {len(cases)} | {n['clean']} | {n['handled']} | "
                     f"{len(cases) - n['clean'] - n['handled']} |")
    bad = [c for c in r["cases"] if c["outcome"] not in ("clean", "handled")]
    if bad:
        lines += ["", f"The {len(bad)} cases that are neither clean nor handled (their commands are in the results "
                  "file), with the last line of standard error, or what was wrong:", ""]
        for c in bad:
            words = c["note"] if c["outcome"] in ("silent", "refused", "lost", "hung", "killed", "skipped") else ""
            said = re.sub(r"/tmp/pmlm-fault-hunt-[^/\s]+", "$WORK", words or c["last_line"] or c["note"])
            said = said.replace("|", "\\|")
            said = said if len(said) <= 140 else said[:137] + "..."
            lines.append(f"* **{c['outcome']}** `{c['entry']}` {c['case']}: {said}")
    else:
        lines += ["", "Every case ended clean or handled."]
    return "\n".join(lines)


def busy_machine_block() -> str:
    """The default thread choice against 1 and all threads, idle and with a core busy
    (``results/busy_machine.json``, ``benchmarks/busy_machine.py``)."""
    r = _json(RESULTS / "busy_machine.json")
    if r is None:
        return "Not measured yet (`python benchmarks/busy_machine.py`)."
    m = r["machine"]
    lines = [f"Measured by `benchmarks/busy_machine.py` on {m.get('date', '?')} ({m.get('cpu', '?')}, "
             f"{r['cores']} cores, torch {m.get('torch', '?')}): budgeted `tiny` runs of {r['minutes']:g} minute(s), "
             f"{r['rounds']} round(s) of each setting, in rotating order, seed 0. *busy*: one process the script "
             "starts spins on one core for the whole condition. Steps made in the budget (median over rounds):",
             "", "| condition | cores busy at the start | " + " | ".join(next(iter(r["conditions"].values()))["steps"])
             + " | default took | default / best other | target |",
             "|---|---|" + "---|" * len(next(iter(r["conditions"].values()))["steps"]) + "---|---|---|"]
    for condition, c in r["conditions"].items():
        steps = " | ".join(f"{sorted(v)[len(v) // 2]:,}" for v in c["steps"].values())
        lines.append(f"| {condition} | {r['busy_cores_at_start'][condition]:.2f} | {steps} | "
                     f"{c['default_threads'][0]} thread(s) | {c['ratio']:.2f}x | "
                     f"{c['target']:.2f}x: {'met' if c['met'] else 'MISSED'} |")
    return "\n".join(lines)


def decoding_block() -> str:
    """Cached decoding against recomputation, and batched against one source at a time
    (``results/decoding.json``, ``benchmarks/decoding.py``)."""
    r = _json(RESULTS / "decoding.json")
    if r is None:
        return "Not measured yet (`python benchmarks/decoding.py`)."
    busy = f", {r['busy_cores_at_start']} cores busy with other work at the start" if "busy_cores_at_start" in r else ""
    seed = f", seed {r['seed']}" if "seed" in r else ""
    lines = [f"Measured by `benchmarks/decoding.py` ({machine_words(r['machine'])}{busy}; {r['threads']} threads"
             f"{seed}, {r['machine'].get('date', '?')}). The cache: the `{r['model']}` model, {r['sources']} sources "
             f"of {r['source_tokens']} tokens, `[EOS]` forbidden so that every step runs; medians of {r['rounds']} "
             "interleaved rounds:", "", "| max_length | beam | cached | recomputed | speed-up | same tokens |",
             "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['max_length']} | {row['beam']} | {row['cached_s']:.2f} s | {row['recomputed_s']:.2f} s "
                     f"| {row['speedup']:.1f}x | {'yes' if row['same_tokens'] else 'NO'} |")
    t = r.get("throughput")
    if t:
        s = t["source_tokens"]
        lines += ["", f"Batches: the shipped reference model (`{t['model']}`), {t['sources']} test verses of "
                  f"{s['min']} to {s['max']} word pieces (median {s['median']:g}), {t['target_tokens']} tokens "
                  f"generated for each (`[EOS]` forbidden), one source at a time against batches of "
                  f"{t['batch_size']} sorted by length; sources decoded per second, medians of {t['rounds']} "
                  "interleaved rounds:", "",
                  "| decoding | one at a time | batched | speed-up | same tokens |", "|---|---|---|---|---|"]
        for row in t["rows"]:
            same = "yes" if row["same_tokens"] else f"{row['sources_differing']} of {t['sources']} differ"
            lines.append(f"| {'greedy' if row['beam'] == 1 else 'beam ' + str(row['beam'])} | "
                         f"{row['one_per_s']:.1f} /s | {row['batched_per_s']:.1f} /s | {row['speedup']:.1f}x | "
                         f"{same} |")
    return "\n".join(lines)
