"""The method in one picture, in the style of the paper's Figs. 1 and 4: tokens, reused positions, arcs.

The worked example of section 3.2 (x1..x6, masked x2, x4, x5, factorization order {x4, x5} then
{x2}) laid out as one sequence: the context with its ``[M]``, then per step the pseudo masks ``[P]``
and the original copies, each *at the position of the token it stands for* (written under it).
Arcs above the row go from a pseudo mask to the original copies it may attend (in the colour of
its step: the ``[P]`` of step 2 sees the originals of step 1); arcs below, dashed in red with a
cross, are what the rule forbids because it would leak the answer: a ``[P]`` attending its own
original copy (the explicit leak). Every ``[P]`` also sees the whole context, ``[M]`` included
("global masking information"); those arcs are left out to keep the picture readable.
"""

from __future__ import annotations

from pmlm.viz.common import step_color

ROLE_FACE = {"context": "#f2f2f2", "masked": "#fde2b8", "[P]": "#cfe3f7", "original": "#d9f0d3"}


def plot_pmlm_diagram(ax=None, *, show_blocked: bool = True):
    """Draw the worked example as tokens in a row with positions under them and attention arcs."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from pmlm.viz.layout import layout_rows, worked_example

    ex, itos = worked_example()
    rows = layout_rows(ex, itos, position_base=1)
    L, n = len(rows), ex.num_context
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4.6))
    steps = max(r["step"] or 0 for r in rows)
    for i, r in enumerate(rows):
        face = ROLE_FACE[r["role"]]
        ax.add_patch(FancyBboxPatch((i - 0.4, -0.35), 0.8, 0.7, boxstyle="round,pad=0.02", fc=face,
                                    ec=step_color(r["step"], steps) if r["step"] else "#888888", lw=2))
        ax.text(i, 0, r["token"], ha="center", va="center", fontsize=12, color="black")
        ax.text(i, -0.62, str(r["position"]), ha="center", va="center", fontsize=10, color="#333333")
    ax.text(-0.9, -0.62, "position", ha="right", va="center", fontsize=10, color="#333333")
    ax.axvline(n - 0.5, color="#555555", lw=1, ls=":")
    ax.text((n - 1) / 2, -2.35, "context: BERT's masked LM (AE)", ha="center", fontsize=10)
    ax.text((n + L - 1) / 2, -2.35, "appended: pseudo masks and original copies (PAR)", ha="center", fontsize=10)
    mask = ex.attention_mask

    def arc(q, k, above, color, ls, cross=False):
        """A quadratic Bezier from token q to token k, above or below the row, apex height by span."""
        from matplotlib.patches import PathPatch
        from matplotlib.path import Path

        y0 = 0.38 if above else -0.38
        h = (0.45 + 0.22 * abs(q - k)) * (1 if above else -1)
        path = Path([(q, y0), ((q + k) / 2, y0 + 2 * h), (k, y0)], [Path.MOVETO, Path.CURVE3, Path.CURVE3])
        ax.add_patch(PathPatch(path, fc="none", ec=color, lw=1.6, ls=ls, alpha=0.9))
        ax.plot([k], [y0 + (0.06 if above else -0.06)], marker="v" if above else "^", color=color, ms=6)
        if cross:
            ax.text((q + k) / 2, y0 + h, "x", color=color, ha="center", va="center", fontsize=13,
                    fontweight="bold")

    for q, r in enumerate(rows):
        if r["role"] != "[P]":
            continue
        for k in range(n, L):  # arcs to the appended originals; every [P] sees all of the context
            if rows[k]["role"] != "original":
                continue
            if bool(mask[q, k]):
                arc(q, k, True, step_color(r["step"], steps), "-")
            elif show_blocked and rows[k]["position"] == r["position"]:
                arc(q, k, False, "crimson", "--", cross=True)  # its own original: the explicit leak
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D
    handles = [Patch(fc=ROLE_FACE["masked"], ec="#888888", label="[M] in the context (AE predicts it)"),
               Patch(fc=ROLE_FACE["[P]"], ec="#888888", label="[P] (PAR predicts its original)"),
               Patch(fc=ROLE_FACE["original"], ec="#888888", label="original copy, seen by later steps"),
               Line2D([], [], color=step_color(2, steps), lw=1.6, label="a [P] of step 2 may attend the originals of step 1"),
               Line2D([], [], color="crimson", lw=1.6, ls="--", label="blocked: a [P] never sees its own original")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3, fontsize=9, frameon=False)
    ax.set_xlim(-1.6, L - 0.4)
    ax.set_ylim(-2.6, 3.0)
    ax.axis("off")
    ax.set_title("One pass, two objectives (the paper's Figs. 1 and 4): x2, x4, x5 masked, order {x4, x5} "
                 "then {x2};\nappended tokens reuse the positions of the tokens they stand for", fontsize=11)
    return ax
