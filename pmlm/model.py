"""The PMLM transformer: a BERT-style encoder with relative position bias (sections 2.2, 4.1).

Embeddings are token + learned absolute position + segment (section 2.2), then LayerNorm and
dropout; the position is the *reused* position id, so ``[M]``, ``[P]`` and the original copy of a
token all embed its place in the text. Each layer (:mod:`pmlm.layers`) is post-LayerNorm
self-attention and a GELU FFN, as in BERT, which UniLMv2 initialises from (pre-LN is an option,
``PMLMConfig.norm``). Attention goes through
``torch.nn.functional.scaled_dot_product_attention`` with the PMLM mask (True = may attend) folded
into the relative position bias. The output layer is BERT's MLM head with the softmax weights tied
to the token embeddings (Eqs. 4-5).

Two ways to get the losses, which agree (``tests/test_model.py``):

* ``pmlm_loss(model(input_ids, position_ids, attention_mask), batch)`` projects every row;
* ``model.loss(batch, objective=...)``, the fast path that training uses, does only the work the
  loss needs: the top layer computes only the rows that carry a label (about 2 m of L rows; its
  keys and values still come from every row), only those rows are projected to the vocabulary,
  and the relative position bias, with the mask folded in, is computed once per batch for all
  layers. The collator already drops the last step's original copies, which nobody attends.

With SDPA, the context rows attend the C x C context block only and the appended rows all L keys
(:class:`pmlm.kernels.ContextSplit`, ``PMLMConfig.split_context_attention``): context rows never see an appended
token, so the query-key pairs skipped are exactly those the mask blanks out.

Attention backends (``PMLMConfig.attention_backend``): ``"sdpa"`` everywhere; ``"flex"``
(FlexAttention, compiled on CUDA) builds a block mask from the step ids with the same rule
(:func:`pmlm.attention.may_attend`), so it skips the blocks that the PMLM mask blanks out (context
rows x appended columns, later steps), and adds the relative bias in a ``score_mod``. FlexAttention
has no backward on the CPU: there ``"flex"`` runs only without gradients (a forward check).

Incremental decoding (fine-tuned seq2seq, :mod:`pmlm.finetune.decoding`): ``encode_step`` encodes T
new tokens against a :class:`pmlm.kvcache.KVCache` of earlier tokens' per-layer keys and values, with the
relative bias computed from the position ids of the new queries and all keys; it always uses SDPA.

Choices where the paper is silent: attention dropout is a separate knob (CPU SDPA takes a slower
kernel with dropout); with ``rel_pos_buckets=0`` (Table 6 row 2) the boolean mask goes to SDPA as it
is, without a float bias. A learned bias that needs a gradient keeps CPU SDPA on its math kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pmlm.config import PMLMConfig
from pmlm.kernels import ContextSplit, FlexInputs, flex_attention_function, flex_rule
from pmlm.kvcache import KVCache
from pmlm.layers import Layer, MLMHead, SelfAttention
from pmlm.losses import combine, grouped_components
from pmlm.model_files import load_weights, read_config, read_weights, save_model_files
from pmlm.relpos import RelativePositionBias, relative_position_bucket
from pmlm.rows import gather_rows, row_index

__all__ = ["ContextSplit", "FlexInputs", "KVCache", "Layer", "MLMHead", "PMLMModel", "SelfAttention",
           "gather_rows", "row_index"]


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
        # pre-LN layers leave the residual stream unnormalised: one LayerNorm after the last layer
        self.final_ln = nn.LayerNorm(H, eps=config.layer_norm_eps) if config.norm == "pre" else nn.Identity()
        self.head = MLMHead(config, self.token_embedding)
        self.apply(self._init_weights)

    def save_pretrained(self, directory, *, tokenizer=None, training: dict | None = None,
                        dtype: torch.dtype | None = None, files: dict[str, str] | None = None):
        """Write ``config.json`` and ``model.safetensors`` (and the tokenizer, ``training.json`` and
        ``files`` when given) to ``directory``; see :mod:`pmlm.model_files`. Returns the directory."""
        return save_model_files(self, directory, tokenizer=tokenizer, training=training, dtype=dtype,
                                files=files)

    @classmethod
    def from_pretrained(cls, directory) -> "PMLMModel":
        """The model saved by :meth:`save_pretrained` in ``directory``, in eval mode, float32.

        A missing or corrupt file, or a config that does not fit the weights, is a clear
        ``ValueError``; :func:`pmlm.load_model` also loads the tokenizer and checks its vocabulary.
        """
        model = cls(read_config(directory))
        load_weights(model, read_weights(directory), str(directory))
        return model.eval()

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
                       dtype: torch.dtype, key_position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The mask SDPA gets: bool (B, 1, Lq, Lk), or the float bias with -inf where it is False.

        ``attention_mask`` (B, Lq, Lk) for queries at ``position_ids`` (B, Lq) and keys at
        ``key_position_ids`` (B, Lk), by default the same tokens.
        """
        mask = attention_mask.unsqueeze(1)  # (B, Lq, Lk) -> (B, 1, Lq, Lk), broadcast over heads
        if self.rel_bias is None:
            return mask
        bias = self.rel_bias(position_ids, key_position_ids).to(dtype)  # (B, h, Lq, Lk)
        return bias.masked_fill(~mask, float("-inf"))

    def context_size(self, attention_mask: torch.Tensor, step_ids: torch.Tensor | None,
                     valid: torch.Tensor | None) -> int | None:
        """C for :class:`ContextSplit`, or None when one dense call is needed.

        C is the longest context in the batch (step id 0, not padding; the collators put the context
        first). The split is used only if the mask itself shows that no row before C may attend a key
        from C on, so it is exact for any batch; without step ids, or with nothing appended (MLM,
        L = C), there is nothing to split.
        """
        if not self.config.split_context_attention or step_ids is None:
            return None
        context = step_ids == 0 if valid is None else (step_ids == 0) & valid  # (B, L)
        C, L = int(context.sum(1).max()), attention_mask.shape[-1]
        if C == 0 or C >= L or bool(attention_mask[:, :C, C:].any()):
            return None
        return C

    def sdpa_mask(self, position_ids: torch.Tensor, attention_mask: torch.Tensor, dtype: torch.dtype,
                  step_ids: torch.Tensor | None = None,
                  valid: torch.Tensor | None = None) -> "torch.Tensor | ContextSplit":
        """What every layer's SDPA gets, once per batch: the dense mask, or its two live blocks."""
        C = self.context_size(attention_mask, step_ids, valid)
        if C is None:
            return self.attention_bias(position_ids, attention_mask, dtype)  # (B, 1|h, L, L)
        return ContextSplit(
            C, self.attention_bias(position_ids[:, :C], attention_mask[:, :C, :C], dtype),  # (B, 1|h, C, C)
            self.attention_bias(position_ids[:, C:], attention_mask[:, C:], dtype,
                                key_position_ids=position_ids))  # (B, 1|h, L - C, L)

    def flex_inputs(self, position_ids: torch.Tensor, allowed: Callable,
                    queries: torch.Tensor | None = None) -> FlexInputs:
        """Block mask and bias for FlexAttention; ``allowed(b, q, k)`` says whether query q may attend key k.

        ``queries`` (B, R) long: the attention is computed for these query rows only (the top layer
        of the fast path); ``allowed`` and the bias always see true positions in the sequence.
        """
        from torch.nn.attention.flex_attention import create_block_mask
        B, L = position_ids.shape
        at = (lambda b, q: q) if queries is None else (lambda b, q: queries[b, q])  # noqa: E731
        R = L if queries is None else queries.shape[1]

        def mask_mod(b, h, q, k):
            return allowed(b, at(b, q), k)

        block_mask = create_block_mask(mask_mod, B, None, R, L, device=position_ids.device)
        score_mod = None
        if self.rel_bias is not None:
            D = self.rel_bias.max_distance
            per_distance = self.rel_bias.table(self.rel_bias.distance_buckets).t()  # (h, 2 D + 1)

            def add_bias(score, b, h, q, k):
                rel = (position_ids[b, k] - position_ids[b, at(b, q)]).clamp(-D, D) + D  # key - query
                return score + per_distance[h, rel].to(score.dtype)

            score_mod = add_bias
        return FlexInputs(block_mask, score_mod, flex_attention_function(position_ids.device))

    def encode(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None, *,
               rows: torch.Tensor | None = None, step_ids: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> torch.Tensor:
        """Top-layer hidden states (B, L, H); with ``rows`` (B, L) bool only those rows', (N, H).

        With ``rows``, the top layer computes the N selected rows only, in the order of
        ``hidden[rows]``. ``step_ids`` and ``valid`` (B, L), when given, let the ``"flex"`` backend
        build its block mask from the rule itself instead of reading ``attention_mask``.
        """
        self.check_inputs(input_ids, position_ids, attention_mask)
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        x = (self.token_embedding(input_ids) + self.position_embedding(position_ids)
             + self.segment_embedding(segment_ids))  # (B, L, H)
        x = self.dropout(self.embedding_ln(x))
        if self.config.attention_backend == "flex":
            if x.device.type == "cpu" and torch.is_grad_enabled():
                raise ValueError("attention_backend='flex' cannot train on the CPU: FlexAttention has no "
                                 "backward there; use attention_backend='sdpa' (or run under torch.no_grad())")
            allowed = flex_rule(attention_mask, step_ids, valid)
            attn_mask = self.flex_inputs(position_ids, allowed)
        else:
            attn_mask = self.sdpa_mask(position_ids, attention_mask, x.dtype, step_ids, valid)
        if rows is None:
            for layer in self.layers:
                x = layer(x, attn_mask)
            return self.final_ln(x)
        index, slot = row_index(rows)  # (B, R) positions of the selected rows, (B, R) real or padding
        for layer in self.layers[:-1]:
            x = layer(x, attn_mask)
        if isinstance(attn_mask, FlexInputs):
            top_mask = self.flex_inputs(position_ids, allowed, queries=index)
        else:  # the mask rows of the R queries and their bias against all L keys: (B, 1|h, R, L)
            L = x.shape[1]
            top_rows = attention_mask.gather(1, index.unsqueeze(2).expand(-1, -1, L))  # (B, R, L)
            top_mask = self.attention_bias(position_ids.gather(1, index), top_rows, x.dtype,
                                           key_position_ids=position_ids)
        x = self.layers[-1](x, top_mask, index)  # (B, R, H)
        return self.final_ln(x[slot])  # (N, H)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encode(input_ids, position_ids, attention_mask, segment_ids))  # (B, L, V)

    def encode_step(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                    attention_mask: torch.Tensor, segment_ids: torch.Tensor | None = None,
                    past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Incremental ``encode`` for decoding with a key/value cache (section 3.4; as in s2s-ft).

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
        return self.final_ln(x), KVCache(keys, values, position_ids)

    def labelled_logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Logits of the N rows that carry an AE or a PAR label, and what they are scored against.

        Returns ``logits`` (N, V), ``labels`` (N,), ``is_ae`` (N,) bool (False: a PAR row) and the
        (B, L) bool ``rows`` they were taken from, in the order of ``x[rows]``. The top layer and
        the vocabulary projection run on these rows only (``encode(..., rows=...)``); the layers
        below need every row as keys and values.
        """
        labelled = {name: batch[f"{name}_labels"] != -100 for name in ("ae", "par")}  # (B, L) bool each
        rows = labelled["ae"] | labelled["par"]  # (B, L): a token has at most one of the two labels
        hidden = self.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"],
                             batch.get("segment_ids"), rows=rows, step_ids=batch.get("step_ids"),
                             valid=batch.get("valid"))  # (N, H), in the order of x[rows]
        labels = torch.where(labelled["ae"], batch["ae_labels"], batch["par_labels"])[rows]  # (N,)
        return self.head(hidden), labels, labelled["ae"][rows], rows

    def loss(self, batch: dict[str, torch.Tensor], objective: str = "ae+par") -> dict[str, torch.Tensor]:
        """Same dict as ``pmlm_loss(self(...), batch, objective)``, computing only labelled rows.

        One projection of all N labelled rows (:meth:`labelled_logits`): the vocabulary matrix is
        read once and the two objectives' rows share each matrix product.
        """
        logits, labels, is_ae, _ = self.labelled_logits(batch)
        return combine(grouped_components(logits, labels, {"ae": is_ae, "par": ~is_ae}), objective)
