"""The attention mask as a heat map, and the leaks it blocks (notebook 2).

Section 3.2 of the paper (Figs. 4-5): a ``[P]`` must not see the copy of its own original (the
explicit leak), nor an original of a later step, nor, through a chain of layers, anything that
has seen one (the implicit leak ``[P] -> context -> original``). In every plot here a row is a
*query*, a column a *key*, and a filled cell means the query may attend to the key (``True``, as
everywhere in this package).

* :func:`mask_to_text` and :func:`plot_attention_mask`: the (L, L) mask as text and as a heat map,
  with the context / appended boundary and the step groups (:func:`step_groups`) marked;
* :func:`reachable`: the mask composed over layers; the PMLM mask is closed under it;
* :func:`leak_cells` and :func:`plot_leak_paths`: the cells the mask must block, drawn on the mask
  for one ``[P]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def mask_to_text(mask: torch.Tensor, labels: Sequence[str]) -> str:
    """The 0/1 matrix as text, rows = queries, columns = keys."""
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
