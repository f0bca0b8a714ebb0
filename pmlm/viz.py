"""Pictures of the method: attention masks as labelled heat maps, layouts as tables, loss curves.

Every plot here is what a reader should look at while reading the paper's section 3.2: rows are
*queries*, columns are *keys*, and a filled cell means the query may attend to the key (True in
every mask of this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ROLE_NAMES = {0: "context", -1: "[P]", 1: "original"}


def token_labels(example, id_to_token=None) -> list[str]:
    """Axis labels for an example: token text and its (0-based) position, e.g. ``[P]@3``."""
    labels = []
    for tok, pos in zip(example.input_ids.tolist(), example.position_ids.tolist()):
        text = id_to_token(tok) if id_to_token is not None else str(tok)
        labels.append(f"{text}@{pos}")
    return labels


def plot_attention_mask(mask: torch.Tensor, labels: Sequence[str] | None = None, *, ax=None,
                        title: str | None = None, step_ids: torch.Tensor | None = None):
    """Heat map of an (L, L) bool mask: row = query, column = key, dark = may attend.

    With ``step_ids`` the context / appended boundary and each step's group are outlined.
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
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if step_ids is not None:
        n = int((torch.as_tensor(step_ids) == 0).sum())
        for edge in (n - 0.5,):
            ax.axhline(edge, color="crimson", lw=1.2)
            ax.axvline(edge, color="crimson", lw=1.2)
    ax.set_title(title or "attention mask (row may attend column)")
    return ax
