"""T5-style bidirectional relative position bias, computed from the position ids (section 4.1).

UniLMv2 adds to every attention score a learned scalar per head that depends on the *bucketed*
distance between the query's and the key's position ids. Because pseudo masks reuse positions, a
``[P]`` and the original it stands for are at distance 0, exactly like the ``[M]`` at that place.

Buckets (T5, ``relative_position_bucket``): half of the buckets for keys after the query, half for
keys before it; within each half the first ``num_buckets / 4`` distances get a bucket each, larger
distances share logarithmically wider buckets up to ``max_distance``, and beyond that the last one.

Choice (as in the official s2s-ft code): one bias table shared by all layers, so the bias is
computed once per batch and reused in every layer (:meth:`pmlm.PMLMModel.sdpa_mask`: the
(B, h, L, L) bias, or only its two live blocks when the context rows attend the context alone).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """Bucket index in [0, num_buckets) for each signed distance key_pos - query_pos."""
    ### BEGIN SOLUTION
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half  # keys to the right use the upper half
    distance = relative_position.abs()
    exact = half // 2
    # log-spaced buckets for exact <= distance < max_distance; clamp(min=1) keeps log finite
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = exact + (log_ratio * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)
    ### END SOLUTION


class RelativePositionBias(nn.Module):
    """A learned (num_buckets, h) table; ``forward(position_ids)`` gives the (B, h, L, L) bias.

    Computed in two steps, which is cheaper than bucketing all B L L pairs (the result is the
    same): the bias of every signed distance -D..D, with D = ``max_distance`` (farther ones share
    the last bucket, so clamping to D changes nothing), as an (h, 2 D + 1) table; then one lookup
    per (query, key) pair. The gradient flows back through both lookups to the table.
    """

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.table = nn.Embedding(num_buckets, num_heads)
        # bucket of each signed distance -D..D, a constant (not saved in checkpoints)
        distances = torch.arange(-max_distance, max_distance + 1)  # (2 D + 1,)
        self.register_buffer("distance_buckets", relative_position_bucket(distances, num_buckets, max_distance),
                             persistent=False)

    def forward(self, position_ids: torch.Tensor, key_position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Bias (B, h, Lq, Lk) for queries at ``position_ids`` (B, Lq) and keys at ``key_position_ids``
        (B, Lk), by default the same tokens (then Lq = Lk = L)."""
        keys = position_ids if key_position_ids is None else key_position_ids
        D = self.max_distance
        rel = keys.unsqueeze(1) - position_ids.unsqueeze(2)  # (B, Lq, Lk): key pos - query pos
        rel = rel.clamp(-D, D) + D  # (B, Lq, Lk): index of the distance in -D..D
        per_distance = self.table(self.distance_buckets).t()  # (2 D + 1, h) -> (h, 2 D + 1)
        return per_distance[:, rel].transpose(0, 1)  # (h, B, Lq, Lk) -> (B, h, Lq, Lk)
