"""The transformer's parts: self-attention, one layer (post- or pre-LayerNorm) and the MLM head.

Section 4.1: UniLMv2 BASE is a BERT encoder, so a layer is post-LN (``x = LN(x + Attn(x))``,
``x = LN(x + FFN(x))``) with GELU, and the output layer is BERT's MLM head with the softmax tied to
the token embeddings (Eqs. 4-5).

Choice where the paper is silent: ``PMLMConfig.norm="pre"`` gives the pre-LN layer
(``x = x + Attn(LN(x))``, ``x = x + FFN(LN(x))``, one more LayerNorm after the last layer, added by
:class:`pmlm.PMLMModel`), which tolerates larger learning rates in short runs; ``"post"``, the
paper's and BERT's, is the default (``docs/training.md`` has the measured comparison).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pmlm.config import PMLMConfig
from pmlm.kernels import ContextSplit, FlexInputs
from pmlm.rows import gather_rows


class SelfAttention(nn.Module):
    def __init__(self, config: PMLMConfig) -> None:
        super().__init__()
        self.h = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, attn_mask: "torch.Tensor | FlexInputs",
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention output (B, L, H); with ``rows`` (B, R) only for those query rows, (B, R, H).

        ``attn_mask`` is SDPA's mask over (queries, keys): (B, 1|h, L or R, L), bool or the float
        bias; or :class:`ContextSplit` (all L rows) or :class:`FlexInputs`. Keys and values always
        come from all L rows.
        """
        B, L, H = x.shape
        h, d = self.h, H // self.h
        # heads first and contiguous, in one copy: SDPA's math kernel (the CPU's, with dropout) would
        # otherwise copy each of q, k and v (and each slice that ContextSplit takes) by itself
        if rows is None:
            qkv = self.qkv(x).view(B, L, 3, h, d)  # (B, L, 3H) -> (B, L, 3, h, d)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # 3 x (B, h, L, d)
        else:  # queries of the R rows only: split the fused projection into its q and kv parts
            w_q, w_kv = self.qkv.weight.split([H, 2 * H])  # (H, H), (2H, H)
            b_q, b_kv = self.qkv.bias.split([H, 2 * H])
            kv = F.linear(x, w_kv, b_kv).view(B, L, 2, h, d)  # (B, L, 2H) -> (B, L, 2, h, d)
            k, v = kv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # 2 x (B, h, L, d)
            q = F.linear(gather_rows(x, rows), w_q, b_q)  # (B, R, H)
            q = q.view(B, -1, h, d).transpose(1, 2).contiguous()  # (B, R, H) -> (B, h, R, d)
        dropout_p = self.attention_dropout if self.training else 0.0
        if isinstance(attn_mask, FlexInputs):
            y = attn_mask.attend(q, k, v)  # (B, h, L or R, d); no attention dropout (see PMLMConfig)
        elif isinstance(attn_mask, ContextSplit):
            y = attn_mask.attend(q, k, v, dropout_p)  # (B, h, L, d)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, q.shape[2], H)  # (B, h, L or R, d) -> (B, L or R, H)
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
    """One transformer layer: post-LN (BERT, the default) or pre-LN (``PMLMConfig.norm``)."""

    def __init__(self, config: PMLMConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.ln1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size), nn.GELU(),
                                 nn.Linear(config.intermediate_size, config.hidden_size))
        self.ln2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_norm = config.norm == "pre"

    def forward(self, x: torch.Tensor, attn_mask: "torch.Tensor | FlexInputs",
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, H) -> (B, L, H); with ``rows`` (B, R) only those rows' outputs, (B, R, H).

        Everything after attention works row by row, so the R rows need the keys and values of all
        L rows but nothing else: the top layer of the fast loss path computes only labelled rows.
        """
        y = x if rows is None else gather_rows(x, rows)  # (B, L or R, H) residual stream
        if self.pre_norm:
            y = y + self.dropout(self.attention(self.ln1(x), attn_mask, rows))
            return y + self.dropout(self.ffn(self.ln2(y)))
        y = self.ln1(y + self.dropout(self.attention(x, attn_mask, rows)))
        return self.ln2(y + self.dropout(self.ffn(y)))

    def step(self, x: torch.Tensor, attn_mask: torch.Tensor,
             past: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` for T new tokens over a key/value cache; also returns their own (k, v)."""
        if self.pre_norm:
            a, kv = self.attention.step(self.ln1(x), attn_mask, past)
            x = x + self.dropout(a)
            return x + self.dropout(self.ffn(self.ln2(x))), kv
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
