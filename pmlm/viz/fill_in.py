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

Choice: the blocks are given over word *pieces* (numbered in the widget), since that is what the
model masks; every masked piece shows ``[M]`` (no 10% kept or random), so the reader sees exactly
what had to be guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pmlm.layout import build_pmlm_example
from pmlm.tokenizer import special_ids
from pmlm.viz.common import figure_png


def pieces_of(tok, sentence: str) -> list[str]:
    """The word pieces of ``sentence`` (no special tokens), as the model reads them."""
    return tok.encode(sentence, add_special_tokens=False).tokens


@torch.no_grad()
def fill_in_predictions(model, tok, sentence: str, blocks: Sequence[Sequence[int]], top_k: int = 3) -> dict:
    """AE and PAR guesses for the pieces in ``blocks`` (piece indices, in factorization order).

    Returns ``{"pieces", "example", "rows"}``; each row: ``piece`` (index), ``truth``, ``step``
    (1-based), ``ae`` and ``par``, lists of ``(piece, probability)``, most likely first.
    """
    ids = special_ids(tok)
    enc = tok.encode(sentence, add_special_tokens=False)
    if not enc.ids:
        raise ValueError("type a sentence: it has no word pieces")
    if not blocks:
        raise ValueError("choose at least one block to mask, e.g. 2-3; 5")
    seq = [ids["sos"]] + enc.ids + [ids["eos"]]
    if len(seq) > model.config.max_positions:
        raise ValueError(f"the sentence has {len(enc.ids)} pieces; this model reads at most "
                         f"{model.config.max_positions - 2}")
    for b in blocks:
        for p in b:
            if not 0 <= p < len(enc.ids):
                raise ValueError(f"piece {p} is outside the sentence's pieces 0..{len(enc.ids) - 1}")
    shifted = [[p + 1 for p in b] for b in blocks]  # [SOS] comes first
    ex = build_pmlm_example(seq, shifted, mask_id=ids["mask"], pseudo_id=ids["pseudo"],
                            vocab_size=tok.get_vocab_size(), replace_probs=(1.0, 0.0, 0.0),
                            drop_last_originals=True)
    was_training = model.training
    model.eval()
    logits = model(ex.input_ids[None], ex.position_ids[None], ex.attention_mask[None])[0]  # (L, V)
    model.train(was_training)
    probs = logits.float().softmax(-1)  # (L, V)
    rows = []
    for step, b in enumerate(shifted, start=1):
        pseudo_rows = (ex.step_ids == -step).nonzero().flatten().tolist()
        for p, r in zip(b, pseudo_rows):
            top = lambda row: [(tok.id_to_token(int(i)), float(probs[row, i]))  # noqa: E731
                               for i in probs[row].topk(top_k).indices]
            rows.append({"piece": p - 1, "truth": tok.id_to_token(seq[p]), "step": step, "ae": top(p), "par": top(r)})
    return {"pieces": enc.tokens, "example": ex, "rows": rows}


def hits(result: dict, key: str) -> int:
    """How many masked pieces have the truth as the first guess of ``key`` (``"ae"`` or ``"par"``)."""
    return sum(r[key][0][0] == r["truth"] for r in result["rows"])


def fill_in_table_html(result: dict, twin: dict | None = None) -> str:
    """The predictions as an HTML table (truth in bold where a guess hits it), with a line of totals."""
    import html

    def cell(guesses, truth):
        return "<br>".join((f"<b>{html.escape(g)}</b>" if g == truth else html.escape(g)) + f" {p:.2f}"
                           for g, p in guesses)

    head = "<tr><th>piece</th><th>step</th><th>truth</th><th>AE (from [M])</th><th>PAR (from [P])</th>"
    head += "<th>AE-only model</th></tr>" if twin else "</tr>"
    body = []
    for i, r in enumerate(result["rows"]):
        extra = f"<td>{cell(twin['rows'][i]['ae'], r['truth'])}</td>" if twin else ""
        body.append(f"<tr><td>{r['piece']}</td><td>{r['step']}</td><td>{html.escape(r['truth'])}</td>"
                    f"<td>{cell(r['ae'], r['truth'])}</td><td>{cell(r['par'], r['truth'])}</td>{extra}</tr>")
    n = len(result["rows"])
    total = f"first guess right: AE {hits(result, 'ae')}/{n}, PAR {hits(result, 'par')}/{n}"
    total += f", AE-only model {hits(twin, 'ae')}/{n}" if twin else ""
    return "<table>" + head + "".join(body) + "</table>" + f"<p>{total}</p>"


def fill_in_widget(model=None, tok=None, sentence: str = "It is a truth universally acknowledged, that a "
                   "single man in possession of a good fortune, must be in want of a wife.",
                   blocks: str = "3-4; 11", twin="auto"):
    """The fill-in widget; ``model, tok`` default to :func:`pmlm.load_reference`.

    ``twin``: a ``(model, tok)`` to show the AE guesses of beside the model's, ``None`` for none, or
    ``"auto"``: the shipped AE-only twin when the model is the shipped reference (``model=None``),
    none otherwise.

    Returns an ``ipywidgets.VBox``; ``box.controls``: ``sentence``, ``blocks`` (piece indices in
    factorization order, e.g. ``3-4; 11``), ``layer``, ``head``; ``box.views``: ``pieces``
    (numbered), ``table`` (HTML) and ``attention`` (PNG); ``box.update()`` redraws.
    """
    import html

    import ipywidgets as W
    import matplotlib.pyplot as plt

    from pmlm.viz.layout import parse_blocks, token_labels
    from pmlm.viz.trained import attention_probabilities, plot_attention_weights

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
    controls = {"sentence": W.Text(value=sentence, description="sentence", layout=W.Layout(width="95%"),
                                   continuous_update=False),
                "blocks": W.Text(value=blocks, description="blocks", continuous_update=False,
                                 placeholder="piece numbers in factorization order, e.g. 3-4; 11"),
                "layer": W.IntSlider(value=c.num_layers - 1, min=0, max=c.num_layers - 1, description="layer"),
                "head": W.IntSlider(value=0, min=0, max=c.num_heads - 1, description="head")}
    views = {"pieces": W.HTML(), "table": W.HTML(), "attention": W.Image(format="png")}

    def update(*_):
        pieces = pieces_of(tok, controls["sentence"].value)
        views["pieces"].value = "<code>" + "  ".join(f"{i}:{html.escape(p)}" for i, p in enumerate(pieces)) + "</code>"
        try:
            bl = parse_blocks(controls["blocks"].value)
            result = fill_in_predictions(model, tok, controls["sentence"].value, bl)
            other = fill_in_predictions(twin[0], twin[1], controls["sentence"].value, bl) if twin else None
        except ValueError as err:
            views["table"].value = f"<pre style='color:crimson'>{html.escape(str(err))}</pre>"
            views["attention"].value = b""
            return
        views["table"].value = fill_in_table_html(result, other)
        ex = result["example"]
        batch = {"input_ids": ex.input_ids[None], "position_ids": ex.position_ids[None],
                 "attention_mask": ex.attention_mask[None]}
        weights = attention_probabilities(model, batch, layer=controls["layer"].value)[0, controls["head"].value]
        names = {special_ids(tok)["mask"]: "[M]", special_ids(tok)["pseudo"]: "[P]"}
        labels = token_labels(ex, lambda t: names.get(t, tok.id_to_token(t)))
        size = max(4.0, min(11.0, 0.3 * ex.length + 1.5))
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        plot_attention_weights(weights, labels, ax=ax, step_ids=ex.step_ids,
                               title=f"attention of layer {controls['layer'].value}, head {controls['head'].value}")
        views["attention"].value = figure_png(fig, dpi=72)

    for ctl in controls.values():
        ctl.observe(update, names="value")
    update()
    box = W.VBox([controls["sentence"], controls["blocks"], views["pieces"], W.HBox([controls["layer"], controls["head"]]),
                  W.HBox([views["table"], views["attention"]])])
    box.controls, box.views, box.update = controls, views, update
    return box
