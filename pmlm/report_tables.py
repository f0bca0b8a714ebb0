"""Tables of measurements rendered from their results files, for :mod:`pmlm.reports`' blocks.

Each function reads one results file written by a benchmark and returns a Markdown table, or a
line saying how to measure it when the file is not there yet.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


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
