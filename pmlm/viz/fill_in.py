"""A trained model at work: type a sentence, pick the spans and their order, see both halves of one pass.

:func:`fill_in_predictions` masks the chosen blocks of a sentence (all shown as ``[M]``), lays the
pseudo masks out in the chosen factorization order (section 3.2) and runs one forward pass: each
masked piece gets the AE guesses from its ``[M]`` in the context (Eq. 4) and the PAR guesses from
its ``[P]``, which has seen the original pieces of the earlier blocks (Eq. 5), with their
probabilities. :func:`fill_in_widget` puts that in a widget on the shipped reference model (or any
model and tokenizer), with the attention of a chosen layer and head of the same pass and, beside
them, the AE guesses of an AE-only twin: by default the one shipped with the reference model
(:data:`pmlm.pretrained.REFERENCE_AE`, trained as BERT for the same steps on the same data), so that
the reader sees on their own sentence what the PAR half of pre-training changed.

Choices:

* The blocks are given over word *pieces*, since that is what the model masks, and a piece is
  numbered by its position in the model's input: ``[SOS]`` is 0, the first piece 1. The widget's
  list of pieces, its blocks, its table and the ``@`` labels of its attention map all use that one
  numbering.
* Every masked piece shows ``[M]`` (no 10% kept or random), so the reader sees exactly what had to
  be guessed.
* A new sentence gets new blocks (:func:`default_blocks`: a span of two whole words, then one word
  near the end), since blocks chosen for another sentence would mask arbitrary pieces of it.
* The table has one line per guess and the probabilities in columns of their own; the attention map
  sits below it, drawn at the size it is shown, so that the widget fits a laptop's notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pmlm.layout import build_pmlm_example
from pmlm.tokenizer import special_ids


def pieces_of(tok, sentence: str) -> list[str]:
    """The word pieces of ``sentence`` (no special tokens), as the model reads them."""
    return tok.encode(sentence, add_special_tokens=False).tokens


def default_blocks(pieces: Sequence[str]) -> str:
    """Blocks that fit ``pieces``, as the widget's text: a span of two words, then one word after it.

    Words are alphabetic pieces of at least 3 letters that are whole words (not a ``##`` piece,
    nor followed by one).
    The span is the first two such words side by side, the single one the last such word not next
    to the span (without two words side by side: the middle word alone; without words: piece 1);
    positions count from 1 (``[SOS]`` is 0). ``["mr", ".", "darcy", "was", "not",
    "handsome", "enough", "to", "tempt", "him", "."]`` -> ``"3-4; 10"``.
    """
    n = len(pieces)

    def word(i):  # 0-based index into pieces
        whole = not pieces[i].startswith("##") and (i + 1 == n or not pieces[i + 1].startswith("##"))
        return whole and pieces[i].isalpha() and len(pieces[i]) >= 3

    words = [i for i in range(n) if word(i)]
    pairs = [i for i in words if i + 1 in words]
    if not words:
        return "1" if n else ""
    if not pairs:
        return str(words[len(words) // 2] + 1)
    a = pairs[0]
    later = [i for i in words if i > a + 2]
    return f"{a + 1}-{a + 2}; {later[-1] + 1}" if later else f"{a + 1}-{a + 2}"


@torch.no_grad()
def fill_in_predictions(model, tok, sentence: str, blocks: Sequence[Sequence[int]], top_k: int = 3) -> dict:
    """AE and PAR guesses for the pieces in ``blocks`` (positions 1..n, in factorization order).

    Positions are those of the model's input: ``[SOS]`` is 0, the sentence's pieces 1..n.
    Returns ``{"pieces", "example", "rows"}``; each row: ``position``, ``truth``, ``step``
    (1-based), ``ae`` and ``par``, lists of ``(piece, probability)``, most likely first.
    """
    from pmlm.viz.layout import check_steps

    ids = special_ids(tok)
    enc = tok.encode(sentence, add_special_tokens=False)
    if not enc.ids:
        raise ValueError("type a sentence: it has no word pieces")
    if not blocks:
        raise ValueError("choose at least one block to mask, e.g. 3-4; 10")
    seq = [ids["sos"]] + enc.ids + [ids["eos"]]
    if len(seq) > model.config.max_positions:
        raise ValueError(f"the sentence has {len(enc.ids)} pieces; this model reads at most "
                         f"{model.config.max_positions - 2}")
    check_steps(blocks, 1, len(enc.ids), "piece", " of the sentence ([SOS] is 0)")
    blocks = [[int(p) for p in b] for b in blocks]
    ex = build_pmlm_example(seq, blocks, mask_id=ids["mask"], pseudo_id=ids["pseudo"],
                            vocab_size=tok.get_vocab_size(), replace_probs=(1.0, 0.0, 0.0),
                            drop_last_originals=True)
    was_training = model.training
    model.eval()
    logits = model(ex.input_ids[None], ex.position_ids[None], ex.attention_mask[None])[0]  # (L, V)
    model.train(was_training)
    probs = logits.float().softmax(-1)  # (L, V)

    def top(row):
        return [(tok.id_to_token(int(i)), float(probs[row, i])) for i in probs[row].topk(top_k).indices]

    rows = []
    for step, b in enumerate(blocks, start=1):
        pseudo_rows = (ex.step_ids == -step).nonzero().flatten().tolist()  # the [P]s of this step
        for p, r in zip(b, pseudo_rows):
            rows.append({"position": p, "truth": tok.id_to_token(seq[p]), "step": step, "ae": top(p), "par": top(r)})
    return {"pieces": enc.tokens, "example": ex, "rows": rows}


def hits(result: dict, key: str) -> int:
    """How many masked pieces have the truth as the first guess of ``key`` (``"ae"`` or ``"par"``)."""
    return sum(r[key][0][0] == r["truth"] for r in result["rows"])


TABLE_STYLE = "border-collapse:collapse;white-space:nowrap;font-size:13px;line-height:1.35"
CELL = "padding:1px 6px"


def fill_in_table_html(result: dict, twin: dict | None = None) -> str:
    """The predictions as an HTML table: one line per guess, the probabilities in columns of their own.

    Each masked piece takes ``top_k`` lines (its position, step and truth span them); a guess that
    is the truth is in bold. A line of totals follows: how often the first guess is right.
    """
    import html

    guess_columns = [("ae", "AE, from [M]"), ("par", "PAR, from [P]")] + ([("twin", "AE-only model")] if twin else [])
    head = "".join(f"<th style='{CELL}'>{h}</th>" for h in ("position", "step", "truth"))
    head += "".join(f"<th colspan='2' style='{CELL};border-left:1px solid #ccc'>{h}</th>" for _, h in guess_columns)
    body = []
    for i, r in enumerate(result["rows"]):
        guesses = {"ae": r["ae"], "par": r["par"]}
        if twin:
            guesses["twin"] = twin["rows"][i]["ae"]
        k = len(r["ae"])
        for j in range(k):
            top_line = "border-top:1px solid #999;" if j == 0 else ""
            cells = []
            if j == 0:
                cells += [f"<td rowspan='{k}' style='{CELL};vertical-align:top;text-align:right'>{r['position']}</td>",
                          f"<td rowspan='{k}' style='{CELL};vertical-align:top;text-align:right'>{r['step']}</td>",
                          f"<td rowspan='{k}' style='{CELL};vertical-align:top'>{html.escape(r['truth'])}</td>"]
            for key, _ in guess_columns:
                g, p = guesses[key][j]
                text = f"<b>{html.escape(g)}</b>" if g == r["truth"] else html.escape(g)
                cells += [f"<td style='{CELL};border-left:1px solid #ccc'>{text}</td>",
                          f"<td style='{CELL};text-align:right;font-variant-numeric:tabular-nums'>{p:.2f}</td>"]
            body.append(f"<tr style='{top_line}'>" + "".join(cells) + "</tr>")
    n = len(result["rows"])
    total = f"first guess right: AE {hits(result, 'ae')}/{n}, PAR {hits(result, 'par')}/{n}"
    total += f", AE-only model {hits(twin, 'ae')}/{n}" if twin else ""
    # a class of its own: page styles for plain tables (the docs site's theme) leave it as drawn here
    return (f"<table class='pmlm-guesses' style='{TABLE_STYLE}'><tr>{head}</tr>" + "".join(body) + "</table>"
            + f"<p style='margin:4px 0'>{total} (bold: the truth; the numbers: probabilities)</p>")


def pieces_html(pieces: Sequence[str], blocks: Sequence[Sequence[int]] | None) -> str:
    """The pieces numbered by position (1..n), the masked blocks in the colour of their step."""
    import html

    from pmlm.viz.common import step_color

    step_of = {p: s for s, b in enumerate(blocks or [], start=1) for p in b}
    parts = []
    for i, piece in enumerate(pieces, start=1):
        text = f"{i}:{html.escape(piece)}"
        if i in step_of:
            colour = step_color(step_of[i], len(blocks))
            text = (f"<span style='background:{colour};color:white;padding:0 3px;border-radius:3px'>"
                    f"{text}<sup>&nbsp;step&nbsp;{step_of[i]}</sup></span>")
        parts.append(text)
    return ("<div style='font-family:monospace;line-height:1.8'>" + "  ".join(parts) + "</div>"
            "<div style='color:#666;font-size:12px'>pieces by position ([SOS] is 0): the numbers that the "
            "blocks take and the attention map shows after @</div>")


# The opening of Pride and Prejudice; "man" first, then "good fortune", which PAR guesses having seen "man"
DEFAULT_SENTENCE = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                    "must be in want of a wife.")
DEFAULT_BLOCKS = "12; 17-18"


def fill_in_widget(model=None, tok=None, sentence: str = DEFAULT_SENTENCE, blocks: str | None = None, twin="auto"):
    """The fill-in widget; ``model, tok`` default to :func:`pmlm.load_reference`.

    ``blocks``: positions of pieces in factorization order, as the reader types them (``12;
    17-18``: first piece 12, then pieces 17 and 18; ``[SOS]`` is 0); ``None`` picks
    :data:`DEFAULT_BLOCKS` for :data:`DEFAULT_SENTENCE`, else :func:`default_blocks`. ``twin``: a ``(model, tokenizer)`` to show the AE
    guesses of beside the model's, ``None`` for none, or ``"auto"``: the shipped AE-only twin when
    the model is the shipped reference (``model=None``), none otherwise.

    Returns a :class:`pmlm.viz.widgets.WidgetBox`; ``box.controls``: ``sentence``, ``blocks``,
    ``layer``, ``head``; ``box.views``: ``pieces`` (numbered), ``table`` (HTML) and ``attention``
    (PNG); ``box.update()`` redraws. Typing redraws after a short pause; a sentence with other
    pieces gets :func:`default_blocks` of its own.
    """
    import html

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from pmlm.viz.layout import parse_blocks, token_labels
    from pmlm.viz.trained import attention_probabilities, plot_attention_weights
    from pmlm.viz.widgets import WidgetBox, debounced, hide_figure, show_figure

    if isinstance(twin, str) and twin != "auto":
        raise ValueError(f"twin={twin!r}: pass a (model, tokenizer) pair, None, or 'auto'")
    if twin is not None and not isinstance(twin, str) and not (isinstance(twin, (tuple, list)) and len(twin) == 2):
        raise ValueError("twin must be a (model, tokenizer) pair, None, or 'auto'")
    if model is None and tok is not None:
        raise ValueError("a tokenizer without its model: pass fill_in_widget(model, tok), or neither for the reference")
    if model is None:
        from pmlm.pretrained import REFERENCE_AE, load_reference
        model, tok = load_reference()
        twin = load_reference(REFERENCE_AE) if twin == "auto" else twin
    elif twin == "auto":
        twin = None
    if tok is None:
        raise ValueError("pass the model's tokenizer too: fill_in_widget(model, tok)")
    if twin is not None and twin[1].get_vocab() != tok.get_vocab():
        raise ValueError("the twin has another tokenizer: its pieces would not line up with the model's; "
                         "compare models that share one (pmlm.train --tokenizer)")
    c = model.config
    first_pieces = pieces_of(tok, sentence)
    if blocks is None:
        blocks = DEFAULT_BLOCKS if sentence == DEFAULT_SENTENCE else default_blocks(first_pieces)
    slider = dict(continuous_update=False, layout=W.Layout(width="300px"))
    controls = {"sentence": W.Text(value=sentence, description="sentence", layout=W.Layout(width="auto"),
                                   continuous_update=True),
                "blocks": W.Text(value=blocks, description="blocks", continuous_update=True,
                                 layout=W.Layout(width="360px"),
                                 placeholder="positions in factorization order, e.g. 3-4; 10"),
                "layer": W.IntSlider(value=c.num_layers - 1, min=0, max=c.num_layers - 1, description="layer", **slider),
                "head": W.IntSlider(value=0, min=0, max=c.num_heads - 1, description="head", **slider)}
    views = {"pieces": W.HTML(), "note": W.HTML(), "table": W.HTML(), "attention": W.Image(format="png")}
    state = {"pieces": first_pieces, "key": None, "results": None, "busy": False}

    def predict(text, bl):
        key = (text, repr(bl))
        if state["key"] != key:
            result = fill_in_predictions(model, tok, text, bl)
            other = fill_in_predictions(twin[0], twin[1], text, bl) if twin else None
            state["key"], state["results"] = key, (result, other)
        return state["results"]

    def update(*_):
        if state["busy"]:  # the blocks field set below calls back here
            return
        state["busy"] = True
        try:
            draw()
        finally:
            state["busy"] = False

    def draw():
        text = controls["sentence"].value
        pieces = pieces_of(tok, text)
        views["note"].value = ""
        if pieces != state["pieces"]:
            state["pieces"] = pieces
            controls["blocks"].value = default_blocks(pieces)
            views["note"].value = (f"<i>blocks set to {html.escape(controls['blocks'].value)} for the new sentence; "
                                   "edit them to mask other pieces</i>")
        try:
            bl = parse_blocks(controls["blocks"].value)
            views["pieces"].value = pieces_html(pieces, bl)
            result, other = predict(text, bl)
        except ValueError as err:
            views["pieces"].value = pieces_html(pieces, None)
            views["table"].value = f"<pre style='color:crimson;white-space:pre-wrap'>{html.escape(str(err))}</pre>"
            hide_figure(views["attention"])
            return
        views["table"].value = fill_in_table_html(result, other)
        ex = result["example"]
        batch = {"input_ids": ex.input_ids[None], "position_ids": ex.position_ids[None],
                 "attention_mask": ex.attention_mask[None]}
        weights = attention_probabilities(model, batch, layer=controls["layer"].value)[0, controls["head"].value]
        names = {special_ids(tok)["mask"]: "[M]", special_ids(tok)["pseudo"]: "[P]"}
        labels = token_labels(ex, lambda t: names.get(t, tok.id_to_token(t)))
        size = max(4.0, min(9.5, 0.25 * ex.length + 1.5))  # inches; 72 px each: at most about 800 px wide
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        plot_attention_weights(weights, labels, ax=ax, step_ids=ex.step_ids,
                               title=f"attention of layer {controls['layer'].value}, head {controls['head'].value}")
        show_figure(views["attention"], fig)

    for name in ("sentence", "blocks"):
        controls[name].observe(debounced(update), names="value")
    for name in ("layer", "head"):
        controls[name].observe(update, names="value")
    update()
    return WidgetBox([controls["sentence"], W.HBox([controls["blocks"], views["note"]]), views["pieces"],
                      views["table"], W.HBox([controls["layer"], controls["head"]],
                                             layout=W.Layout(flex_flow="row wrap")), views["attention"]],
                     controls=controls, views=views, update=update, name="The fill-in widget")
