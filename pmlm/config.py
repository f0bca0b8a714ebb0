"""Model configuration and named presets.

The paper's BASE model (section 4.1, Table 7) is a 12-layer BERT-style encoder with hidden size
768, 12 heads, FFN 3072, a 30,522-entry uncased WordPiece vocabulary, 512 positions and a T5-style
relative position bias (max distance 128) shared by all layers. The presets below shrink it so that
a CPU (`tiny`) or one GPU (`small`) trains one in minutes; `base` is the paper's size and `large`
BERT-LARGE's (24 layers, hidden 1024, 16 heads, FFN 4096), the size of the released LARGE model.

Shape legend used across the package: B batch, n context length, L length with the appended
pseudo masks and original copies, H hidden size, V vocabulary size, h heads, d head size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass
class PMLMConfig:
    vocab_size: int = 8192  # a small WordPiece vocabulary trained on the bundled corpus; paper: 30,522
    hidden_size: int = 256  # H; paper BASE: 768
    num_layers: int = 4  # paper BASE: 12
    num_heads: int = 4  # h; head size H / h = 64 as in BERT
    intermediate_size: int = 1024  # FFN width, 4 H as in BERT
    max_positions: int = 512  # absolute position table; appended tokens reuse positions, so n <= this
    type_vocab_size: int = 2  # segments S1 and S2 of `[SOS] S1 [EOS] S2 [EOS]` (section 2.2)
    rel_pos_buckets: int = 32  # T5 bidirectional buckets; 0 switches the bias off (Table 6 row 2)
    max_rel_distance: int = 128  # distances beyond this share the last bucket (paper: 128)
    dropout: float = 0.1  # hidden dropout, paper value
    attention_dropout: float = 0.1  # dropout on attention probabilities, as in BERT
    layer_norm_eps: float = 1e-12  # BERT's value
    initializer_range: float = 0.02  # std of the normal init, BERT's value
    # "post": LayerNorm after each residual sum, as BERT and the paper; "pre": before each sublayer,
    # plus one after the last layer (pmlm.layers), an option for short runs at high learning rates
    norm: str = "post"
    # "sdpa" (torch's scaled_dot_product_attention) runs everywhere; "flex" (FlexAttention, CUDA
    # training) skips the blocks of the block-structured PMLM mask that are fully masked, but has no
    # attention dropout and no backward on the CPU (docs/performance.md).
    attention_backend: str = "sdpa"
    # SDPA only: the context rows (which see only context keys, section 3.2) attend the C x C context
    # block alone, and only the appended rows attend all L keys. Exact (tests/test_model.py); saves
    # about a fifth of the attention work at L = 1.3 n. False gives one dense (L, L) call, for checks.
    split_context_attention: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_positions", "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PMLMConfig.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.rel_pos_buckets < 0 or self.rel_pos_buckets % 2:
            raise ValueError(
                f"rel_pos_buckets must be 0 (no bias) or a positive even number, got {self.rel_pos_buckets}")
        if self.rel_pos_buckets and self.max_rel_distance <= self.rel_pos_buckets // 4:
            raise ValueError("max_rel_distance must exceed rel_pos_buckets // 4 (the exact-distance buckets)")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"PMLMConfig.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.norm not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' (BERT, the paper) or 'pre', got {self.norm!r}")
        if self.attention_backend not in ("sdpa", "flex"):
            raise ValueError(f"attention_backend must be 'sdpa' or 'flex', got {self.attention_backend!r}")
        if self.attention_backend == "flex" and self.attention_dropout:
            raise ValueError("attention_backend='flex' has no attention dropout: set attention_dropout=0.0 "
                             f"(got {self.attention_dropout}) or use attention_backend='sdpa'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PMLMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PMLMConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> "PMLMConfig":
        """A named size (`tiny`, `small`, `base`, `large`) with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, PMLMConfig] = {
    # CPU and CI: the `tiny` pre-training preset trains it in a few minutes on 2 cores, far enough
    # to leave the unigram plateau (docs/training.md).
    "tiny": PMLMConfig(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512,
                       max_positions=128, dropout=0.1, attention_dropout=0.0),
    # One GPU, minutes: the size of the performance targets (4 layers, 256 hidden, 4 heads).
    "small": PMLMConfig(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024,
                        max_positions=256),
    # The paper's BASE model (section 4.1), for reference; needs the paper's compute.
    "base": PMLMConfig(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                       intermediate_size=3072, max_positions=512),
    # BERT-LARGE's size (FFN 4 H = 4096), as microsoft/unilm released unilm2-large-uncased
    # ("24-layer, 1024-hidden, 16-heads, 340M parameters", s2s-ft README); the paper's section 4.1
    # describes BASE only.
    "large": PMLMConfig(vocab_size=30522, hidden_size=1024, num_layers=24, num_heads=16,
                        intermediate_size=4096, max_positions=512),
}
