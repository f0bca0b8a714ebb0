"""Algorithm 1 on text: the blocks of one sentence, numbered in factorization order (notebook 1).

Section 3.1.2 of the paper: blockwise masking draws contiguous spans, and the order in which it
draws them is the factorization order of the partially autoregressive (PAR) objective. These
functions show one draw on words: as plain text (:func:`render_blocks_text`), as HTML for the
widgets (:func:`render_blocks_html`) and as a figure (:func:`plot_blocks`), each block in the colour
of its step with the step number beside it. With ``shown`` (what the context shows after the
80/10/10 replacement of section 4.1), a masked word also carries its ``[M]``, random or kept token.

Choice: a block is given as the list of its positions; :func:`block_spans` refuses one that is not
contiguous, since Algorithm 1 never draws such a block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pmlm.viz.common import step_color


def block_spans(blocks: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """``(start, end, step)`` per block, sorted by start; ``end`` exclusive, ``step`` 1-based.

    ``step`` is the block's place in the factorization order, i.e. in the list ``blocks``:
    ``block_spans([[5, 6], [1]]) == [(1, 2, 2), (5, 7, 1)]``.
    """
    spans = [(min(b), max(b) + 1, i) for i, b in enumerate(blocks, start=1)]
    for (s, e, _), b in zip(spans, blocks):
        if e - s != len(b):
            raise ValueError(f"block {list(b)} is not contiguous; Algorithm 1 draws contiguous spans")
    return sorted(spans)


def render_blocks_text(tokens: Sequence[str], blocks: Sequence[Sequence[int]]) -> str:
    """Plain-text rendering: each block in brackets with its step number, e.g. ``a [2: good fortune]``."""
    starts = {s: (e, step) for s, e, step in block_spans(blocks)}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            e, step = starts[i]
            out.append(f"[{step}: {' '.join(tokens[i:e])}]")
            i = e
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def render_blocks_html(tokens: Sequence[str], blocks: Sequence[Sequence[int]],
                       shown: Sequence[str] | None = None) -> str:
    """HTML rendering: blocks highlighted in the colour of their step, numbered in factorization order.

    ``shown`` (one string per token) gives what the context shows after the 80/10/10 replacement;
    masked tokens then read ``original→shown``.
    """
    import html

    spans = block_spans(blocks)
    starts = {s: (e, step) for s, e, step in spans}
    parts, i = [], 0
    while i < len(tokens):
        if i in starts:
            e, step = starts[i]
            words = []
            for j in range(i, e):
                w = html.escape(tokens[j])
                if shown is not None and shown[j] != tokens[j]:
                    w += f"<span style='color:#ddd'>&rarr;{html.escape(shown[j])}</span>"
                words.append(w)
            parts.append(
                f"<span style='background:{step_color(step, len(spans))};color:white;"
                f"padding:1px 4px;border-radius:4px'>{' '.join(words)}"
                f"<sup style='font-weight:bold'>&nbsp;{step}</sup></span>")
            i = e
        else:
            parts.append(html.escape(tokens[i]))
            i += 1
    return "<div style='line-height:2.1;font-family:serif'>" + " ".join(parts) + "</div>"


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (#rrggbb; WCAG relative luminance)."""
    r, g, b = (int(background[i:i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "black" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "white"


def plot_blocks(tokens: Sequence[str], blocks: Sequence[Sequence[int]], *, ax=None,
                width: float = 9.0, shown: Sequence[str] | None = None, title: str | None = None,
                fontsize: float = 10.0):
    """The sentence with its blocks highlighted and numbered in factorization order.

    Words are wrapped to ``width`` inches (the width of ``ax`` when one is given); a block is a
    box in the colour of its step with the step number above it. With ``shown`` (one string per
    token), each masked word carries what the context shows below it: ``[M]``, a random word (in
    italics), or ``(kept)``. Words in a block are black or white, whichever contrasts more with
    the block's colour. Data units are typographic points, so the boxes fit the measured words.
    """
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.textpath import TextToPath

    font = FontProperties(size=fontsize)
    measure = TextToPath()

    def text_width(s: str) -> float:  # in points
        return measure.get_text_width_height_descent(s, font, ismath=False)[0]

    spans = block_spans(blocks)
    step_of = {p: step for s, e, step in spans for p in range(s, e)}
    if ax is not None:
        fig = ax.figure
        width = ax.get_position().width * fig.get_size_inches()[0]
    line_w, space = 72 * width, text_width("n")
    row_h = fontsize * (3.9 if shown is not None else 2.6)
    place, line, x = [], 0, 0.0  # (line, x in points) of each token
    for tok in tokens:
        w = text_width(tok)
        if x and re.fullmatch(r"[,.;:!?)\]]", tok):
            x -= 0.6 * space  # punctuation hugs the word before it
        if x and x + w > line_w:
            line, x = line + 1, 0.0
        place.append((line, x, w))
        x += w + space
    height = (line + 1) * row_h + fontsize  # in points
    if ax is None:
        fig = plt.figure(figsize=(width, height / 72 + (0.3 if title else 0.0)))
        ax = fig.add_axes((0, 0, 1, height / (height + (22 if title else 0))))
    pad = fontsize * 0.25
    for s, e, step in spans:  # one box per block and line, behind the words
        for ln in sorted({place[i][0] for i in range(s, e)}):
            on_line = [place[i] for i in range(s, e) if place[i][0] == ln]
            x0, x1 = on_line[0][1], on_line[-1][1] + on_line[-1][2]
            ax.add_patch(FancyBboxPatch((x0 - pad, -(ln + 0.6) * row_h - 0.6 * fontsize),
                                        x1 - x0 + 2 * pad, 1.2 * fontsize,
                                        boxstyle=f"round,pad=0,rounding_size={pad}",
                                        fc=step_color(step, len(spans)), ec="none"))
    small = FontProperties(size=0.7 * fontsize)
    label_end, label_row = (-1, 0.0), 0  # (line, right edge) of the previous grey label; its row
    for i, (tok, (ln, x, w)) in enumerate(zip(tokens, place)):
        y = -(ln + 0.6) * row_h
        if i in step_of:
            if shown is not None:
                label = shown[i] if shown[i] != tok else "(kept)"  # the 10% that keep their word say so
                half = measure.get_text_width_height_descent(label, small, ismath=False)[0] / 2
                centre = x + w / 2
                collides = (ln, centre - half) < label_end  # same line, and left of the previous end
                label_row = 1 - label_row if collides else 0  # stagger labels that would overlap
                label_end = (ln, centre + half + 4)
                random_word = label not in ("[M]", "(kept)")
                ax.text(centre, y - (1.3 + 0.8 * label_row) * fontsize, label, ha="center", va="center",
                        fontsize=0.7 * fontsize, color="#b03000" if random_word else "#404040",
                        fontstyle="italic" if random_word else "normal")
        ax.text(x, y, tok, ha="left", va="center_baseline", fontsize=fontsize,
                color=text_on(step_color(step_of[i], len(spans))) if i in step_of else "black")
    for s, e, step in spans:  # the step number above the first token of each block
        ln, x, _ = place[s]
        ax.text(x - pad, -(ln + 0.6) * row_h + 0.95 * fontsize, str(step), ha="left", va="center",
                fontsize=0.75 * fontsize, fontweight="bold", color=step_color(step, len(spans)))
    ax.set_xlim(-pad - 1, line_w + pad)
    ax.set_ylim(-height + 0.5 * fontsize, 0.5 * fontsize)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize, loc="left")
    return ax
