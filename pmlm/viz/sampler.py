"""Algorithm 1 and the 80/10/10 replacement, measured over many draws; the masking widget (notebook 1).

Section 3.1.2 of the paper: a block has length 2-6 with probability 0.4, else 1, and blocks are
drawn until 15% of the tokens are masked; section 4.1: a masked token shows ``[M]`` 80% of the
time, a random token 10%, itself 10%. :func:`sampler_statistics` and
:func:`replacement_statistics` run :func:`pmlm.masking.sample_blocks` and
:func:`pmlm.masking.replacement_tokens` many times with a seeded generator;
:func:`plot_sampler_histograms` and :func:`plot_replacement` put what they draw beside what the
paper says. Overlapping blocks are rejected, which favours short ones, so the accepted lengths
differ from the drawn ones (:func:`proposal_lengths`): the histogram shows both.
:func:`masking_widget` puts sliders on the sampler and redraws a sentence and the histograms; the
histogram of the masked share marks the paper's 15% whatever the slider says, and the ratio chosen
on the slider as a line of its own.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import torch

from pmlm.masking import replacement_tokens, sample_blocks
from pmlm.viz.blocks import render_blocks_html
from pmlm.viz.common import step_color

PAPER_MASK_RATIO = 0.15  # section 3.1.2: blocks are drawn until 15% of the tokens are masked


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
    """Two panels: block lengths (accepted vs. drawn) and the masked share per draw.

    The second panel marks the paper's ratio (15%) and, when ``stats`` were drawn with another
    ``mask_ratio``, that chosen ratio as a line of its own.
    """
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
    paper, chosen = 100 * PAPER_MASK_RATIO, 100 * stats.get("mask_ratio", PAPER_MASK_RATIO)
    ax2.set_xlim(min(paper, chosen, edges[0]) - 0.5, max(paper, chosen, edges[-1]) + 0.5)
    mean = sum(shares) / len(shares)
    ax2.axvline(paper, color="crimson", lw=1.5, label=f"paper's ratio {paper:.0f}%")
    if abs(chosen - paper) > 1e-9:
        ax2.axvline(chosen, color="darkorange", ls=":", lw=1.8, label=f"chosen ratio {chosen:.0f}%")
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


def masking_widget(tokens: Sequence[str], *, seed: int = 0, mask_ratio: float = PAPER_MASK_RATIO,
                   block_prob: float = 0.4, trials: int = 300):
    """Sliders for mask ratio, block probability and seed that redraw Algorithm 1 on ``tokens``.

    Returns a :class:`pmlm.viz.widgets.WidgetBox`; ``box.controls`` holds the sliders and
    ``box.views`` the ``sentence`` (HTML), ``summary`` (HTML) and ``histograms`` (PNG image) it
    updates, so that it can be driven and checked without a browser. ``box.update()`` redraws.
    The sliders redraw when they are let go; the histograms are drawn at the size they are shown.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from pmlm.viz.widgets import WidgetBox, show_figure

    def slider(kind, **kw):
        return kind(continuous_update=False, layout=W.Layout(width="250px"),
                    style={"description_width": "60px"}, **kw)

    controls = {
        "mask_ratio": slider(W.FloatSlider, value=mask_ratio, min=0.05, max=0.5, step=0.01, description="ratio",
                             readout_format=".2f"),
        "block_prob": slider(W.FloatSlider, value=block_prob, min=0.0, max=1.0, step=0.05, description="block p",
                             readout_format=".2f"),
        "seed": slider(W.IntSlider, value=seed, min=0, max=99, description="seed"),
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
        show_figure(views["histograms"], fig)

    for c in controls.values():
        c.observe(update, names="value")
    update()
    row = W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap"))
    return WidgetBox([row, views["sentence"], views["summary"], views["histograms"]],
                     controls=controls, views=views, update=update, name="The masking widget")
