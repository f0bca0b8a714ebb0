"""The PMLM transformer: a BERT-style encoder with relative position bias (sections 2.2, 4.1).

Embeddings are token + learned absolute position + segment (section 2.2), then LayerNorm and
dropout; the position is the *reused* position id, so ``[M]``, ``[P]`` and the original copy of a
token all embed its place in the text. Each layer is post-LayerNorm self-attention and a GELU FFN,
as in BERT, which UniLMv2 initialises from. Attention goes through
``torch.nn.functional.scaled_dot_product_attention`` with the PMLM mask (True = may attend) folded
into the relative position bias. The output layer is BERT's MLM head with the softmax weights tied
to the token embeddings (Eqs. 4-5).

Two ways to get the losses, which agree (``tests/test_model.py``):

* ``pmlm_loss(model(input_ids, position_ids, attention_mask), batch)`` projects every row;
* ``model.loss(batch, objective=...)``, the fast path that training uses, projects to the
  vocabulary only the rows that carry a label (about 2 m of L rows), and computes the relative
  position bias once per batch for all layers.

Choices where the paper is silent: attention dropout is a separate knob (CPU SDPA takes a slower
kernel with dropout); with ``rel_pos_buckets=0`` (Table 6 row 2) the boolean mask goes to SDPA as it
is, without a float bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pmlm.config import PMLMConfig
from pmlm.losses import combine, components
from pmlm.relpos import RelativePositionBias, relative_position_bucket


class SelfAttention(nn.Module):
    def __init__(self, config: PMLMConfig) -> None:
        super().__init__()
        self.h = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, L, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=-1)  # 3 x (B, L, H)
        q, k, v = (t.view(B, L, self.h, H // self.h).transpose(1, 2) for t in (q, k, v))  # (B, h, L, d)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, L, H)  # (B, h, L, d) -> (B, L, H)
        return self.out(y)

    def step(self, x: torch.Tensor, attn_mask: torch.Tensor,
             past: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Incremental attention (decoding): T new tokens attend to P cached keys/values and to themselves.

        ``past`` is None or the cached (k, v), each (B, h, P, d); ``attn_mask`` is (B, 1|h, T, P + T)
        over the columns [cached tokens, new tokens]. Returns the output (B, T, H) and the new tokens'
        own (k, v), each (B, h, T, d), for the caller to cache.
        """
        B, T, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=-1)  # 3 x (B, T, H)
        q, k, v = (t.view(B, T, self.h, H // self.h).transpose(1, 2) for t in (q, k, v))  # (B, h, T, d)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        y = F.scaled_dot_product_attention(  # keys, values: (B, h, P + T, d)
            q, keys, values, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, H)), (k, v)  # (B, h, T, d) -> (B, T, H)


class Layer(nn.Module):
    """Post-LN transformer layer (BERT): x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: PMLMConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.ln1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size), nn.GELU(),
                                 nn.Linear(config.intermediate_size, config.hidden_size))
        self.ln2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.dropout(self.attention(x, attn_mask)))
        return self.ln2(x + self.dropout(self.ffn(x)))

    def step(self, x: torch.Tensor, attn_mask: torch.Tensor,
             past: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` for T new tokens over a key/value cache; also returns their own (k, v)."""
        a, kv = self.attention.step(x, attn_mask, past)
        x = self.ln1(x + self.dropout(a))
        return self.ln2(x + self.dropout(self.ffn(x))), kv


class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the tied embedding matrix and a bias."""

    def __init__(self, config: PMLMConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(),
                                       nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps))
        self.embedding = embedding  # tied softmax weights (V, H)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self.embedding.weight, self.bias)  # (..., V)


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


class PMLMModel(nn.Module):
    """``model(input_ids, position_ids, attention_mask)`` -> logits (B, L, V)."""

    def __init__(self, config: PMLMConfig) -> None:
        super().__init__()
        self.config = config
        H = config.hidden_size
        self.token_embedding = nn.Embedding(config.vocab_size, H)
        self.position_embedding = nn.Embedding(config.max_positions, H)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, H)
        self.embedding_ln = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.rel_bias = (RelativePositionBias(config.rel_pos_buckets, config.num_heads,
                                              config.max_rel_distance)
                         if config.rel_pos_buckets else None)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        self.head = MLMHead(config, self.token_embedding)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def check_inputs(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        B, L = input_ids.shape
        if position_ids.shape != input_ids.shape:
            raise ValueError(f"position_ids {tuple(position_ids.shape)} must match input_ids {(B, L)}")
        if attention_mask.shape != (B, L, L) or attention_mask.dtype != torch.bool:
            raise ValueError(f"attention_mask must be a (B, L, L) = {(B, L, L)} bool tensor "
                             f"(True = may attend), got {tuple(attention_mask.shape)} {attention_mask.dtype}")
        if L and int(position_ids.max()) >= self.config.max_positions:
            raise ValueError(f"position id {int(position_ids.max())} needs a sequence longer than "
                             f"max_positions={self.config.max_positions}; truncate the input or raise "
                             "PMLMConfig.max_positions")
        if L and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(f"input_ids hold ids outside [0, {self.config.vocab_size}); "
                             "the tokenizer and PMLMConfig.vocab_size disagree")

    def attention_bias(self, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                       dtype: torch.dtype) -> torch.Tensor:
        """The mask SDPA gets, once per batch: bool (B, 1, L, L), or the float bias with -inf."""
        mask = attention_mask.unsqueeze(1)  # (B, L, L) -> (B, 1, L, L), broadcast over heads
        if self.rel_bias is None:
            return mask
        bias = self.rel_bias(position_ids).to(dtype)  # (B, h, L, L)
        return bias.masked_fill(~mask, float("-inf"))

    def encode(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Top-layer hidden states (B, L, H)."""
        self.check_inputs(input_ids, position_ids, attention_mask)
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        x = (self.token_embedding(input_ids) + self.position_embedding(position_ids)
             + self.segment_embedding(segment_ids))  # (B, L, H)
        x = self.dropout(self.embedding_ln(x))
        attn_mask = self.attention_bias(position_ids, attention_mask, x.dtype)
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(input_ids, position_ids, attention_mask, segment_ids))  # (B, L, V)

    def encode_step(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                    attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None,
                    past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Incremental ``encode`` for decoding with a key/value cache (PMLM.md section 7).

        The T new tokens attend to the P cached tokens and to each other as ``attention_mask``
        says: (B, T, P + T) bool, True = may attend, columns [cached tokens, new tokens]. Cached
        tokens are never updated, which is exact whenever no cached token may attend a later one
        (true of the source and the real target tokens in seq2seq decoding). With ``past=None`` and
        a square mask this is ``encode``. Returns the top states (B, T, H) and a :class:`KVCache` of
        the new tokens only; the caller decides which of them to keep (``past.extend(new.select(i))``).
        The relative position bias of each new query is computed from the position ids of all keys.
        """
        if input_ids.dim() != 2 or position_ids.shape != input_ids.shape:
            raise ValueError(f"input_ids and position_ids must both be (B, T), got "
                             f"{tuple(input_ids.shape)} and {tuple(position_ids.shape)}")
        B, T = input_ids.shape
        P = 0 if past is None else past.length
        if attention_mask.shape != (B, T, P + T) or attention_mask.dtype != torch.bool:
            raise ValueError(f"attention_mask must be a (B, T, P + T) = {(B, T, P + T)} bool tensor "
                             f"(True = may attend), got {tuple(attention_mask.shape)} {attention_mask.dtype}")
        if int(position_ids.max()) >= self.config.max_positions:
            raise ValueError(f"position id {int(position_ids.max())} needs a sequence longer than "
                             f"max_positions={self.config.max_positions}")
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size:
            raise ValueError(f"input_ids hold ids outside [0, {self.config.vocab_size})")
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        x = (self.token_embedding(input_ids) + self.position_embedding(position_ids)
             + self.segment_embedding(segment_ids))  # (B, T, H)
        x = self.dropout(self.embedding_ln(x))
        mask = attention_mask.unsqueeze(1)  # (B, 1, T, P + T)
        if self.rel_bias is None:
            attn_mask = mask
        else:
            key_pos = position_ids if past is None else torch.cat([past.position_ids, position_ids], 1)
            rel = key_pos.unsqueeze(1) - position_ids.unsqueeze(2)  # (B, T, P + T): key pos - query pos
            buckets = relative_position_bucket(rel, self.rel_bias.num_buckets, self.rel_bias.max_distance)
            bias = self.rel_bias.table(buckets).permute(0, 3, 1, 2).to(x.dtype)  # (B, h, T, P + T)
            attn_mask = bias.masked_fill(~mask, float("-inf"))
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            x, (k, v) = layer.step(x, attn_mask, None if past is None else (past.keys[i], past.values[i]))
            keys.append(k)
            values.append(v)
        return x, KVCache(keys, values, position_ids)

    def loss(self, batch: dict[str, torch.Tensor], objective: str = "ae+par") -> dict[str, torch.Tensor]:
        """Same dict as ``pmlm_loss(self(...), batch, objective)``, projecting only labelled rows."""
        hidden = self.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"],
                             batch.get("segment_ids"))  # (B, L, H)
        out = {}
        for name in ("ae", "par"):
            labels = batch[f"{name}_labels"]  # (B, L)
            rows = labels != -100  # (B, L) bool
            logits = self.head(hidden[rows])  # (N, V): only the N labelled rows
            out[name] = components(logits, labels[rows])
        return combine(out, objective)

