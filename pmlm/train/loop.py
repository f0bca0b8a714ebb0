"""The training loop: :func:`pretrain` (sections 3.3 and 4.1, Eq. 7).

One step: a batch of packed ``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data`) gets fresh
blockwise masks, pseudo masks and attention masks (:mod:`pmlm.train.batches`), one forward pass
gives both losses through the fast path ``model.loss(batch, objective)`` (only labelled rows are
projected to the vocabulary), and ``L = L_AE + L_PAR`` (Eq. 7) is minimised: gradient accumulation
over ``grad_accum`` micro-batches (DDP synchronises on the last one only), gradient clipping, bf16
autocast on a GPU, an AdamW step and a schedule step (:mod:`pmlm.train.optim`). Rank 0 evaluates
every ``eval_every`` steps (:mod:`pmlm.train.evaluation`); a checkpoint is written every
``save_every`` steps and at the end (:mod:`pmlm.checkpoint`, :mod:`pmlm.train.run_dir`).

Choices where the paper is silent, and why:

* The dropout stream is seeded last, from (seed, rank, step), after everything that may draw from
  torch's RNG, so that the training loop alone draws from it; a resumed run restores the state
  its checkpoint kept instead.
* ``tokens_per_s`` counts text (context) tokens, not the appended pseudo masks and copies, so the
  objectives compare on the work that matters to a user: text read per second.
* Train metrics of a log line are means over the micro-batches since the last line, averaged over
  ranks.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pmlm.allocator import keep_freed_memory
from pmlm.checkpoint import (CHECKPOINT_FILE, METRICS_FILE, checkpoint_tokenizer, load_model_state,
                             read_checkpoint, save_checkpoint)
from pmlm.data import unigram_baseline, unigram_log_probs
from pmlm.model import PMLMModel
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer, make_collator, save_tokenizer
from pmlm.train.batches import BatchOrder, MicroBatches, load_corpus, to_device
from pmlm.train.config import TrainConfig
from pmlm.train.distributed import Dist, init_distributed, pick_device, rank0_decides
from pmlm.train.evaluation import evaluate
from pmlm.train.optim import init_for_short_runs, lr_lambda, make_optimizer
from pmlm.train.run_dir import (MetricsLog, check_resumable, prepare_run_dir, rng_state,
                                set_rng_state, truncate_metrics)


class LossModule(nn.Module):
    """``forward(batch)`` = ``model.loss(batch, objective)``, so DDP wraps the fast path."""

    def __init__(self, model: PMLMModel, objective: str) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.loss(batch, objective=self.objective)


def pretrain(cfg: TrainConfig, on_step: Callable | None = None) -> Path:
    """Pre-train a PMLM as ``cfg`` says; returns the run directory.

    ``on_step(step, model, record)`` is called on every rank after each optimizer step with the
    unwrapped model and the metric record logged at that step (None if none): a hook for tests
    and notebooks.
    """
    cfg.validate()
    want_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    d = init_distributed("cuda" if want_cuda else "cpu")
    try:
        return _pretrain(cfg, d, on_step)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _pretrain(cfg: TrainConfig, d: Dist, on_step: Callable | None) -> Path:
    device = pick_device(cfg, d.local_rank)
    if cfg.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()  # no page faults for memory a step frees (pmlm.allocator)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    autocast = cfg.bf16 and device.type == "cuda"
    out = Path(rank0_decides(lambda: str(prepare_run_dir(cfg)), d))  # all ranks fail alike
    state = read_checkpoint(out, map_location="cpu") if cfg.resume else None
    if state is not None:
        check_resumable(state.get("train_config", {}), cfg)
    t_start = time.time()

    tok = None
    if state is not None:
        tok = checkpoint_tokenizer(out, state)
    elif cfg.tokenizer is not None:
        tok = load_tokenizer(cfg.tokenizer)
    corpus = load_corpus(cfg, tok, d)
    tok = corpus.tokenizer
    model_config = cfg.model_config(tok.get_vocab_size())

    # Model, optimizer, schedule: the same init on every rank (DDP also broadcasts rank 0's).
    torch.manual_seed(cfg.seed)
    model = PMLMModel(model_config)
    if cfg.init == "fast":
        init_for_short_runs(model, unigram_log_probs(corpus))
    step = 0
    if state is not None:
        load_model_state(model, state)
        step = int(state["step"])
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # the schedule's lambda is not saved: it follows this cfg, so a resume may change --steps
    loss_module: nn.Module = LossModule(model, cfg.objective)
    if d.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)

    collator = make_collator(tok, objective=cfg.objective, factorization=cfg.factorization,
                             max_length=cfg.max_length, generator=torch.Generator())
    micro_batches = torch.utils.data.DataLoader(
        MicroBatches(corpus.train, BatchOrder(corpus.train, cfg.batch_size, cfg.seed, d), collator,
                     cfg.seed, d.rank),
        sampler=range(step * cfg.grad_accum, cfg.steps * cfg.grad_accum), batch_size=None,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed))  # its own seed draw leaves torch's RNG alone
    val_collator = make_collator(tok, objective="ae+par", factorization=cfg.factorization,
                                 max_length=cfg.max_length,
                                 generator=torch.Generator().manual_seed(cfg.seed + 12345))
    val_examples = corpus.validation.examples[:cfg.eval_examples]
    val_batches = [val_collator(val_examples[i:i + cfg.batch_size])
                   for i in range(0, len(val_examples), cfg.batch_size)] if d.main else []

    # Run directory: the tokenizer, the metrics log (truncated to the checkpoint on resume).
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        if state is not None:
            truncate_metrics(out / METRICS_FILE, step)
        elif cfg.overwrite:  # a fresh run: no stale checkpoint may outlive the metrics it matched
            (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    log = MetricsLog(out / METRICS_FILE, d.main, fresh=state is None)
    if d.main:
        save_tokenizer(tok, out / TOKENIZER_FILE)
        if state is None:
            log.write({"event": "start", "step": 0, "world_size": d.world, "device": str(device),
                       "train_examples": len(corpus.train), "val_examples": len(corpus.validation),
                       "train_tokens": corpus.train.num_tokens(), "vocab_size": tok.get_vocab_size(),
                       "parameters": sum(p.numel() for p in model.parameters()),
                       "data": corpus.description, "data_s": round(time.time() - t_start, 2),
                       **unigram_baseline(corpus)})

    def save(step: int) -> None:
        rngs = [rng_state(device)]
        if d.world > 1:
            rngs = [None] * d.world
            dist.all_gather_object(rngs, rng_state(device))
        if d.main:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "step": step, "rng": rngs,
                             "model_config": model_config.to_dict(), "train_config": cfg.to_dict(),
                             "tokenizer": tok.to_str(), "world_size": d.world},
                            out / CHECKPOINT_FILE)

    def run_eval(step: int) -> dict:
        record = {"step": step, "split": "val", **evaluate(model, val_batches, device, autocast)}
        log.write(record)
        return record

    if d.main and state is None and cfg.eval_every:
        run_eval(0)

    # The dropout stream, set last: everything above may draw from torch's RNG (the collators
    # validate their arguments with a draw), the training loop alone must.
    rngs = (state.get("rng") or []) if state is not None else []
    if state is not None and len(rngs) == d.world:
        set_rng_state(rngs[d.rank], device)  # exactly where the checkpointed run was
    else:
        torch.manual_seed(cfg.seed + 7919 * (d.rank + 1) + step)  # distinct per rank

    bar = None
    if d.main and cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=f"pre-training ({cfg.objective})",
                   dynamic_ncols=True, file=sys.stderr)
    window = {k: 0.0 for k in ("loss", "ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens",
                               "text_tokens", "micro")}
    t_window = time.time()
    try:
        batches = iter(micro_batches)
        while step < cfg.steps:
            for a in range(cfg.grad_accum):
                batch = next(batches)
                window["text_tokens"] += float(batch.pop("text_tokens"))
                batch = to_device(batch, device)
                sync = a == cfg.grad_accum - 1 or d.world == 1
                ctx = loss_module.no_sync() if not sync else contextlib.nullcontext()
                with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    result = loss_module(batch)
                    (result["loss"] / cfg.grad_accum).backward()
                for k in ("loss", "ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens"):
                    window[k] += float(result[k].detach())
                window["micro"] += 1
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1

            record = None
            if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
                record = train_record(window, step, lr, time.time() - t_window, d, device)
                log.write(record)
                window = {k: 0.0 for k in window}
                t_window = time.time()
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.3f}", ae=_fmt(record["ae_loss"]),
                                    par=_fmt(record["par_loss"]))
            if bar is not None:
                bar.update(1)
            if d.main and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                val = run_eval(step)
                if bar is not None:
                    bar.write(f"step {step}: val AE loss {val['val_ae_loss']:.3f} acc "
                              f"{val['val_ae_acc']:.3f} | PAR loss {val['val_par_loss']:.3f} acc "
                              f"{val['val_par_acc']:.3f}")
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
                save(step)
            if on_step is not None:
                on_step(step, model, record)
        if d.main:
            log.write({"event": "end", "step": step, "elapsed_s": round(time.time() - t_start, 2)})
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return out


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def train_record(window: dict, step: int, lr: float, seconds: float, d: Dist,
                 device: torch.device) -> dict:
    """The train metric line: means over the window's micro-batches, averaged over ranks."""
    keys = ["loss", "ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens", "text_tokens", "micro"]
    values = torch.tensor([window[k] for k in keys], dtype=torch.float64)
    if d.world > 1:
        values = values.to(device)
        dist.all_reduce(values)
        values = values.cpu()
    w = dict(zip(keys, values.tolist()))
    micro = max(w["micro"], 1.0)
    record = {"step": step, "split": "train", "loss": w["loss"] / micro, "lr": lr}
    for name in ("ae", "par"):
        has = w[f"{name}_tokens"] > 0
        record[f"{name}_loss"] = w[name] / micro if has else None
        record[f"{name}_acc"] = w[f"{name}_acc"] / micro if has else None
    record["tokens_per_s"] = w["text_tokens"] / max(seconds, 1e-9)
    return record
