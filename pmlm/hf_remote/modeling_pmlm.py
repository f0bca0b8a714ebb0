"""PMLM (UniLMv2's pseudo-masked language model) for Hugging Face transformers, standalone.

Written into a directory by ``pmlm.export_hf``; ``transformers.AutoModelForMaskedLM.from_pretrained(
dir, trust_remote_code=True)`` loads it without the ``pmlm`` package. The module names and weights
are those of ``pmlm.PMLMModel`` (the same ``model.safetensors``), and the forward is the same
computation: token + position + segment embeddings, LayerNorm; post-LN (or pre-LN) layers with a
fused q/k/v projection and a T5 relative position bias shared by all layers; BERT's MLM head with
the softmax tied to the token embeddings.

Inputs as for BERT: ``input_ids`` (B, L), ``attention_mask`` (B, L) with 1 for tokens and 0 for
padding; also (B, L, L), True/1 = query row may attend key column, for a pseudo-masked layout;
``token_type_ids`` and ``position_ids`` (B, L), the latter 0..L-1 by default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

FIELDS = {"vocab_size": 8192, "hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 1024,
          "max_positions": 512, "type_vocab_size": 2, "rel_pos_buckets": 32, "max_rel_distance": 128,
          "layer_norm_eps": 1e-12, "norm": "post"}


class PMLMHFConfig(PretrainedConfig):
    model_type = "pmlm"

    def __init__(self, **kwargs):
        for name, default in FIELDS.items():
            setattr(self, name, kwargs.pop(name, default))
        super().__init__(**kwargs)


def relative_position_bucket(relative_position, num_buckets, max_distance):
    """T5's bidirectional buckets of key position - query position (as pmlm.relpos)."""
    ### BEGIN SOLUTION
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half
    distance = relative_position.abs()
    exact = half // 2
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)
    ### END SOLUTION


class RelativePositionBias(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_buckets, self.max_distance = config.rel_pos_buckets, config.max_rel_distance
        self.table = nn.Embedding(config.rel_pos_buckets, config.num_heads)

    def forward(self, position_ids):
        rel = position_ids.unsqueeze(1) - position_ids.unsqueeze(2)  # (B, L, L): key - query
        buckets = relative_position_bucket(rel, self.num_buckets, self.max_distance)
        return self.table(buckets).permute(0, 3, 1, 2)  # (B, L, L, h) -> (B, h, L, L)


class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.h = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x, bias):
        B, L, H = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.h, H // self.h).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, h, L, d)
        return self.out(y.transpose(1, 2).reshape(B, L, H))


class Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = SelfAttention(config)
        self.ln1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size), nn.GELU(),
                                 nn.Linear(config.intermediate_size, config.hidden_size))
        self.ln2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pre_norm = config.norm == "pre"

    def forward(self, x, bias):
        if self.pre_norm:
            x = x + self.attention(self.ln1(x), bias)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attention(x, bias))
        return self.ln2(x + self.ffn(x))


class MLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.GELU(),
                                       nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps))
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))


class PMLMForMaskedLM(PreTrainedModel):
    config_class = PMLMHFConfig
    base_model_prefix = "pmlm"

    def __init__(self, config):
        super().__init__(config)
        H = config.hidden_size
        self.token_embedding = nn.Embedding(config.vocab_size, H)
        self.position_embedding = nn.Embedding(config.max_positions, H)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, H)
        self.embedding_ln = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.rel_bias = RelativePositionBias(config) if config.rel_pos_buckets else None
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        self.final_ln = nn.LayerNorm(H, eps=config.layer_norm_eps) if config.norm == "pre" else nn.Identity()
        self.head = MLMHead(config)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.token_embedding

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                **kwargs):
        B, L = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(L, device=input_ids.device).expand(B, L)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        allowed = attention_mask.bool()
        if allowed.dim() == 2:  # padding mask: every token may attend every real token
            allowed = allowed.unsqueeze(1).expand(B, L, L)
        allowed = allowed | torch.eye(L, dtype=torch.bool, device=input_ids.device)  # no empty row
        x = self.embedding_ln(self.token_embedding(input_ids) + self.position_embedding(position_ids)
                              + self.segment_embedding(token_type_ids))
        bias = torch.zeros(B, 1, L, L, dtype=x.dtype, device=x.device)
        if self.rel_bias is not None:
            bias = self.rel_bias(position_ids).to(x.dtype)
        bias = bias.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        for layer in self.layers:
            x = layer(x, bias)
        x = self.final_ln(x)
        logits = F.linear(self.head.transform(x), self.token_embedding.weight, self.head.bias)  # (B, L, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels.view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)
