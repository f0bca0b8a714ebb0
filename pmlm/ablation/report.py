"""The ablation's table, ordering, CSV and figure, from the rows of its results file."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from pmlm.ablation.presets import CONTROL, METRICS, VARIANTS
from pmlm.ablation.results import read_results



def summarize(rows: list[dict]) -> list[dict]:
    """Per variant (Table 6 order, control last): n seeds, mean and sample std of each metric."""
    order = list(VARIANTS) + [CONTROL]
    out = []
    for variant in order:
        runs = [r for r in rows if r["variant"] == variant]
        if not runs:
            continue
        entry = {"variant": variant, "seeds": len(runs),
                 "objective": VARIANTS.get(variant, ("-", "-", "-"))[0],
                 "factorization": VARIANTS.get(variant, ("-", "-", "-"))[1],
                 "table6_row": VARIANTS.get(variant, ("-", "-", "control"))[2]}
        for key in ("test_acc", "majority_acc", "bleu", "chrf", "copy_bleu", "s2s_val_loss", "val_ae_loss", "val_par_loss",
                    "val_ae_m_acc", "val_par_m_acc", "unigram_m_acc", "pretrain_s", "finetune_s"):
            values = [r[key] for r in runs if r.get(key) is not None]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else math.nan
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        out.append(entry)
    return out


def plateau(e: dict) -> str:
    """PAR accuracy on the [M] positions and its multiple of the unigram baseline on the same tokens."""
    par, uni = e.get("val_par_m_acc_mean", math.nan), e.get("unigram_m_acc_mean", math.nan)
    if math.isnan(par) or math.isnan(uni) or uni <= 0 or e["objective"] == "ae":
        return "-"
    return f"{par:.3f} ({par / uni:.1f}x)"


def fmt(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    if math.isnan(mean):
        return "-"
    s = f"{mean * scale:.{digits}f}"
    return s if math.isnan(std) else f"{s} ± {std * scale:.{digits}f}"


def markdown_table(summary: list[dict], preset_name: str) -> str:
    lines = [f"Preset `{preset_name}`; mean ± standard deviation over seeds (test splits).", "",
             "| variant | objective | factorization | Table 6 row | seeds | sentiment acc (%) | verses BLEU "
             "| verses chrF | verses val loss | pre-training val AE loss | val PAR loss | PAR `[M]` acc (x unigram) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        lines.append(f"| {e['variant']} | {e['objective']} | {e['factorization']} | {e['table6_row']} | {e['seeds']} "
                     f"| {fmt(e['test_acc_mean'], e['test_acc_std'], 100)} | {fmt(e['bleu_mean'], e['bleu_std'], 1, 2)} "
                     f"| {fmt(e['chrf_mean'], e['chrf_std'])} | {fmt(e['s2s_val_loss_mean'], e['s2s_val_loss_std'], 1, 3)} "
                     f"| {fmt(e['val_ae_loss_mean'], e['val_ae_loss_std'], 1, 2)} "
                     f"| {fmt(e['val_par_loss_mean'], e['val_par_loss_std'], 1, 2)} | {plateau(e)} |")
    lines.append("")
    majority = [e["majority_acc_mean"] for e in summary if not math.isnan(e["majority_acc_mean"])]
    if majority:
        lines.append(f"Baselines: always answering the majority class scores {100 * majority[0]:.1f}% on the "
                     "same test sentences;  ")
    copy = [e["copy_bleu_mean"] for e in summary if not math.isnan(e["copy_bleu_mean"])]
    if copy:
        lines.append(f"copying the KJV source unchanged scores BLEU {copy[0]:.1f} on the same test verses.  ")
    minutes = sum(e["pretrain_s_mean"] * e["seeds"] + e["finetune_s_mean"] * e["seeds"] for e in summary
                  if not math.isnan(e["finetune_s_mean"])) / 60
    lines += [f"Compute: {minutes:.0f} minutes of pre-training and fine-tuning in all.", ""]
    for key, name, _, higher in METRICS:
        lines.append(f"Ordering by {name} (best first): {ordering(summary, key, higher)}.  ")
    return "\n".join(lines) + "\n"


def ordering(summary: list[dict], key: str, higher: bool = True, digits: int = 4) -> str:
    """``A > B = C > D`` by the mean of ``key``; means equal to ``digits`` decimals are ties."""
    means = {e["variant"]: round(e[f"{key}_mean"], digits) for e in summary if not math.isnan(e[f"{key}_mean"])}
    out, last = "", None
    for variant in sorted(means, key=lambda v: -means[v] if higher else means[v]):
        out += ("" if last is None else " = " if means[variant] == last else " > ") + variant
        last = means[variant]
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    keys = ["variant", "seed", "objective", "factorization", "test_acc", "val_acc", "majority_acc", "bleu", "chrf",
            "copy_bleu",
            "s2s_val_loss", "val_ae_loss", "val_ae_acc", "val_par_loss", "val_par_acc", "pretrain_s", "finetune_s"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def plot(rows: list[dict], summary: list[dict], path: Path, title: str) -> Path:
    """Bars: mean over seeds; dots: single seeds; one panel per metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e["variant"] for e in summary]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.8 * len(METRICS), 3.6))
    for ax, (key, label, scale, higher) in zip(axes, METRICS):
        means = [e[f"{key}_mean"] * scale for e in summary]
        colors = ["tab:red" if n == "AE+PAR" else "tab:gray" if n == CONTROL else "tab:blue" for n in names]
        ax.bar(range(len(names)), means, color=colors, alpha=0.6)
        for i, n in enumerate(names):
            ys = [r[key] * scale for r in rows if r["variant"] == n and r.get(key) is not None]
            ax.scatter([i] * len(ys), ys, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(label + ("" if higher else " (lower is better)"), fontsize=10)
        baseline = {"test_acc": ("majority_acc", "majority class"), "bleu": ("copy_bleu", "copying the source")}
        base = [r[baseline[key][0]] * scale for r in rows if key in baseline and r.get(baseline[key][0]) is not None]
        if base and key == "test_acc":
            ax.axhline(base[0], color="black", linestyle="--", linewidth=0.8, label=baseline[key][1])
            ax.legend(fontsize=8, loc="upper left")
        elif base:
            ax.text(0.02, 0.95, f"{baseline[key][1]}: {base[0]:.1f}", transform=ax.transAxes, fontsize=8, va="top")
        finite = [r[key] * scale for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        finite += [b for b in base if key == "test_acc"]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(1e-6, (hi - lo) * 0.6 + 0.5)
            ax.set_ylim(0.0, hi + pad)  # bars compare magnitudes: the axis starts at zero (dots: seeds)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(out: Path, preset_name: str, figure: Path | None, results: Path | None = None) -> str:
    rows = read_results(results or out / "results.jsonl")
    summary = summarize(rows)
    table = markdown_table(summary, preset_name)
    (out / "ablation.md").write_text(table)
    write_csv(rows, out / "ablation.csv")
    if figure is not None and summary:
        plot(rows, summary, figure, f"Table 6 in miniature (preset {preset_name}); bars: mean, dots: seeds")
    return table
