"""Pseudo masks and position reuse on words: layouts as tables, and the layout widget (notebook 2).

Section 3.2 of the paper (Figs. 4-5): the context keeps its conventional masks ``[M]``; each
factorization step then appends a ``[P]`` per token of its block and a copy of each original token,
and every appended token reuses the position of the token it stands for.
:func:`text_example` builds such an example with :func:`pmlm.layout.build_pmlm_example` on display
words; :func:`worked_example` is the paper's x1..x6; :func:`token_labels`, :func:`layout_rows` and
:func:`layout_table` name each token of the layout with its position, role and step.
:func:`parse_blocks` reads blocks as a user types them, :func:`check_steps` refuses bad ones in the
reader's numbering (steps from 1), and :func:`layout_widget` redraws the layout and its attention
mask (:func:`pmlm.viz.masks.plot_attention_mask`) as the user types.

Choices: the vocabulary of :func:`text_example` is a throwaway one built from the words themselves,
and by default every masked context token shows ``[M]``, as in the paper's figures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from pmlm.layout import IGNORE_INDEX, build_pmlm_example
from pmlm.viz.blocks import render_blocks_html
from pmlm.viz.common import MASK_TOKEN, PSEUDO_TOKEN, split_words
from pmlm.viz.masks import plot_attention_mask


def text_example(words: Sequence[str], blocks: Sequence[Sequence[int]], *,
                 replace_probs: tuple[float, float, float] = (1.0, 0.0, 0.0),
                 extra_words: Sequence[str] = (), seed: int = 0, drop_last_originals: bool = False):
    """A PMLM example on display words, with a throwaway vocabulary: ``(example, id_to_token)``.

    By default every masked context token shows ``[M]``, as in the paper's figures; pass
    ``replace_probs=(0.8, 0.1, 0.1)`` for the training-time replacement, which draws random
    words from ``words`` and ``extra_words`` (never ``[M]`` or ``[P]``), seeded by ``seed``.
    """
    vocab = {MASK_TOKEN: 0, PSEUDO_TOKEN: 1}
    for w in list(words) + list(extra_words):
        vocab.setdefault(w, len(vocab))
    itos = {i: w for w, i in vocab.items()}
    ex = build_pmlm_example([vocab[w] for w in words], blocks, mask_id=0, pseudo_id=1,
                            vocab_size=len(vocab), replace_probs=replace_probs,
                            generator=torch.Generator().manual_seed(seed),
                            drop_last_originals=drop_last_originals)
    return ex, itos.__getitem__


def worked_example():
    """The paper's Figs. 4-5: x1..x6, masked x2, x4, x5, order {x4, x5} then {x2}.

    Returns ``(example, id_to_token)``; positions in the example count from 0, the paper's from 1.
    """
    return text_example([f"x{i}" for i in range(1, 7)], [[3, 4], [1]])


def token_labels(example, id_to_token=None, position_base: int = 0) -> list[str]:
    """Axis labels for an example: token text and its position, e.g. ``[P]@3``."""
    labels = []
    for tok, pos in zip(example.input_ids.tolist(), example.position_ids.tolist()):
        text = id_to_token(tok) if id_to_token is not None else str(tok)
        labels.append(f"{text}@{pos + position_base}")
    return labels


def layout_rows(example, id_to_token=None, position_base: int = 0) -> list[dict]:
    """One dict per token of the layout: ``token``, ``position``, ``role``, ``step``.

    Roles: ``context``; ``masked`` (a context position that the AE loss predicts; it shows
    ``[M]``, a random or the kept token); ``[P]`` (a pseudo mask, the PAR loss predicts its
    original); ``original`` (a copy of the original token, visible to later steps). ``step`` is the
    factorization step (1-based) of masked positions and appended tokens, ``None`` for plain context.
    """
    step_of = {p: i for i, block in enumerate(example.steps, start=1) for p in block}
    rows = []
    for j, (tok, pos, sid) in enumerate(zip(example.input_ids.tolist(), example.position_ids.tolist(),
                                            example.step_ids.tolist())):
        if sid == 0:
            role = "masked" if int(example.ae_labels[j]) != IGNORE_INDEX else "context"
            step = step_of.get(pos)
        else:
            role, step = ("[P]" if sid < 0 else "original"), abs(sid)
        rows.append({"token": id_to_token(tok) if id_to_token else str(tok),
                     "position": pos + position_base, "role": role, "step": step})
    return rows


def layout_table(example, id_to_token=None, position_base: int = 0) -> str:
    """:func:`layout_rows` as an aligned text table (one line per token), for ``print``.

    A divider line, no wider than the table, marks where the appended tokens begin.
    """
    rows = layout_rows(example, id_to_token, position_base)
    w = max(5, *(len(r["token"]) for r in rows))
    lines = [f"{'#':>3}  {'token':<{w}}  {'pos':>3}  {'role':<8}  step", "-" * (w + 25)]
    for j, r in enumerate(rows):
        step = "" if r["step"] is None else str(r["step"])
        if j == example.num_context and j:
            lines.append(" appended: [P]s, then originals ".center(max(w + 25, 36), "-"))
        lines.append(f"{j:>3}  {r['token']:<{w}}  {r['position']:>3}  {r['role']:<8}  {step:>4}")
    return "\n".join(lines)


def parse_blocks(spec: str, base: int = 0) -> list[list[int]]:
    """Blocks in factorization order from text: ``"3-4; 1"`` -> ``[[3, 4], [1]]``.

    Blocks are separated by ``;`` or ``,``; a block is one position or an inclusive range ``a-b``.
    Positions count from ``base`` (0 as in the code; 1 as in the paper).
    """
    blocks = []
    for part in re.split(r"[;,]", spec):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read block {part!r}: write a position (3) or a range (3-4)")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"block {part!r} runs backwards; write it as {b}-{a}")
        if a < base:
            raise ValueError(f"block {part!r} starts before the first position {base}")
        blocks.append(list(range(a - base, b - base + 1)))
    if not blocks:
        raise ValueError("no blocks given: write e.g. '3-4; 1' (blocks in factorization order)")
    return blocks


def check_steps(blocks: Sequence[Sequence[int]], first: int, last: int, noun: str = "position",
                hint: str = "") -> None:
    """Refuse blocks that leave ``first..last`` or overlap, in the reader's numbering and steps from 1.

    The widgets number steps 1, 2, ... (as the layout table and the paper do) and positions as the
    reader typed them; the package's own check (:func:`pmlm.masking.check_blocks`) counts blocks
    from 0 over 0-based positions, which would not match what the widget shows. ``hint`` ends the
    out-of-range message (e.g. why the range is what it is).
    """
    seen: dict[int, int] = {}
    for step, block in enumerate(blocks, start=1):
        for p in block:
            if not first <= p <= last:
                raise ValueError(f"step {step} masks {noun} {p}, outside the {noun}s {first}..{last}{hint}")
            if p in seen:
                raise ValueError(f"steps {seen[p]} and {step} both mask {noun} {p}: each {noun} may be masked once")
            seen[p] = step


def layout_widget(sentence: str = "Mr. Bennet replied that he had not.", blocks: str = "2-3; 0",
                  *, max_words: int = 20):
    """Type a sentence and its blocks in factorization order; see the layout and the matrix update.

    Returns a :class:`pmlm.viz.widgets.WidgetBox`; ``box.controls`` holds the ``sentence`` and
    ``blocks`` text fields, ``box.views`` the ``words`` (numbered words), ``table`` (layout) and
    ``matrix`` (PNG) it updates, and ``box.update()`` redraws. It redraws as the reader types (after
    a short pause). Words are numbered from 0 and steps from 1, as in the table; a sentence longer
    than ``max_words`` is laid out up to that word, and the widget says so. Bad input shows an error
    message in place of the table and the matrix.
    """
    import html

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from pmlm.viz.widgets import WidgetBox, debounced, hide_figure, show_figure

    controls = {"sentence": W.Text(value=sentence, description="sentence", layout=W.Layout(width="auto"),
                                   continuous_update=True),
                "blocks": W.Text(value=blocks, description="blocks", continuous_update=True,
                                 placeholder="e.g. 2-3; 0  (words from 0, in factorization order)")}
    views = {"words": W.HTML(), "table": W.HTML(layout=W.Layout(flex="0 0 auto")), "matrix": W.Image(format="png")}

    def update(*_):
        every = split_words(controls["sentence"].value)
        words = every[:max_words]
        cut = len(every) > max_words
        shown = "  ".join(f"{i}:{html.escape(w)}" for i, w in enumerate(words))
        views["words"].value = f"<code>{shown}</code>"
        if cut:
            views["words"].value += (f"<br><i>the sentence has {len(every)} words; the widget lays out the first "
                                     f"{max_words} (0..{max_words - 1}): layout_widget(max_words=...) for more</i>")
        try:
            if not words:
                raise ValueError("type a sentence")
            bl = parse_blocks(controls["blocks"].value)
            check_steps(bl, 0, len(words) - 1, "word",
                        f" (the first {max_words} of the sentence's {len(every)} words)" if cut else "")
            ex, itos = text_example(words, bl)
        except ValueError as err:
            views["table"].value = f"<pre style='color:crimson;white-space:pre-wrap'>{html.escape(str(err))}</pre>"
            hide_figure(views["matrix"])
            return
        views["words"].value += "<br>" + render_blocks_html(words, bl)
        views["table"].value = f"<pre style='white-space:pre;margin:0'>{html.escape(layout_table(ex, itos))}</pre>"
        labels = token_labels(ex, itos)
        fig, ax = plt.subplots(figsize=[max(4.0, min(10.0, 0.3 * ex.length + 1.5))] * 2)
        plot_attention_mask(ex.attention_mask, labels, ax=ax, step_ids=ex.step_ids)
        show_figure(views["matrix"], fig)

    for c in controls.values():
        c.observe(debounced(update), names="value")
    update()
    side_by_side = W.HBox([views["table"], views["matrix"]],  # the matrix wraps below when too wide
                          layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="16px"))
    return WidgetBox([controls["sentence"], controls["blocks"], views["words"], side_by_side],
                     controls=controls, views=views, update=update, name="The layout widget")
