"""What a run sets up before its first step: the corpus and model, the batches, the log, the RNG.

Each function does one part of :func:`pmlm.train.pretrain`'s preparation, on every rank alike
unless it says otherwise; a resumed run (``state``, the checkpoint dict) gets back what its
checkpoint kept.

Choices where the paper is silent, and why:

* The dropout stream is seeded last (:func:`seed_dropout`), from (seed, rank, step), after
  everything that may draw from torch's RNG (the collators validate their arguments with a draw),
  so that the training loop alone draws from it; a resumed run restores the state its checkpoint
  kept instead.
* The ``start`` record names the data, sizes and the unigram baseline over all validation tokens;
  the baseline on exactly the scored ``[M]`` positions comes with every evaluation
  (:mod:`pmlm.train.evaluation`).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pmlm.checkpoint import CHECKPOINT_FILE, METRICS_FILE, checkpoint_tokenizer, load_model_state
from pmlm.data import Corpus, unigram_baseline, unigram_log_probs
from pmlm.model import PMLMModel
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer, make_collator, save_tokenizer
from pmlm.train.batches import (BatchOrder, MicroBatches, Prefetch, check_same_data, load_corpus,
                                prefetch_pays)
from pmlm.train.config import TrainConfig
from pmlm.train.distributed import Dist
from pmlm.train.optim import init_for_short_runs
from pmlm.train.loggers import Sinks, open_sinks
from pmlm.train.run_dir import set_rng_state, truncate_metrics


def build_model(cfg: TrainConfig, d: Dist, out: Path, state: dict | None) -> tuple[Corpus, PMLMModel]:
    """The packed corpus (with its tokenizer) and the model, at its start or its checkpoint."""
    tok = None
    if state is not None:
        tok = checkpoint_tokenizer(out, state)
    elif cfg.tokenizer is not None:
        tok = load_tokenizer(cfg.tokenizer)
    corpus = load_corpus(cfg, tok, d)
    if state is not None and ("data" in state or corpus.fingerprint is not None):
        check_same_data(state, corpus)
    torch.manual_seed(cfg.seed)  # the same init on every rank (DDP also broadcasts rank 0's)
    model = PMLMModel(cfg.model_config(corpus.tokenizer.get_vocab_size()))
    if cfg.init == "fast":
        init_for_short_runs(model, unigram_log_probs(corpus))
    if state is not None:
        load_model_state(model, state)
    return corpus, model


def train_batches(cfg: TrainConfig, corpus: Corpus, d: Dist, device: torch.device, micro: int):
    """An iterator of the masked micro-batches from micro-step ``micro`` on (each a pure function of
    its index): DataLoader workers when ``num_workers`` > 0, else built in the loop's process, by a
    :class:`~pmlm.train.batches.Prefetch` thread where that pays (:func:`~pmlm.train.batches.prefetch_pays`)."""
    collator = make_collator(corpus.tokenizer, objective=cfg.objective, factorization=cfg.factorization,
                             max_length=cfg.max_length, mask_ratio=cfg.mask_ratio, generator=torch.Generator())
    end = 2**62 if cfg.time_budget is not None else cfg.steps * cfg.grad_accum  # a budget ends by time
    loader = torch.utils.data.DataLoader(
        MicroBatches(corpus.train, BatchOrder(corpus.train, cfg.batch_size, cfg.seed, d), collator,
                     cfg.seed, d.rank),
        sampler=range(micro, end), batch_size=None,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed))  # its own seed draw leaves torch's RNG alone
    return Prefetch(loader) if cfg.num_workers == 0 and prefetch_pays(device) else iter(loader)


def open_log(cfg: TrainConfig, d: Dist, out: Path, state: dict | None, corpus: Corpus,
             model: PMLMModel, threads: tuple[int, str] = (0, "")) -> Sinks:
    """The metrics log (truncated to the checkpoint on resume; also TensorBoard, W&B with --logger) and,
    on rank 0, the tokenizer file."""
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        if state is not None:
            truncate_metrics(out / METRICS_FILE, int(state["step"]))
        elif cfg.overwrite:  # a fresh run: no stale checkpoint may outlive the metrics it matched
            (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    log = open_sinks(cfg, out, d.main, resumed_at=None if state is None else int(state["step"]))
    if d.main:
        tok = corpus.tokenizer
        save_tokenizer(tok, out / TOKENIZER_FILE)
        if state is None:
            log.write({"event": "start", "step": 0, "world_size": d.world, "device": str(model_device(model)),
                       "train_examples": len(corpus.train), "val_examples": len(corpus.validation),
                       "train_tokens": corpus.train.num_tokens(), "vocab_size": tok.get_vocab_size(),
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "data": corpus.description, "time_budget": cfg.time_budget,
                       "threads": threads[0], "threads_chosen_by": threads[1],  # a resume takes them again
                       "wall_clock": time.strftime("%Y-%m-%d %H:%M:%S"), **unigram_baseline(corpus)})
    return log


def model_device(model: PMLMModel) -> torch.device:
    return next(model.parameters()).device


def seed_dropout(cfg: TrainConfig, d: Dist, device: torch.device, state: dict | None, step: int) -> None:
    """Set torch's RNG for the loop: where the checkpointed run was, or from (seed, rank, step)."""
    rngs = (state.get("rng") or []) if state is not None else []
    if state is not None and len(rngs) == d.world:
        set_rng_state(rngs[d.rank], device)  # exactly where the checkpointed run was
    else:
        torch.manual_seed(cfg.seed + 7919 * (d.rank + 1) + step)  # distinct per rank
