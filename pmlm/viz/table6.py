"""The paper's Table 6 (its ablation of the objectives) beside our miniature run (notebook 6).

:data:`PAPER_TABLE6` holds the paper's numbers by the variant names of :mod:`pmlm.ablation`;
:func:`paper_vs_ours` writes them beside our means over seeds as a markdown table, and
:func:`plot_paper_vs_ours` draws both, UniLMv2 (AE+PAR) in red.

Choice: the tasks differ (the paper fine-tunes on SQuAD, MNLI and SST-2, we on Rotten Tomatoes
sentiment and KJV -> WEB verses), so the paper's scores and ours stand in separate columns and
panels, each on its own scale, never mixed into one number.
"""

from __future__ import annotations

from collections.abc import Sequence


# The paper's Table 6 (BASE size, Wikipedia + BookCorpus, 1M steps; rows 2-6 average 5 runs), by the
# variant names of pmlm.ablation. Row 1 is UniLMv2-base with the relative position bias; rows 2-6
# drop it, so row 2 is the AE+PAR entry comparable with the others.
PAPER_TABLE6 = {
    "AE+PAR (row 1)": {"row": "1", "squad1": (92.0, 85.6), "squad2": (83.6, 80.9), "mnli": (86.1, 86.1), "sst2": 93.2},
    "AE+PAR": {"row": "2", "squad1": (91.5, 85.0), "squad2": (81.8, 78.9), "mnli": (85.6, 85.5), "sst2": 93.0},
    "AE+AR": {"row": "3", "squad1": (90.8, 84.1), "squad2": (80.7, 77.8), "mnli": (85.4, 85.5), "sst2": 92.6},
    "AE": {"row": "4", "squad1": (91.0, 84.2), "squad2": (81.3, 78.4), "mnli": (84.9, 85.0), "sst2": 92.4},
    "PAR": {"row": "5", "squad1": (90.7, 83.9), "squad2": (79.9, 77.0), "mnli": (84.9, 85.2), "sst2": 92.5},
    "AR": {"row": "6", "squad1": (89.9, 82.9), "squad2": (79.3, 76.1), "mnli": (84.8, 85.0), "sst2": 92.3},
}


def paper_vs_ours(summary: Sequence[dict]) -> str:
    """A markdown table: per variant, the paper's Table 6 numbers beside ours (means over seeds).

    ``summary`` is :func:`pmlm.ablation.summarize`'s list (``variant``, ``test_acc_mean``,
    ``bleu_mean``, ``chrf_mean``, ``seeds``); variants the paper does not have (the control) get "-".
    """
    import math

    def num(x, scale=1.0):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.1f}"

    lines = ["| variant | Table 6 row | paper SQuAD 2.0 F1 | paper MNLI-m | paper SST-2 | ours: seeds "
             "| ours: sentiment acc (%) | ours: verses BLEU | ours: verses chrF |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        p = PAPER_TABLE6.get(e["variant"])
        paper = [p["row"], num(p["squad2"][0]), num(p["mnli"][0]), num(p["sst2"])] if p else ["-"] * 4
        lines.append(f"| {e['variant']} | " + " | ".join(paper) + f" | {e['seeds']} | "
                     f"{num(e.get('test_acc_mean'), 100)} | {num(e.get('bleu_mean'))} | {num(e.get('chrf_mean'))} |")
    return "\n".join(lines)


def plot_paper_vs_ours(summary: Sequence[dict], axes=None):
    """Four panels over the same variants: the paper's SQuAD 2.0 F1 and SST-2, our sentiment
    accuracy and verses BLEU. UniLMv2 (AE+PAR) in red, the no-pre-training control in grey."""
    import math

    import matplotlib.pyplot as plt

    names = [e["variant"] for e in summary]
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [("paper: SQuAD 2.0 F1", [PAPER_TABLE6[n]["squad2"][0] if n in PAPER_TABLE6 else math.nan
                                         for n in names]),
              ("paper: SST-2 accuracy", [PAPER_TABLE6[n]["sst2"] if n in PAPER_TABLE6 else math.nan
                                         for n in names]),
              ("ours: sentiment accuracy (%)", [100 * e.get("test_acc_mean", math.nan) for e in summary]),
              ("ours: KJV -> WEB BLEU", [e.get("bleu_mean", math.nan) for e in summary])]
    colors = ["tab:red" if n == "AE+PAR" else "tab:gray" if n not in PAPER_TABLE6 else "tab:blue" for n in names]
    for ax, (title, values) in zip(axes, panels):
        ax.bar(range(len(names)), [0 if math.isnan(v) else v for v in values], color=colors, alpha=0.7)
        finite = [v for v in values if not math.isnan(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.6 + 0.3
            ax.set_ylim(0.0, hi + pad)  # bars compare magnitudes: the axis starts at zero
        for i, v in enumerate(values):
            if not math.isnan(v):
                ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(title, fontsize=10)
    return axes
