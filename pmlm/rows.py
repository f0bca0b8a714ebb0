"""Row selection for the fast loss path: compute the top layer only for the rows that carry a label.

Everything after attention works row by row, so the top layer of ``model.loss`` needs the keys and
values of all L rows but the queries, residuals and FFN of the labelled rows only (about 2 m of L).
"""

from __future__ import annotations

import torch


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[b, rows[b, r]]`` for every b, r: (B, L, ...) and (B, R) long -> (B, R, ...)."""
    index = rows.view(*rows.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])  # (B, R, ...)
    return x.gather(1, index)


def row_index(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the True entries of ``rows`` (B, L) bool, per example, right-padded.

    Returns ``index`` (B, R) long, R = the most True entries of any example (at least 1), padded
    with 0; and ``slot`` (B, R) bool, False at padding. ``out[slot]`` lists the rows in the order of
    ``x[rows]`` (example by example, left to right). E.g. rows = [[0, 1, 0, 1], [1, 0, 0, 0]]
    gives index [[1, 3], [0, 0]] and slot [[True, True], [True, False]].
    """
    B, L = rows.shape
    counts = rows.sum(1)  # (B,)
    R = max(int(counts.max()) if B else 0, 1)
    order = torch.arange(L, device=rows.device).expand(B, L)  # (B, L)
    key = torch.where(rows, order, order + L)  # labelled rows sort first, each in its order
    index = key.argsort(dim=1)[:, :R]  # (B, R)
    slot = torch.arange(R, device=rows.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, R)
    return index.masked_fill(~slot, 0), slot
