"""The classifier of classification fine-tuning (section 3.4): a PMLM backbone and a head on its
top-layer state of ``[SOS]`` (or the mean of the real tokens' states)::

    logits = W2 tanh(W1 dropout(h_[SOS]))        h_[SOS]: (B, H), logits: (B, C)

Its own module, so that training it (:mod:`pmlm.finetune.classify`) and saving and loading it
(:mod:`pmlm.finetune.saved`) both import it and not each other.

Choice where the paper is silent (ours): the head is BERT's pooler (dense + tanh, freshly
initialised, since PMLM pre-training has no sentence-level task) and a linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from pmlm.attention import pmlm_attention_mask
from pmlm.model import PMLMModel

POOLINGS = ("sos", "mean")


class PMLMClassifier(nn.Module):
    """A :class:`PMLMModel` backbone with a classifier on the top ``[SOS]`` state."""

    def __init__(self, backbone: PMLMModel, num_classes: int, dropout: float = 0.1, pooling: str = "sos") -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        H = backbone.config.hidden_size
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(H, H), nn.Tanh(), nn.Dropout(dropout),
                                  nn.Linear(H, num_classes))
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=backbone.config.initializer_range)
                nn.init.zeros_(m.bias)

    def forward(self, input_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """input_ids, valid: (B, L), ``[SOS]`` first; returns logits (B, C)."""
        B, L = input_ids.shape
        position_ids = torch.arange(L, device=input_ids.device).expand(B, L)  # (B, L)
        mask = pmlm_attention_mask(torch.zeros_like(input_ids), valid)  # (B, L, L): all context
        hidden = self.backbone.encode(input_ids, position_ids, mask)  # (B, L, H)
        if self.pooling == "sos":
            return self.head(hidden[:, 0])  # the [SOS] state (B, H) -> (B, C)
        weights = valid.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1): 1 on real tokens
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        return self.head(pooled)  # (B, C)
