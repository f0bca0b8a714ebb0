"""The key/value cache of incremental decoding (section 3.4, pseudo-mask generation as in s2s-ft)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Per-layer keys and values of tokens already encoded, for incremental decoding.

    ``keys[l]`` and ``values[l]`` are (B, h, P, d) for layer l; ``position_ids`` (B, P) are the
    cached tokens' position ids, which the relative position bias of later queries needs.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    position_ids: torch.Tensor  # (B, P)

    @property
    def length(self) -> int:
        return int(self.position_ids.shape[1])  # P

    def select(self, index: torch.Tensor | slice) -> "KVCache":
        """The cached tokens ``index`` along P (e.g. keep a step's real token, drop its [P])."""
        return KVCache([k[:, :, index] for k in self.keys], [v[:, :, index] for v in self.values],
                       self.position_ids[:, index])

    def extend(self, other: "KVCache") -> "KVCache":
        """This cache followed by ``other`` along P."""
        cat = lambda a, b: [torch.cat([x, y], 2) for x, y in zip(a, b)]  # noqa: E731
        return KVCache(cat(self.keys, other.keys), cat(self.values, other.values),
                       torch.cat([self.position_ids, other.position_ids], 1))

    def reorder(self, rows: torch.Tensor) -> "KVCache":
        """Rows ``rows`` of the batch (beam search: each surviving hypothesis takes its parent's cache)."""
        return KVCache([k[rows] for k in self.keys], [v[rows] for v in self.values], self.position_ids[rows])
