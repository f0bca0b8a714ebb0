"""One pass, two objectives: a deterministic vocabulary and the cost of each pass (notebook 3).

Sections 3.2-3.3 of the paper: PMLM computes the autoencoding (AE) loss and every step of the
partially autoregressive (PAR) loss in one forward pass, where the straightforward way
(:mod:`pmlm.naive`) runs one pass for AE and one per factorization step. :func:`plot_pass_costs`
counts the tokens of each pass, both ways.

Choice: the notebook encodes text with :func:`word_vocabulary` / :func:`encode_words`, a word
vocabulary that depends on the text and this function alone (a WordPiece vocabulary also depends
on the trainer of ``tokenizers`` and its version), so that the notebook's checked outputs are the
same on every machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pmlm.viz.common import split_words


def word_vocabulary(texts: Sequence[str], size: int = 4000) -> dict[str, int]:
    """A deterministic lowercase word vocabulary: the special tokens, then words by count.

    The special tokens come first with the ids :mod:`pmlm.tokenizer` gives them (``[PAD]`` 0 ..
    ``[P]`` 5); ties in count are broken alphabetically. Pre-training uses a WordPiece tokenizer,
    whose pieces also depend on the trainer of ``tokenizers`` and its version; the method
    notebooks use this one so that their checked outputs are the same on every machine.
    """
    from pmlm.tokenizer import SPECIAL_TOKENS

    counts = Counter(w.lower() for t in texts for w in split_words(t))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: max(0, size - len(SPECIAL_TOKENS))]
    return {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + words)}


def encode_words(text: str, vocab: dict[str, int]) -> list[int]:
    """``[SOS] words [EOS]`` as ids of :func:`word_vocabulary`; unknown words become ``[UNK]``."""
    ids = [vocab.get(w.lower(), vocab["[UNK]"]) for w in split_words(text)]
    return [vocab["[SOS]"], *ids, vocab["[EOS]"]]


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
