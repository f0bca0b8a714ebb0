"""What every picture of :mod:`pmlm.viz` shares: display words, step colours, PNG bytes.

The paper numbers the blocks of a factorization order 1, 2, ... (section 3.1.2, Algorithm 1) and
lays out a ``[P]`` and an original copy per token of each step (section 3.2); every plot here gives
step i the same colour (:func:`step_color`), so that a block in a sentence and its rows in a mask
read as one thing. :data:`ROLE_NAMES` names the signed step ids of :mod:`pmlm.attention` by sign;
``[M]`` and ``[P]`` are the display strings of the two masks.

Choice where the paper is silent: the pictures split text into words and punctuation
(:func:`split_words`) rather than WordPiece tokens, because a word is easier to read and Algorithm 1
is the same on any token sequence. :func:`figure_png` turns a figure into the PNG bytes a widget
shows, so that widgets need no ``Output`` capture.
"""

from __future__ import annotations

import io
import re

ROLE_NAMES = {0: "context", -1: "[P]", 1: "original"}
MASK_TOKEN, PSEUDO_TOKEN = "[M]", "[P]"


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


def figure_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a figure, closed afterwards (for ``ipywidgets.Image``)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
