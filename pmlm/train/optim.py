"""Optimisation (section 4.1): where a short run starts, AdamW and the learning-rate schedule.

Section 4.1: Adam with betas (0.9, 0.98), eps 1e-6 and weight decay 0.01; the learning rate rises
linearly over a warm-up, then decays linearly (to zero here). The values are defaults of
:class:`pmlm.train.TrainConfig`; gradient clipping, bf16 autocast and gradient accumulation are
done by the loop (:mod:`pmlm.train.loop`).

Choices where the paper is silent, and why:

* A start for short runs (:func:`init_for_short_runs`, ``init="fast"``): larger token and position
  embeddings, zero segment embeddings and the output bias at the log word-piece frequencies. With
  the model's BERT init a CPU-sized run stays on the unigram plateau; ``--init bert`` keeps it.
* Weight decay skips biases, LayerNorm weights and the relative position bias table (BERT's
  convention); the embeddings, tied to the softmax, are decayed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pmlm.model import PMLMModel
from pmlm.train.budget import Budget, schedule_factor
from pmlm.train.config import TrainConfig


def lr_lambda(cfg: TrainConfig, budget: Budget | None = None) -> Callable[[int], float]:
    """Linear warm-up to the peak over ``warmup_steps``, then linear decay to 0 at ``steps``.

    With a time budget (``budget.timed``) the same shape runs on the elapsed fraction of the
    budget instead, the warm-up taking ``warmup_fraction`` of it (:mod:`pmlm.train.budget`).
    """
    if budget is not None and budget.timed:
        return lambda step: schedule_factor(budget.fraction(step), cfg.warmup_fraction)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))
    return factor


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decay on matrices and embeddings, none on biases, LayerNorms and the bias table."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.dim() < 2 or "rel_bias" in name
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


@torch.no_grad()
def init_for_short_runs(model: PMLMModel, log_frequencies: torch.Tensor) -> None:
    """Where a short pre-training run starts from (``init="fast"``; the paper trains 0.5M steps
    and says nothing about initialisation from scratch).

    BERT's N(0, 0.02) everywhere suits long runs of wide models; a 128-wide model trained for a
    few hundred steps sits for all of them on the unigram plateau (measured: no gain over word
    frequencies after 700 steps on the bundled corpus). Three changes get it off the plateau:

    * token and position embeddings N(0, 1/sqrt(H)): the tied softmax starts with logits of
      unit scale instead of 0.02 sqrt(H), so the output layer tells the embeddings apart;
    * segment embeddings zero: a random segment vector as large as the token signal is added to
      every position and hides the differences between tokens from attention until it is unlearnt;
    * the output bias at the log word-piece frequencies of the training split (the "init well"
      advice for any softmax): Adam moves each weight by about ``lr`` per step, so a zero bias
      takes hundreds of steps only to learn that "the" is frequent.
    """
    H = model.config.hidden_size
    torch.nn.init.normal_(model.token_embedding.weight, std=H ** -0.5)
    torch.nn.init.normal_(model.position_embedding.weight, std=H ** -0.5)
    torch.nn.init.zeros_(model.segment_embedding.weight)
    model.head.bias.copy_(log_frequencies.to(model.head.bias))
