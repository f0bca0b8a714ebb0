"""The autoencoding (AE) and partially autoregressive (PAR) losses (Eqs. 3-7, section 3.3).

* AE (Eq. 4): each masked token is predicted from the top-layer state at its ``[M]`` in the
  context, independently of the others: BERT's masked LM.
* PAR (Eq. 5): the tokens of step i are predicted from the states of the ``[P]`` of step i, which
  see the context and the originals of steps < i only (the attention mask enforces it).
* The total (Eq. 7) is the unweighted sum ``L = L_AE + L_PAR``.

Choice where the paper is silent (the official s2s-ft code does the same): each objective is the
*mean* cross entropy over its labelled tokens in the batch. A batch without labels for an objective
gives 0 for it. Ablations (Table 6) pick the objectives: ``"ae"`` (BERT), ``"par"``, ``"ae+par"``
(UniLMv2); the AR variants are ``"par"`` / ``"ae+par"`` with one token per step (the collator's
``factorization="token"``).

Besides ``loss``, ``ae`` and ``par`` the dict carries detached metrics: ``ae_acc``, ``par_acc``
(top-1 accuracy) and ``ae_tokens``, ``par_tokens`` (label counts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
OBJECTIVES = {"ae": ("ae",), "par": ("par",), "ae+par": ("ae", "par")}


def components(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean cross entropy, accuracy and count of the labelled rows; logits (..., V), labels (...)."""
    logits = logits.reshape(-1, logits.shape[-1])  # (..., V) -> (N, V)
    labels = labels.reshape(-1)  # (...) -> (N,)
    return grouped_components(logits, labels, {"labelled": labels != IGNORE_INDEX})["labelled"]


def grouped_components(logits: torch.Tensor, labels: torch.Tensor,
                       groups: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """:func:`components` of several groups of rows of one (N, V) logits matrix, without copying it.

    ``labels`` (N,), ``IGNORE_INDEX`` outside the groups; ``groups`` maps a name to an (N,) bool row
    selection. Each group's dict equals ``components(logits[rows], labels[rows])``
    (``tests/test_losses.py``).
    """
    ### BEGIN SOLUTION
    per_row = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")  # (N,)
    correct = logits.argmax(-1) == labels  # (N,)
    out = {}
    for name, rows in groups.items():
        count = rows.sum()
        denom = count.clamp(min=1)
        out[name] = {"loss": torch.where(rows, per_row, 0.0).sum() / denom,  # where: a NaN elsewhere stays out
                     "acc": ((correct & rows).sum().float() / denom).detach(), "count": count.detach()}
    ### END SOLUTION
    return out


def combine(parts: dict[str, dict[str, torch.Tensor]], objective: str) -> dict[str, torch.Tensor]:
    """The loss dict from the AE and PAR components: the sum of the objectives asked for."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    ### BEGIN SOLUTION
    out = {"loss": sum(parts[name]["loss"] for name in OBJECTIVES[objective])}
    ### END SOLUTION
    for name in ("ae", "par"):
        out[name] = parts[name]["loss"]
        out[f"{name}_acc"] = parts[name]["acc"]
        out[f"{name}_tokens"] = parts[name]["count"]
    return out


def pmlm_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor],
              objective: str = "ae+par") -> dict[str, torch.Tensor]:
    """``loss``, ``ae``, ``par`` (+ metrics) from full logits (B, L, V) and the batch labels (B, L)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    parts = {name: components(logits, batch[f"{name}_labels"]) for name in ("ae", "par")}
    return combine(parts, objective)
