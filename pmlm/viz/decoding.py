"""Cached pseudo-mask decoding drawn step by step (section 3.4, :class:`pmlm.finetune.decoding.CachedStepper`).

At step t the decoder feeds two tokens: the real token y_{t-1} chosen at the step before, at its
position, and a ``[P]`` at the next position; the ``[P]`` attends the cache (source and earlier real
tokens), y_{t-1} and itself, and predicts y_t. Then y_{t-1}'s keys and values join the cache and the
``[P]``'s are dropped: the next step puts a new ``[P]`` one position further. So each step encodes
two tokens instead of the whole prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

CACHED, NEW_REAL, PSEUDO = "#d9d9d9", "#b7e1a1", "#cfe3f7"


def decoding_steps(source: Sequence[str], output: Sequence[str]) -> list[list[dict]]:
    """Per step, the tokens by position: ``{"token", "position", "kind"}`` with kind ``cached``
    (in the cache), ``new`` (y_{t-1}, encoded now and kept) or ``[P]`` (encoded now, predicts y_t,
    dropped)."""
    n = len(source)
    steps = []
    for t in range(1, len(output) + 1):
        row = [{"token": s, "position": i, "kind": "cached"} for i, s in enumerate(source)]
        row += [{"token": output[j], "position": n + j, "kind": "cached"} for j in range(t - 2)]
        if t > 1:
            row.append({"token": output[t - 2], "position": n + t - 2, "kind": "new"})
        row.append({"token": "[P]", "position": n + t - 1, "kind": "[P]", "predicts": output[t - 1]})
        steps.append(row)
    return steps


def plot_cached_decoding(source: Sequence[str] = ("[SOS]", "and", "god", "said", "[EOS]"),
                         output: Sequence[str] = ("god", "said", ",", "let", "[EOS]"), ax=None):
    """One row per decoding step: the cache (grey), the token encoded and kept (green), the ``[P]``
    that predicts the next token (blue, dropped after the step), each at its position."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    steps = decoding_steps(source, output)
    width = len(source) + len(output)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * width + 2.5, 0.75 * len(steps) + 1.6))
    face = {"cached": CACHED, "new": NEW_REAL, "[P]": PSEUDO}
    for t, row in enumerate(steps, start=1):
        y = -t
        for cell in row:
            x = cell["position"]
            ax.add_patch(Rectangle((x - 0.45, y - 0.35), 0.9, 0.7, fc=face[cell["kind"]], ec="#555555", lw=1,
                                   ls="--" if cell["kind"] == "[P]" else "-"))
            ax.text(x, y, cell["token"], ha="center", va="center", fontsize=9)
            if cell["kind"] == "[P]":
                ax.annotate(f"-> {cell['predicts']}", (x + 0.5, y), fontsize=9, va="center", color="#1f4e79")
        ax.text(-0.9, y, f"step {t}", ha="right", va="center", fontsize=9)
    for i in range(width):
        ax.text(i, 0.0, str(i), ha="center", va="center", fontsize=8, color="#555555")
    ax.text(-0.9, 0.0, "position", ha="right", va="center", fontsize=8, color="#555555")
    ax.set_xlim(-2.2, width + 1.2)
    ax.set_ylim(-len(steps) - 0.8, 0.5)
    ax.axis("off")
    ax.legend(handles=[Patch(fc=CACHED, ec="#555555", label="in the key/value cache"),
                       Patch(fc=NEW_REAL, ec="#555555", label="encoded now and kept: y(t-1)"),
                       Patch(fc=PSEUDO, ec="#555555", ls="--", label="[P]: encoded now, predicts y(t), dropped")],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    ax.set_title("Cached pseudo-mask decoding: two tokens encoded per step, the cache grows by the real one",
                 fontsize=10)
    return ax
