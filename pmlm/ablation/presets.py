"""The variants of Table 6 and the presets of the miniature ablation (see :mod:`pmlm.ablation`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pmlm.finetune.classify import ClassifyConfig
from pmlm.finetune.decoding import DecodeConfig
from pmlm.finetune.seq2seq import Seq2SeqConfig

VARIANTS = {  # name: (objective, factorization, Table 6 row)
    "AE": ("ae", "block", "4"),
    "PAR": ("par", "block", "5"),
    "AE+PAR": ("ae+par", "block", "1-2"),
    "AR": ("par", "token", "6"),
    "AE+AR": ("ae+par", "token", "3"),
}
CONTROL = "none"
# (key, label, scale, higher is better): the figure's panels and the orderings under the table
METRICS = (("test_acc", "sentiment acc (%)", 100.0, True), ("bleu", "verses BLEU", 1.0, True),
           ("chrf", "verses chrF", 1.0, True), ("s2s_val_loss", "verses val loss", 1.0, False))


@dataclass
class AblationPreset:
    model: str = "tiny"  # PMLMConfig preset of every run
    model_overrides: dict = field(default_factory=dict)
    steps: int = 300  # pre-training steps, the same for every variant
    batch_size: int = 16
    max_length: int = 64  # tokens per pre-training example
    lr: float = 1e-3
    warmup_steps: int = 30
    max_documents: int | None = None  # pre-train on the first N (shuffled) documents only
    vocab_size: int = 8192
    seeds: tuple[int, ...] = (0, 1)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    seq2seq: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    device: str = "auto"


ABLATION_PRESETS = {
    # seconds: the tests and PMLM_SMOKE=1 / CI
    "micro": AblationPreset(model_overrides={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                             "intermediate_size": 64},
                            steps=4, batch_size=4, max_length=32, warmup_steps=1, max_documents=40,
                            vocab_size=2000, seeds=(0,),
                            classify=ClassifyConfig(epochs=1, max_steps=4, train_limit=64, eval_limit=32),
                            seq2seq=Seq2SeqConfig(max_steps=4, batch_size=8, train_limit=64, eval_limit=8,
                                                  max_source_len=40, max_target_len=40,
                                                  decode=DecodeConfig(beam_size=1, max_length=12))),
    # a CPU run of the whole pipeline, half an hour to an hour per seed on 2 cores: the tiny model (2 layers,
    # 128 hidden, no dropout) pre-trained 2,000 steps of 32 x 64 tokens (~4M tokens; the recipe study's
    # 5-minute runs leave the unigram plateau after ~1,000 steps and reach PAR ~2.5x unigram by ~2,000,
    # docs/training.md), the 8,192-piece vocabulary of the recipe; two epochs of sentiment (all ~10k
    # sentences, the learning rate the fine-tuning study chose for the pre-trained model) and 400 steps of
    # verse pairs that fit 40 tokens, greedy decoding of 150 test verses. Results are committed to
    # results/ablation-cpu.jsonl.
    "cpu": AblationPreset(model_overrides={"dropout": 0.0}, steps=2000, batch_size=32, max_length=64,
                          lr=3e-3, warmup_steps=100, max_documents=None, vocab_size=8192, seeds=(0, 1, 2),
                          classify=ClassifyConfig(lr=1e-3, epochs=2),
                          seq2seq=Seq2SeqConfig(lr=1e-3, max_steps=400, max_source_len=40, max_target_len=40,
                                                eval_limit=150, decode=DecodeConfig(beam_size=1, max_length=40))),
    # one GPU, estimated under an hour for 6 x 3 runs (not yet measured): the small model
    # (4 layers, 256 hidden), 1,200 steps of 64 x 128 tokens
    "gpu": AblationPreset(model="small", steps=1200, batch_size=64, max_length=128, lr=5e-4,
                          warmup_steps=120, seeds=(0, 1, 2),
                          classify=ClassifyConfig(lr=1e-4, epochs=2),
                          seq2seq=Seq2SeqConfig(lr=3e-4, max_steps=1200, batch_size=64, max_source_len=64,
                                                max_target_len=64, eval_limit=1000,
                                                decode=DecodeConfig(beam_size=4, max_length=64))),
}
