"""Pictures of the method: blocks on text, layouts as tables, attention masks as heat maps, widgets.

Every plot here is something a reader should look at while reading the paper's section 3: in a
mask, rows are *queries*, columns are *keys*, and a filled cell means the query may attend to the
key (True in every mask of this package). The notebooks import these functions; ``python -m
pmlm.figures`` uses them to draw ``figures/``; ``tests/test_viz.py`` checks them.

Contents, in the order of the notebooks:

* Algorithm 1 on text (notebook 1): :func:`split_words`, :func:`block_spans`,
  :func:`render_blocks_text` / :func:`render_blocks_html`, :func:`plot_blocks`,
  :func:`sampler_statistics`, :func:`plot_sampler_histograms`, :func:`replacement_statistics`,
  :func:`masking_widget`.
* Pseudo masks and the attention mask (notebook 2): :func:`worked_example`, :func:`text_example`,
  :func:`layout_rows` / :func:`layout_table`, :func:`mask_to_text`, :func:`plot_attention_mask`,
  :func:`reachable`, :func:`plot_leak_paths`, :func:`parse_blocks`, :func:`layout_widget`.
* One pass, two objectives (notebook 3): :func:`word_vocabulary` / :func:`encode_words` (a
  deterministic vocabulary for checked outputs), :func:`plot_pass_costs` (with :mod:`pmlm.naive`).
* Trained models (notebook 4): :func:`attention_probabilities`, :func:`plot_attention_weights`,
  :func:`plot_loss_curves`.
* Table 6 (notebook 6): :data:`PAPER_TABLE6`, :func:`paper_vs_ours`, :func:`plot_paper_vs_ours`.

matplotlib and ipywidgets are imported inside the functions that need them, so ``import pmlm``
stays light. The widgets render their views as HTML and PNG values (no ``Output`` capture), so a
widget built without a browser or a kernel holds its current picture and can be tested.
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter
from collections.abc import Sequence

import torch

from pmlm.layout import IGNORE_INDEX, build_pmlm_example
from pmlm.masking import replacement_tokens, sample_blocks

ROLE_NAMES = {0: "context", -1: "[P]", 1: "original"}
MASK_TOKEN, PSEUDO_TOKEN = "[M]", "[P]"


# --------------------------------------------------------------------------------------------
# Algorithm 1 on text (notebook 1)
# --------------------------------------------------------------------------------------------

def split_words(text: str) -> list[str]:
    """Words and punctuation marks, the display tokens of the method notebooks.

    The paper masks WordPiece tokens; for pictures of Algorithm 1 a word is easier to read, and the
    algorithm is the same on any token sequence. ``"Mr. Bennet's"`` -> ``["Mr", ".", "Bennet's"]``.
    """
    return re.findall(r"\w+(?:['\u2019]\w+)*|[^\w\s]", text)


def step_color(step: int, num_steps: int) -> str:
    """The colour of factorization step ``step`` (1-based) as ``#rrggbb``, shared by all plots."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["viridis"]
    return to_hex(cmap(0.15 + 0.75 * (step - 1) / max(1, num_steps - 1)))


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


def plot_blocks(tokens: Sequence[str], blocks: Sequence[Sequence[int]], *, ax=None,
                width: float = 9.0, shown: Sequence[str] | None = None, title: str | None = None,
                fontsize: float = 10.0):
    """The sentence with its blocks highlighted and numbered in factorization order.

    Words are wrapped to ``width`` inches (the width of ``ax`` when one is given); a block is a
    box in the colour of its step with the step number above it. With ``shown`` (one string per
    token), each masked word carries what the context shows (``[M]``, a random word, or itself)
    below it, in grey. Data units are typographic points, so the boxes fit the measured words.
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
            if shown is not None and shown[i] != tok:
                half = measure.get_text_width_height_descent(shown[i], small, ismath=False)[0] / 2
                centre = x + w / 2
                collides = (ln, centre - half) < label_end  # same line, and left of the previous end
                label_row = 1 - label_row if collides else 0  # stagger labels that would overlap
                label_end = (ln, centre + half + 2)
                ax.text(centre, y - (1.3 + 0.75 * label_row) * fontsize, shown[i], ha="center",
                        va="center", fontsize=0.7 * fontsize, color="dimgray")
        ax.text(x, y, tok, ha="left", va="center_baseline", fontsize=fontsize,
                color="white" if i in step_of else "black")
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


def proposal_lengths(block_prob: float = 0.4, block_len: tuple[int, int] = (2, 6)) -> dict[int, float]:
    """The length Algorithm 1 *draws* (before rejection): 1 w.p. 1 - block_prob, else uniform in block_len."""
    lo, hi = block_len
    probs = {1: 1.0 - block_prob} if lo > 1 else {}
    for k in range(lo, hi + 1):
        probs[k] = probs.get(k, 0.0) + block_prob / (hi - lo + 1)
    return probs


def sampler_statistics(num_tokens: int = 128, trials: int = 2000, seed: int = 0,
                       **sample_kwargs) -> dict:
    """Run Algorithm 1 ``trials`` times on ``num_tokens`` maskable tokens with a seeded generator.

    Returns ``block_lengths`` (Counter over accepted blocks), ``masked_share`` (one float per
    draw), ``num_blocks`` (one int per draw) and the settings used.
    """
    g = torch.Generator().manual_seed(seed)
    lengths: Counter = Counter()
    shares, counts = [], []
    for _ in range(trials):
        blocks = sample_blocks(num_tokens, generator=g, **sample_kwargs)
        lengths.update(len(b) for b in blocks)
        shares.append(sum(len(b) for b in blocks) / num_tokens)
        counts.append(len(blocks))
    return {"block_lengths": lengths, "masked_share": shares, "num_blocks": counts,
            "num_tokens": num_tokens, "trials": trials, "seed": seed, **sample_kwargs}


def summarize_sampler(stats: dict) -> str:
    """Three lines of numbers from :func:`sampler_statistics`, rounded so that they print stably."""
    lengths = stats["block_lengths"]
    total = sum(lengths.values())
    shares = stats["masked_share"]
    by_len = "  ".join(f"{k}: {lengths[k] / total:6.1%}" for k in sorted(lengths))
    return (f"{stats['trials']} draws on {stats['num_tokens']} tokens, {total} blocks\n"
            f"mean masked share {sum(shares) / len(shares):.1%} (min {min(shares):.1%}, "
            f"max {max(shares):.1%}); mean blocks per draw {sum(stats['num_blocks']) / len(shares):.1f}\n"
            f"share of blocks by length  {by_len}")


def plot_sampler_histograms(stats: dict, axes=None):
    """Two panels: block lengths (accepted vs. drawn) and the masked share per draw (vs. 15%)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax1, ax2 = axes
    lengths = stats["block_lengths"]
    total = sum(lengths.values())
    block_prob = stats.get("block_prob", 0.4)
    block_len = stats.get("block_len", (2, 6))
    proposal = proposal_lengths(block_prob, block_len)
    ks = sorted(set(lengths) | set(proposal))
    ax1.bar([k - 0.2 for k in ks], [proposal.get(k, 0) for k in ks], width=0.4, color="#bbbbbb",
            label=f"drawn: 1 w.p. {1 - block_prob:.0%}, else {block_len[0]}..{block_len[1]} uniform")
    ax1.bar([k + 0.2 for k in ks], [lengths.get(k, 0) / total for k in ks], width=0.4,
            color=step_color(1, 2), label="accepted blocks (overlaps rejected)")
    ax1.set_xticks(ks)
    ax1.set_xlabel("block length (tokens)")
    ax1.set_ylabel("share of blocks")
    ax1.legend(fontsize=8)
    ax1.set_title(f"Block lengths, {stats['trials']} draws", fontsize=10)
    shares = [100 * s for s in stats["masked_share"]]
    n = stats["num_tokens"]
    edges = [100 * (k - 0.5) / n for k in range(int(min(shares) * n / 100), int(max(shares) * n / 100) + 2)]
    ax2.hist(shares, bins=edges, color="#4c9bd0")
    target = 100 * stats.get("mask_ratio", 0.15)
    ax2.set_xlim(min(target, edges[0]) - 0.5, edges[-1] + 0.5)
    mean = sum(shares) / len(shares)
    ax2.axvline(target, color="crimson", lw=1.5, label=f"paper's ratio {target:.0f}%")
    ax2.axvline(mean, color="black", ls="--", lw=1.2, label=f"mean {mean:.1f}%")
    ax2.set_xlabel(f"masked share of the {n} tokens (%)")
    ax2.set_ylabel("draws")
    ax2.legend(fontsize=8)
    ax2.set_title("Masked share per draw (loop stops at the first draw >= ratio)", fontsize=10)
    return axes


def replacement_statistics(num_tokens: int = 20000, seed: int = 0, vocab_size: int = 1000,
                           special_ids: Sequence[int] = (0, 1, 2, 3), mask_id: int = 4,
                           replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict:
    """What the context shows at ``num_tokens`` masked positions: counts of ``[M]``, random, kept.

    Originals are drawn among the non-special ids; ``special_drawn`` counts random replacements that
    hit a special id (must be 0); ``random_equal_original`` counts random draws that happen to equal
    the original (they look "kept" but were drawn at random; about 1/V of the random share).
    """
    rng = random.Random(seed)
    excluded = set(special_ids) | {mask_id}
    allowed = [t for t in range(vocab_size) if t not in excluded]
    originals = [rng.choice(allowed) for _ in range(num_tokens)]
    shown = replacement_tokens(originals, mask_id=mask_id, vocab_size=vocab_size,
                               replace_probs=replace_probs, special_ids=special_ids, rng=rng)
    counts = Counter()
    for o, s in zip(originals, shown):
        counts["[M]" if s == mask_id else "kept" if s == o else "random"] += 1
    return {"counts": {k: counts[k] for k in ("[M]", "random", "kept")}, "num_tokens": num_tokens,
            "special_drawn": sum(s in excluded and s != mask_id for s in shown),
            "replace_probs": replace_probs}


def plot_replacement(stats: dict, ax=None):
    """Bars of the measured replacement shares beside the paper's 80/10/10."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.0))
    names = ["[M]", "random", "kept"]
    measured = [stats["counts"][k] / stats["num_tokens"] for k in names]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], stats["replace_probs"], width=0.4, color="#bbbbbb", label="paper")
    ax.bar([x + 0.2 for x in xs], measured, width=0.4, color=step_color(1, 2), label="measured")
    for x, m in zip(xs, measured):
        ax.text(x + 0.2, m + 0.01, f"{m:.1%}", ha="center", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("share of masked tokens")
    ax.set_title(f"80/10/10 replacement, {stats['num_tokens']} masked tokens", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def figure_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a figure, closed afterwards (for ``ipywidgets.Image``)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def masking_widget(tokens: Sequence[str], *, seed: int = 0, mask_ratio: float = 0.15,
                   block_prob: float = 0.4, trials: int = 300):
    """Sliders for mask ratio, block probability and seed that redraw Algorithm 1 on ``tokens``.

    Returns an ``ipywidgets.VBox``; ``box.controls`` holds the sliders and ``box.views`` the
    ``sentence`` (HTML), ``summary`` (HTML) and ``histograms`` (PNG image) it updates, so that
    it can be driven and checked without a browser. ``box.update()`` redraws.
    """
    import matplotlib.pyplot as plt
    import ipywidgets as W

    controls = {
        "mask_ratio": W.FloatSlider(value=mask_ratio, min=0.05, max=0.5, step=0.01, description="ratio",
                                    readout_format=".2f", continuous_update=False),
        "block_prob": W.FloatSlider(value=block_prob, min=0.0, max=1.0, step=0.05, description="block p",
                                    readout_format=".2f", continuous_update=False),
        "seed": W.IntSlider(value=seed, min=0, max=99, description="seed", continuous_update=False),
    }
    views = {"sentence": W.HTML(), "summary": W.HTML(), "histograms": W.Image(format="png")}

    def update(*_):
        kw = dict(mask_ratio=controls["mask_ratio"].value, block_prob=controls["block_prob"].value)
        g = torch.Generator().manual_seed(controls["seed"].value)
        blocks = sample_blocks(len(tokens), generator=g, **kw)
        views["sentence"].value = render_blocks_html(tokens, blocks)
        masked = sum(len(b) for b in blocks)
        views["summary"].value = (f"<code>{len(blocks)} blocks, {masked} of {len(tokens)} tokens masked "
                                  f"({masked / len(tokens):.1%}); numbers = factorization order</code>")
        stats = sampler_statistics(len(tokens), trials, controls["seed"].value, **kw)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        plot_sampler_histograms(stats, axes)
        views["histograms"].value = figure_png(fig, dpi=72)

    for c in controls.values():
        c.observe(update, names="value")
    update()
    box = W.VBox([W.HBox(list(controls.values())), views["sentence"], views["summary"], views["histograms"]])
    box.controls, box.views, box.update = controls, views, update
    return box


# --------------------------------------------------------------------------------------------
# Pseudo masks, position reuse and the attention mask (notebook 2)
# --------------------------------------------------------------------------------------------

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


def word_vocabulary(texts: Sequence[str], size: int = 4000) -> dict[str, int]:
    """A deterministic lowercase word vocabulary: the special tokens, then words by count.

    The special tokens come first with the ids :mod:`pmlm.tokenizer` gives them (``[PAD]`` 0 ..
    ``[P]`` 5); ties in count are broken alphabetically. Pre-training uses a WordPiece tokenizer,
    whose training is not deterministic across processes; the method notebooks use this one so
    that their checked outputs are the same on every machine.
    """
    from pmlm.tokenizer import SPECIAL_TOKENS

    counts = Counter(w.lower() for t in texts for w in split_words(t))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: max(0, size - len(SPECIAL_TOKENS))]
    return {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + words)}


def encode_words(text: str, vocab: dict[str, int]) -> list[int]:
    """``[SOS] words [EOS]`` as ids of :func:`word_vocabulary`; unknown words become ``[UNK]``."""
    ids = [vocab.get(w.lower(), vocab["[UNK]"]) for w in split_words(text)]
    return [vocab["[SOS]"], *ids, vocab["[EOS]"]]


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
    """:func:`layout_rows` as an aligned text table (one line per token), for ``print``."""
    rows = layout_rows(example, id_to_token, position_base)
    w = max(5, *(len(r["token"]) for r in rows))
    lines = [f"{'#':>3}  {'token':<{w}}  {'pos':>3}  {'role':<8}  step", "-" * (w + 25)]
    for j, r in enumerate(rows):
        step = "" if r["step"] is None else str(r["step"])
        if j == example.num_context and j:
            lines.append("-" * (w + 25) + "  appended: [P]s, then originals, step by step")
        lines.append(f"{j:>3}  {r['token']:<{w}}  {r['position']:>3}  {r['role']:<8}  {step:>4}")
    return "\n".join(lines)


def mask_to_text(mask: torch.Tensor, labels: Sequence[str]) -> str:
    """The 0/1 matrix as text, rows = queries, columns = keys (as printed in PMLM.md)."""
    mask = torch.as_tensor(mask).bool()
    w = max(len(s) for s in labels)
    header = " " * w + " " + " ".join(f"{s:>{w}}" for s in labels)
    rows = [f"{lab:<{w}} " + " ".join(f"{int(v):>{w}}" for v in row.tolist()) for lab, row in zip(labels, mask)]
    return "\n".join([header, *rows])


def step_groups(step_ids: torch.Tensor) -> list[tuple[int, int, int]]:
    """Contiguous runs of equal step id: ``(start, end, step_id)``, ``end`` exclusive."""
    ids = torch.as_tensor(step_ids).tolist()
    groups, start = [], 0
    for j in range(1, len(ids) + 1):
        if j == len(ids) or ids[j] != ids[start]:
            groups.append((start, j, ids[start]))
            start = j
    return groups


def plot_attention_mask(mask: torch.Tensor, labels: Sequence[str] | None = None, *, ax=None,
                        title: str | None = None, step_ids: torch.Tensor | None = None,
                        show_values: bool | None = None):
    """Heat map of an (L, L) bool mask: row = query, column = key, dark = may attend.

    With ``step_ids`` the context / appended boundary is drawn in red and each step's group of
    ``[P]`` or originals is separated by thin grey lines; ``show_values`` writes 0/1 in each cell
    (default: when L <= 16).
    """
    import matplotlib.pyplot as plt

    mask = torch.as_tensor(mask).bool().cpu()
    L = mask.shape[-1]
    if ax is None:
        size = max(4.0, min(14.0, 0.32 * L + 1.5))
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(mask.float().numpy(), cmap="Blues", vmin=0, vmax=1.25, interpolation="nearest")
    if labels is not None and L <= 80:
        ax.set_xticks(range(L), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(L), labels, fontsize=8)
    if show_values if show_values is not None else L <= 16:
        for q in range(L):
            for k in range(L):
                ax.text(k, q, int(mask[q, k]), ha="center", va="center", fontsize=7,
                        color="white" if mask[q, k] else "#999999")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if step_ids is not None:
        for start, _, sid in step_groups(step_ids)[1:]:
            color, lw = ("crimson", 1.6) if sid != 0 and start == int((torch.as_tensor(step_ids) == 0).sum()) \
                else ("#888888", 0.6)
            ax.axhline(start - 0.5, color=color, lw=lw)
            ax.axvline(start - 0.5, color=color, lw=lw)
    ax.set_title(title or "attention mask (row may attend column)", fontsize=10)
    return ax


def reachable(mask: torch.Tensor, hops: int) -> torch.Tensor:
    """Which keys can influence each query through ``hops`` attention layers: (L, L) bool.

    Layer by layer, a query's state mixes the states of the keys it attends to, so information
    flows along paths of the mask; ``reachable(mask, 2)[q, k]`` says k reaches q in two layers.
    The PMLM mask is closed under this (``reachable(mask, h) == mask``): no implicit leak at any depth.
    """
    m = torch.as_tensor(mask).bool()
    r = m.clone()
    for _ in range(hops - 1):
        r = (r.float() @ m.float()) > 0  # (L, L): some j with r[q, j] and m[j, k]
    return r


def leak_cells(example) -> dict[str, list[tuple[int, int]]]:
    """The cells the mask blocks to prevent leaks, as (query, key) pairs of the layout.

    ``explicit``: a ``[P]`` and the copy of its own original. ``future``: a ``[P]`` or an original
    and an original of a later step (that would break the factorization order). ``implicit``: for
    each ``[P]``, a (context key, original) pair such that ``[P] -> context -> original`` would
    carry a forbidden token to it in two layers; the mask cuts the second hop.
    """
    sid = example.step_ids.tolist()
    pos = example.position_ids.tolist()
    out = {"explicit": [], "future": [], "implicit": []}
    for q, sq in enumerate(sid):
        for k, sk in enumerate(sid):
            if sq < 0 and sk == -sq and pos[q] == pos[k]:
                out["explicit"].append((q, k))
            elif sq != 0 and sk > abs(sq):
                out["future"].append((q, k))
    n = example.num_context
    for q, sq in enumerate(sid):
        if sq < 0:
            for k, sk in enumerate(sid):
                if sk >= -sq:  # forbidden to [P] of step -sq
                    out["implicit"] += [(c, k) for c in range(n)]
    out["implicit"] = sorted(set(out["implicit"]))
    return out


def plot_leak_paths(example, labels: Sequence[str], *, query: int | None = None, via: int | None = None,
                    ax=None, title: str | None = None):
    """The mask with the leaks it blocks drawn on it, for one ``[P]`` query (default: the first).

    Red crosses: the explicit leak (the ``[P]`` seeing its own original) and the later steps'
    originals, in the query's row. The implicit path ``[P] -> via -> original`` (``via`` a context
    token, default the last one): a green circle where the ``[P]`` may attend ``via``, an arrow to
    the cell where ``via`` would attend the original, which the mask blocks (red cross).
    """
    sid = example.step_ids.tolist()
    pos = example.position_ids.tolist()
    if query is None:
        query = next(j for j, s in enumerate(sid) if s < 0)
    if sid[query] >= 0:
        raise ValueError(f"query {query} is not a [P] (step id {sid[query]}); pick a pseudo-mask row")
    step = -sid[query]
    own = next(k for k, s in enumerate(sid) if s == step and pos[k] == pos[query])
    via = example.num_context - 1 if via is None else via
    if sid[via] != 0:
        raise ValueError(f"via={via} is not a context token")
    ax = plot_attention_mask(example.attention_mask, labels, ax=ax, step_ids=example.step_ids,
                             title=title or f"leaks blocked for {labels[query]}")
    for k, s in enumerate(sid):
        if s >= step:
            ax.plot(k, query, marker="x", color="crimson", ms=11, mew=2.2)
    ax.plot(via, query, marker="o", mfc="none", mec="limegreen", ms=13, mew=2.2)
    ax.plot(own, via, marker="x", color="crimson", ms=11, mew=2.2)
    ax.annotate("", xy=(own, via), xytext=(via, query),
                arrowprops=dict(arrowstyle="->", color="darkorange", lw=1.8, shrinkA=7, shrinkB=7))
    ax.text(1.02, 0.98, f"explicit: {labels[query]} -x-> {labels[own]}\n"
            f"implicit: {labels[query]} -> {labels[via]} -x-> {labels[own]}\n"
            "o allowed   x blocked", transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    return ax


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


def layout_widget(sentence: str = "Mr. Bennet replied that he had not.", blocks: str = "2-3; 0",
                  *, max_words: int = 20):
    """Type a sentence and its blocks in factorization order; see the layout and the matrix update.

    Returns an ``ipywidgets.VBox``; ``box.controls`` holds the ``sentence`` and ``blocks`` text
    fields, ``box.views`` the ``words`` (numbered words), ``table`` (layout) and ``matrix`` (PNG)
    it updates, and ``box.update()`` redraws. Bad input shows the package's error message.
    """
    import html

    import ipywidgets as W
    import matplotlib.pyplot as plt

    controls = {"sentence": W.Text(value=sentence, description="sentence", layout=W.Layout(width="90%"),
                                   continuous_update=False),
                "blocks": W.Text(value=blocks, description="blocks", continuous_update=False,
                                 placeholder="e.g. 2-3; 0  (0-based, in factorization order)")}
    views = {"words": W.HTML(), "table": W.HTML(), "matrix": W.Image(format="png")}

    def update(*_):
        words = split_words(controls["sentence"].value)[:max_words]
        views["words"].value = "<code>" + "  ".join(f"{i}:{html.escape(w)}" for i, w in enumerate(words)) + "</code>"
        try:
            if not words:
                raise ValueError("type a sentence")
            bl = parse_blocks(controls["blocks"].value)
            ex, itos = text_example(words, bl)
        except ValueError as err:
            views["table"].value = f"<pre style='color:crimson'>{html.escape(str(err))}</pre>"
            views["matrix"].value = b""
            return
        views["words"].value += "<br>" + render_blocks_html(words, bl)
        views["table"].value = f"<pre>{html.escape(layout_table(ex, itos))}</pre>"
        labels = token_labels(ex, itos)
        fig, ax = plt.subplots(figsize=[max(4.0, min(11.0, 0.3 * ex.length + 1.5))] * 2)
        plot_attention_mask(ex.attention_mask, labels, ax=ax, step_ids=ex.step_ids)
        views["matrix"].value = figure_png(fig, dpi=72)

    for c in controls.values():
        c.observe(update, names="value")
    update()
    box = W.VBox([controls["sentence"], controls["blocks"], views["words"],
                  W.HBox([views["table"], views["matrix"]])])
    box.controls, box.views, box.update = controls, views, update
    return box


def plot_pass_costs(example, ax=None):
    """Tokens per forward pass: the single PMLM pass against the 1 + s passes of the naive way.

    One bar per pass, split into the context (n tokens, recomputed by every naive pass), the
    original copies of earlier steps, and the query slots (``[P]``) of the step.
    """
    import matplotlib.pyplot as plt

    n, steps = example.num_context, example.steps
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.28 * (len(steps) + 3) + 1.2))
    colors = {"context": "#9ecae1", "copies": "#fdae6b", "[P]": "#31a354"}
    sid = example.step_ids
    rows = [("PMLM, 1 pass", n, int((sid > 0).sum()), int((sid < 0).sum())),
            ("naive: AE pass", n, 0, 0)]
    rows += [(f"naive: step {i}", n, sum(len(b) for b in steps[: i - 1]), len(steps[i - 1]))
             for i in range(1, len(steps) + 1)]
    for y, (name, ctx, copies, pseudo) in enumerate(rows):
        left = 0
        for part, width in (("context", ctx), ("copies", copies), ("[P]", pseudo)):
            ax.barh(y, width, left=left, color=colors[part], label=part if y == 0 else None)
            left += width
        ax.text(left + 1, y, str(left), va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    naive_total = sum(sum(r[1:]) for r in rows[1:])
    ax.set_xlabel("tokens in the pass")
    ax.set_title(f"PMLM: 1 pass of {sum(rows[0][1:])} tokens; naive: {len(rows) - 1} passes, "
                 f"{naive_total} tokens", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# --------------------------------------------------------------------------------------------
# Trained models (notebook 4)
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def attention_probabilities(model, batch: dict[str, torch.Tensor], layer: int = -1) -> torch.Tensor:
    """Softmax attention weights (B, h, L, L) of one layer of a :class:`pmlm.PMLMModel`.

    The model calls SDPA, which does not return the weights; a forward hook takes the layer's input
    and recomputes ``softmax(q k^T / sqrt(d) + bias)`` with the same mask and relative bias.
    Rows sum to 1 and are 0 wherever the mask is False.
    """
    import math

    attention = model.layers[layer].attention
    captured = {}
    handle = attention.register_forward_hook(lambda mod, args, out: captured.update(x=args[0]))
    was_training = model.training
    model.eval()
    try:
        model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch.get("segment_ids"))
    finally:
        handle.remove()
        model.train(was_training)
    x = captured["x"]
    # the mask and relative bias SDPA gets: bool (B, 1, L, L), or float with -inf where forbidden
    attn_mask = model.attention_bias(batch["position_ids"], batch["attention_mask"], x.dtype)
    B, L, H = x.shape
    q, k, _ = attention.qkv(x).split(H, dim=-1)  # 2 x (B, L, H)
    q, k = (t.view(B, L, attention.h, H // attention.h).transpose(1, 2) for t in (q, k))  # (B, h, L, d)
    scores = q @ k.transpose(-1, -2) / math.sqrt(H // attention.h)  # (B, h, L, L)
    if attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    else:
        scores = scores + attn_mask  # relative bias with -inf where the mask is False
    return scores.softmax(-1)


def plot_attention_weights(weights: torch.Tensor, labels: Sequence[str] | None = None, *, ax=None,
                           step_ids: torch.Tensor | None = None, title: str | None = None):
    """Heat map of one head's (L, L) attention weights: row = query, column = key."""
    import matplotlib.pyplot as plt

    w = torch.as_tensor(weights).float().cpu()
    L = w.shape[-1]
    if ax is None:
        size = max(4.0, min(14.0, 0.3 * L + 1.5))
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(w.numpy(), cmap="Oranges", vmin=0, vmax=float(w.max()), interpolation="nearest")
    if labels is not None and L <= 80:
        ax.set_xticks(range(L), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(L), labels, fontsize=7)
    if step_ids is not None:
        n = int((torch.as_tensor(step_ids) == 0).sum())
        ax.axhline(n - 0.5, color="steelblue", lw=1.2)
        ax.axvline(n - 0.5, color="steelblue", lw=1.2)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title or "attention weights", fontsize=10)
    return ax


# --------------------------------------------------------------------------------------------
# Table 6: the paper's numbers beside ours (notebook 6)
# --------------------------------------------------------------------------------------------

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
            ax.set_ylim(max(0.0, lo - pad), hi + pad)  # zoom on the differences
        for i, v in enumerate(values):
            if not math.isnan(v):
                ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(title, fontsize=10)
    return axes


# --------------------------------------------------------------------------------------------
# Pre-training curves (pmlm.train, make demo)
# --------------------------------------------------------------------------------------------

def plot_loss_curves(metrics_path, ax=None, *, smooth: int = 5):
    """AE and PAR loss (and accuracy) against the optimizer step, from a run's ``metrics.jsonl``.

    ``ax``: None draws two panels, loss and validation accuracy, and returns both axes; one Axes
    gets the loss panel only; a pair of Axes gets both. Thin lines: training loss of each objective
    (running mean over ``smooth`` log lines); lines with dots: validation on the run's fixed
    examples and masks. An objective the run does not train (PAR under ``--objective ae``) still
    shows its validation numbers: the evaluation always lays out both. Dashed grey: the unigram
    baseline (predicting from word-piece frequencies alone), when the run logged it.
    """
    import json
    from pathlib import Path

    import matplotlib.pyplot as plt

    path = Path(metrics_path)
    path = path / "metrics.jsonl" if path.is_dir() else path
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a killed run may leave a partial last line
    if ax is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    else:
        axes = ax if isinstance(ax, (list, tuple)) or hasattr(ax, "flat") else [ax]
    loss_ax, acc_ax = axes[0], (axes[1] if len(axes) > 1 else None)
    start = next((r for r in records if r.get("event") == "start"), {})
    colors = {"ae": "tab:blue", "par": "tab:orange"}
    for name in ("ae", "par"):
        train = [(r["step"], r[f"{name}_loss"]) for r in records
                 if r.get("split") == "train" and r.get(f"{name}_loss") is not None]
        if train:
            steps, values = zip(*train)
            window = [values[max(0, i - smooth + 1):i + 1] for i in range(len(values))]
            loss_ax.plot(steps, [sum(w) / len(w) for w in window], color=colors[name], lw=1,
                         alpha=0.6, label=f"{name.upper()} train")
        val = [r for r in records if r.get("split") == "val"]
        if val:
            steps = [r["step"] for r in val]
            loss_ax.plot(steps, [r[f"val_{name}_loss"] for r in val], "o-", color=colors[name], lw=2,
                         ms=4, label=f"{name.upper()} validation")
            if acc_ax is not None:
                acc_ax.plot(steps, [r[f"val_{name}_acc"] for r in val], "o-", color=colors[name],
                            lw=2, ms=4, label=f"{name.upper()} validation")
    for a, key, what in ((loss_ax, "unigram_val_loss", "cross entropy (nats per masked token)"),
                         (acc_ax, "unigram_val_acc", "top-1 accuracy on masked tokens")):
        if a is None:
            continue
        if key in start:
            a.axhline(start[key], color="grey", ls="--", lw=1, label="unigram baseline")
        a.set_xlabel("optimizer step")
        a.set_ylabel(what)
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    loss_ax.set_title("PMLM pre-training: AE and PAR loss")
    if acc_ax is not None:
        acc_ax.set_title("validation accuracy (fixed masks)")
    return axes if acc_ax is not None else loss_ax
