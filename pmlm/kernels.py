"""Attention paths for the PMLM mask: the context split for SDPA and FlexAttention's inputs.

Section 3.2: the context rows of a PMLM example never attend an appended token, and later
factorization steps are hidden from earlier ones; the (L, L) mask is therefore block-structured.
Two ways to skip the blocks it blanks out, both exact (``tests/test_model.py``,
``tests/test_backends.py``):

* :class:`ContextSplit` (SDPA, every device): the C x C context block and the L - C appended rows
  over all L keys, as two SDPA calls;
* :class:`FlexInputs` (FlexAttention, compiled on CUDA): a block mask built from the step ids by the
  rule itself (:func:`flex_rule`, :func:`pmlm.attention.may_attend`), the relative bias added in a
  ``score_mod``. FlexAttention has no backward on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pmlm.attention import may_attend


def flex_rule(attention_mask: torch.Tensor, step_ids: torch.Tensor | None = None,
              valid: torch.Tensor | None = None) -> Callable:
    """``allowed(b, q, k)``, may query q of example b attend key k, for FlexAttention's ``mask_mod``.

    From the step ids (and ``valid``, False at padding) when given: the rule table itself
    (:func:`pmlm.attention.may_attend`), padding attending itself only, as in
    :func:`pmlm.pmlm_attention_mask`. Otherwise read off the (B, L, L) bool ``attention_mask``.
    """
    if step_ids is None:
        return lambda b, q, k: attention_mask[b, q, k]
    if valid is None:
        valid = torch.ones_like(step_ids, dtype=torch.bool)

    def allowed(b, q, k):
        vq, vk = valid[b, q], valid[b, k]
        return (may_attend(step_ids[b, q], step_ids[b, k]) & vq & vk) | (~vq & (q == k))

    return allowed


@dataclass
class ContextSplit:
    """SDPA masks for a batch whose first C rows may attend only the first C keys.

    In a PMLM batch the first C positions are the context, and context rows never see an appended
    token (section 3.2): the (L, L) mask is zero in its top-right (C, L - C) block. Attention then
    splits exactly into the C x C context block (BERT's masked LM) and the L - C appended rows over
    all L keys, which skips the C (L - C) query-key pairs that the mask blanks out; at L = 1.3 n that
    is about a fifth of the scores, softmax and attention-dropout work. :meth:`PMLMModel.sdpa_mask`
    builds it only after checking the blank block on the mask itself.
    """

    size: int  # C
    context: torch.Tensor  # (B, 1|h, C, C): bool, or float bias with -inf where the mask is False
    appended: torch.Tensor  # (B, 1|h, L - C, L)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
        """q, k, v (B, h, L, d) -> (B, h, L, d), equal to one SDPA call under the full mask.

        The result is a transposed view of a contiguous (B, L, h, d) tensor, so that the caller's
        merge of the heads needs no further copy.
        """
        C = self.size
        q_context, q_appended = q.split([C, q.shape[2] - C], dim=2)  # (B, h, C, d), (B, h, L - C, d)
        top = F.scaled_dot_product_attention(q_context, k[:, :, :C], v[:, :, :C],
                                             attn_mask=self.context, dropout_p=dropout_p)  # (B, h, C, d)
        rest = F.scaled_dot_product_attention(q_appended, k, v, attn_mask=self.appended,
                                              dropout_p=dropout_p)  # (B, h, L - C, d)
        return torch.cat([top.transpose(1, 2), rest.transpose(1, 2)], dim=1).transpose(1, 2)  # (B, h, L, d)


@dataclass
class FlexInputs:
    """FlexAttention's stand-in for a dense mask: a block mask and a ``score_mod`` adding the bias."""

    block_mask: object  # torch.nn.attention.flex_attention.BlockMask over (queries, keys)
    score_mod: Callable | None  # adds the relative position bias; None without it
    function: Callable  # flex_attention, compiled on CUDA

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.function(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask)


_COMPILED_FLEX: Callable | None = None


def flex_attention_function(device: torch.device) -> Callable:
    """FlexAttention, imported lazily: compiled (fused kernels) on CUDA, eager elsewhere."""
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention
    if device.type != "cuda":
        return flex_attention  # unfused reference; the CPU has no FlexAttention backward
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention)
    return _COMPILED_FLEX
