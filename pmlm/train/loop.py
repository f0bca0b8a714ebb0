"""The training loop: :func:`pretrain` (sections 3.3 and 4.1, Eq. 7).

One step: a batch of packed ``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data`) gets fresh
blockwise masks, pseudo masks and attention masks (:mod:`pmlm.train.batches`), one forward pass
gives both losses through the fast path ``model.loss(batch, objective)`` (only labelled rows are
projected to the vocabulary), and ``L = L_AE + L_PAR`` (Eq. 7) is minimised: gradient accumulation
over ``grad_accum`` micro-batches (DDP synchronises on the last one only), gradient clipping, bf16
autocast on a GPU, an AdamW step and a schedule step (:mod:`pmlm.train.optim`). Rank 0 evaluates
every ``eval_every`` steps (:mod:`pmlm.train.evaluation`); a checkpoint is written every
``save_every`` steps and at the end (:mod:`pmlm.checkpoint`, :mod:`pmlm.train.run_dir`), and the
run ends by writing its model files and ``training.json`` (``save_pretrained``). The run lasts
``steps`` steps, or ``time_budget`` minutes, with the schedule on the elapsed fraction
(:mod:`pmlm.train.budget`); the next batch is built in a background thread while a step runs
where that pays (:func:`pmlm.train.batches.prefetch_pays`).

Choices where the paper is silent, and why:

* The dropout stream is seeded last, from (seed, rank, step), after everything that may draw from
  torch's RNG, so that the training loop alone draws from it; a resumed run restores the state
  its checkpoint kept instead.
* A loss or gradient norm that is not finite stops the run before its optimizer step, with a
  ValueError naming the step and the last checkpoint (written before it, so good): a diverged run
  must not go on writing NaN weights. With ``grad_clip`` 0 the norm is computed all the same.
* A CPU run takes one torch thread per core that is free at its start, unless the user chose
  (``threads``, ``OMP_NUM_THREADS``, ``torch.set_num_threads``: :func:`pmlm.machine.choose_threads`),
  and gives the previous count back at its end; the ``end`` record says how many and why.
* The metric lines and the bar are :mod:`pmlm.train.progress`'s (``tokens_per_s`` counts text
  tokens, not the appended pseudo masks and copies).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pmlm.allocator import keep_freed_memory
from pmlm.checkpoint import CHECKPOINT_FILE, read_checkpoint, save_checkpoint
from pmlm.machine import choose_threads, threads_for_run
from pmlm.model import PMLMModel
from pmlm.train.batches import Prefetch, data_position, to_device
from pmlm.train.budget import Budget, accumulation
from pmlm.train.config import TrainConfig
from pmlm.train.distributed import Dist, init_distributed, pick_device, rank0_decides
from pmlm.train.evaluation import Evaluator, describe_val
from pmlm.train.optim import lr_lambda, make_optimizer
from pmlm.train.progress import ProgressBar, Window, train_record
from pmlm.train.run_dir import check_resumable, prepare_run_dir, resumed_threads, rng_states, run_lock, training_record
from pmlm.train.setup import build_model, open_log, seed_dropout, train_batches


def gradient_norm(model: nn.Module, grad_clip: float) -> float:
    """The gradient's L2 norm over all parameters; the gradient is clipped to ``grad_clip`` (0: not)."""
    if grad_clip:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))


def diverged(step: int, loss: float, norm: float, cfg: TrainConfig, out: Path, saved: int | None) -> str:
    """The one-line message of a run stopped by a loss or gradient that is not finite."""
    where = (f"the last good checkpoint is {out / CHECKPOINT_FILE} (step {saved})" if saved is not None
             else "no checkpoint was written before it")
    clip = f"--grad-clip {cfg.grad_clip:g}" if cfg.grad_clip else "--grad-clip 0, no clipping"
    return (f"training diverged at step {step}: the loss is {loss:.4g} and the gradient norm {norm:.4g}, "
            f"not finite, so the step was not taken and nothing after it saved; {where}. Lower --lr "
            f"(now {cfg.lr:g}; {clip}) and start again with --overwrite")


class LossModule(nn.Module):
    """``forward(batch)`` = ``model.loss(batch, objective)``, so DDP wraps the fast path."""

    def __init__(self, model: PMLMModel, objective: str) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.loss(batch, objective=self.objective)


def pretrain(cfg: TrainConfig, on_step: Callable | None = None, *, command: str | None = None) -> Path:
    """Pre-train a PMLM as ``cfg`` says; returns the run directory.

    ``on_step(step, model, record)`` is called on every rank after each optimizer step with the
    unwrapped model and the metric record logged at that step (None if none): a hook for tests
    and notebooks. ``command`` (the command line that started the run) goes into ``training.json``.
    """
    cfg.validate()
    cfg.check_device()
    want_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    d = init_distributed("cuda" if want_cuda else "cpu")
    # CPU: one torch thread per free core, unless the user chose (pmlm.machine); restored afterwards
    threads = (torch.get_num_threads(), "a GPU run") if want_cuda else resumed_threads(cfg) or \
        choose_threads(cfg.threads, processes=int(os.environ.get("LOCAL_WORLD_SIZE", d.world)))
    try:
        with threads_for_run(threads[0]), run_lock(cfg, d):  # rank 0 holds <out_dir>/run.lock: one run a folder
            return _pretrain(cfg, d, on_step, command, threads)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _pretrain(cfg: TrainConfig, d: Dist, on_step: Callable | None, command: str | None,
              threads: tuple[int, str]) -> Path:
    t_start, cpu_start = time.time(), time.process_time()
    device = pick_device(cfg, d.local_rank)
    if cfg.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()  # no page faults for memory a step frees (pmlm.allocator)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    autocast = cfg.bf16 and device.type == "cuda"
    out = Path(rank0_decides(lambda: str(prepare_run_dir(cfg)), d))  # all ranks fail alike
    if cfg.time_budget is not None and d.world > 1:  # each rank's clock would end the run at another step
        raise ValueError("--time-budget runs in one process; with torchrun give --steps instead")
    state = read_checkpoint(out, map_location="cpu") if cfg.resume else None
    if state is not None:
        check_resumable(state.get("train_config", {}), cfg)
    corpus, model = build_model(cfg, d, out, state)
    tok = corpus.tokenizer
    step = 0 if state is None else int(state["step"])
    good = {"saved": None if state is None else step}  # step of the last checkpoint written (good by the check below)
    micro = 0 if state is None else int(state.get("micro_step", step * cfg.grad_accum))
    budget = Budget(cfg.time_budget, cfg.steps, t_start, None if state is None else state.get("budget"))
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, budget))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # the schedule's lambda is not saved: it follows this cfg, so a resume may change --steps
    loss_module: nn.Module = LossModule(model, cfg.objective)
    if d.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    batches = train_batches(cfg, corpus, d, device, micro)
    evaluator = Evaluator(cfg, corpus, model, device, autocast) if d.main else None
    log = open_log(cfg, d, out, state, corpus, model, threads)

    def save(step: int) -> None:
        good["saved"] = step
        rngs = rng_states(device, d)
        if d.main:
            save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "step": step, "micro_step": micro,
                             "rng": rngs, "model_config": model.config.to_dict(),
                             "train_config": cfg.to_dict(), "tokenizer": tok.to_str(),
                             "world_size": d.world, "budget": budget.state(),
                             "data": data_position(corpus, cfg, d, micro)}, out / CHECKPOINT_FILE)

    costs = {"eval": 0.0, "save": 0.0}  # seconds of the last evaluation and checkpoint: the reserve

    def timed(name: str, fn: Callable, *args):
        t = time.time()
        result = fn(*args)
        costs[name] = time.time() - t
        budget.reserve(costs["eval"] + costs["save"])
        return result

    if evaluator is not None and state is None and cfg.eval_every:
        log.write(timed("eval", evaluator, 0))
    seed_dropout(cfg, d, device, state, step)
    if d.main and cfg.progress and device.type == "cpu":
        print(f"torch threads: {threads[0]} ({threads[1]})", file=sys.stderr, flush=True)
    bar = ProgressBar(cfg, budget, step) if d.main and cfg.progress else None
    window = Window()
    budget.start()
    last = budget.done(step)  # one decision per step: the same one ends the loop and writes the end
    try:
        while not last:
            accum = accumulation(budget.fraction(step), cfg.grad_accum, cfg.batch_ramp)
            loss_sum = 0.0
            for a in range(accum):
                sync = a == accum - 1 or d.world == 1
                ctx = loss_module.no_sync() if not sync else contextlib.nullcontext()
                batch = next(batches)
                text_tokens = float(batch.pop("text_tokens"))
                with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    result = loss_module(to_device(batch, device))
                    (result["loss"] / accum).backward()
                loss_sum += float(result["loss"].detach())
                window.add(result, text_tokens)
                micro += 1
            norm = gradient_norm(model, cfg.grad_clip)  # clipped to grad_clip unless it is 0
            if not math.isfinite(norm) or (d.world == 1 and not math.isfinite(loss_sum)):
                raise ValueError(diverged(step + 1, loss_sum / accum, norm, cfg, out, good["saved"]))
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            last = budget.done(step)

            record = None
            if cfg.log_every and (step % cfg.log_every == 0 or last):
                record = train_record(window.sums, step, lr, window.seconds(), d, device)
                log.write(record)
                window = Window()
            if evaluator is not None and cfg.eval_every and (step % cfg.eval_every == 0 or last):
                val = timed("eval", evaluator, step)
                log.write(val)
                if bar is not None:
                    bar.write(describe_val(val))
            if (cfg.save_every and step % cfg.save_every == 0) or last:
                timed("save", save, step)
            if bar is not None:
                bar.update(step, record)
            if on_step is not None:
                on_step(step, model, record)
        if d.main:
            log.write({"event": "end", "step": step, "elapsed_s": round(time.time() - t_start, 2),
                       "loop_s": round(budget.loop_s(), 2), "cpu_s": round(time.process_time() - cpu_start, 2),
                       "threads": threads[0], "threads_chosen_by": threads[1]})
            log.close()
            model.save_pretrained(out, tokenizer=tok, training=training_record(cfg, out, corpus.description,
                                                                               device, command))
    finally:
        if isinstance(batches, Prefetch):
            batches.close()
        if bar is not None:
            bar.close()
        log.close()
    return out
