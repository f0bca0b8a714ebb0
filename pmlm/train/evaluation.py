"""Validation: AE and PAR loss and accuracy on fixed batches (the numbers of a Table 6 row).

Choices where the paper is silent, and why:

* Validation always lays out AE *and* PAR (the context half is BERT's masked LM whatever is
  appended, see :mod:`pmlm.attention`), so every Table 6 row reports both AE and PAR numbers; it
  uses a fixed set of examples and fixed masks (the loop builds the batches once, with a seeded
  generator), so successive evaluations are comparable.
* Loss and accuracy are means over tokens, not over batches: a batch with few masked tokens
  counts for few.
"""

from __future__ import annotations

import torch

from pmlm.model import PMLMModel
from pmlm.train.batches import to_device


@torch.no_grad()
def evaluate(model: PMLMModel, batches: list[dict[str, torch.Tensor]], device: torch.device,
             autocast: bool) -> dict[str, float]:
    """Token-weighted AE and PAR loss and accuracy over fixed validation batches."""
    was_training = model.training
    model.eval()
    sums = {k: 0.0 for k in ("ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens")}
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model.loss(to_device(batch, device), objective="ae+par")
        for name in ("ae", "par"):
            n = float(out[f"{name}_tokens"])
            sums[name] += float(out[name]) * n
            sums[f"{name}_acc"] += float(out[f"{name}_acc"]) * n
            sums[f"{name}_tokens"] += n
    model.train(was_training)
    out = {}
    for name in ("ae", "par"):
        n = max(sums[f"{name}_tokens"], 1.0)
        out[f"val_{name}_loss"] = sums[name] / n
        out[f"val_{name}_acc"] = sums[f"{name}_acc"] / n
    return out
