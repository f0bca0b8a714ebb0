"""The fine-tuning loop that scales like pre-training: torchrun, accumulation, bf16, checkpoints, resume.

:func:`run_steps` takes optimizer steps on a list of examples, as :func:`pmlm.train.pretrain` does on
its corpus, and with its parts: the order of examples is :class:`pmlm.train.BatchOrder` (epochs of
DistributedSampler's order), the process group and rank 0's decisions :mod:`pmlm.train.distributed`,
the run directory, its lock and the metrics log :mod:`pmlm.train.run_dir`, the atomic checkpoint
:func:`pmlm.checkpoint.save_checkpoint`. One step, as s2s-ft's ``run_seq2seq.py`` takes it::

    the global batch:  batch_size examples = processes x grad_accum micro-batches
    each micro-batch:  loss = (sum of its token losses) / (target tokens of the whole global batch)
                       backward (DDP all-reduces the gradients on the last micro-batch only)
    then:              clip the gradient norm to 1.0, AdamW step, linear schedule step

Choices, and why:

* ``batch_size`` counts the examples of one optimizer step over all processes and micro-batches
  (s2s-ft's "fine-tuning batch size = gpus x per_gpu_train_batch_size x gradient_accumulation_steps",
  here one number): the same flags give the same run on one process or eight, and the recipe of a
  paper (XSum: 64) is one flag. It must split evenly into processes x ``grad_accum``.
* The loss of a step is the mean over the target tokens of the *global* batch: each micro-batch's
  sum is divided by the token count of all of them, summed over the ranks (one all-reduce of a
  number per step). s2s-ft divides by each GPU's own count, so its step depends on how the batch
  is split; this one does not, and two processes give the weights of one (tested).
* Everything random in a batch is drawn from a generator seeded by (seed, epoch, example)
  (:func:`example_rng`), never from the order the examples came in: a resumed run, and a run on
  another number of processes, build exactly the same batches. Dropout draws from torch's RNG, whose
  state every rank saves in the checkpoint (:func:`pmlm.train.run_dir.rng_states`).
* A checkpoint (``checkpoint.pt``) holds the model, optimizer, schedule, step, every rank's RNG, the
  configs, the tokenizer and a fingerprint of the training examples; ``--resume`` refuses other
  examples or other settings (bookkeeping aside: :data:`RESUMABLE`), so a resumed run is the
  uninterrupted one. It is written every ``save_every`` steps and at the last, whole or not at all.
  The run directory is :func:`pmlm.checkpoint.load_pretrained`'s too: ``--pretrained OUT_DIR`` reads
  the last checkpoint's model.
* bf16 autocast on a GPU (s2s-ft uses apex fp16); the CPU computes in float32.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pmlm.checkpoint import (CHECKPOINT_FILE, METRICS_FILE, config_differences, load_model_state, read_checkpoint,
                             save_checkpoint)
from pmlm.finetune.common import check_finite_step, make_optimizer
from pmlm.train.batches import BatchOrder
from pmlm.train.distributed import Dist, rank0_decides
from pmlm.train.run_dir import MetricsLog, prepare_run_dir, rng_states, run_lock, set_rng_state, truncate_metrics

# settings a resumed run may change: they do not touch the steps (evaluation, decoding, checkpoints)
RESUMABLE = {"save_every", "eval_limit", "eval_every", "curve_examples", "decode"}


@dataclass
class RunDir:
    """Where a fine-tuning run keeps its checkpoints, and how to treat one already there (the fields
    that :func:`pmlm.train.run_dir.prepare_run_dir` and :func:`~pmlm.train.run_dir.run_lock` read)."""

    out_dir: str
    resume: bool = False  # continue the checkpoint there
    overwrite: bool = False  # replace the run there
    tokenizer: str | None = None  # (a pre-training field: fine-tuning keeps its tokenizer in the checkpoint)


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of everything random in example ``index`` in ``epoch`` (word drop, spans)."""
    return random.Random(f"{seed} {epoch} {index}")  # a str seed is hashed with sha512: the same in every process


class StepLoss(nn.Module):
    """``forward(batch, tokens)`` = ``loss_of(model, batch, tokens)``, so DDP wraps the whole loss."""

    def __init__(self, model: nn.Module, loss_of: Callable) -> None:
        super().__init__()
        self.model, self.loss_of = model, loss_of

    def forward(self, batch: dict[str, torch.Tensor], tokens: float) -> torch.Tensor:
        return self.loss_of(self.model, batch, tokens)


def total_steps(cfg, n: int, d: Dist) -> int:
    """Optimizer steps of the run: ``max_steps``, else ``epochs`` passes over the ``n`` examples."""
    check_split(cfg, d)
    if cfg.max_steps is not None:
        return cfg.max_steps
    return BatchOrder(range(n), cfg.batch_size // d.world, cfg.seed, d).per_epoch * cfg.epochs


def check_split(cfg, d: Dist) -> None:
    parts = d.world * cfg.grad_accum
    if cfg.batch_size % parts:
        raise ValueError(f"--batch-size {cfg.batch_size} is the batch of one optimizer step over all processes "
                         f"and micro-batches and must split into {d.world} process(es) x --grad-accum "
                         f"{cfg.grad_accum} = {parts} equal parts; give a multiple of {parts}")


def fingerprint(examples) -> str:
    """A hash of the training examples (lists of ids), for --resume to refuse other data."""
    import hashlib
    from array import array

    h = hashlib.sha1()
    for example in examples:
        for ids in example:
            h.update(array("q", ids).tobytes())
            h.update(b"|")
    return h.hexdigest()


def check_same_run(state: dict, config: dict, data: dict, path: Path) -> None:
    """Refuse to resume a checkpoint of other settings or other examples than this run's."""
    saved = {k: v for k, v in (state.get("finetune_config") or {}).items() if k not in RESUMABLE}
    diffs = config_differences(saved, {k: v for k, v in config.items() if k not in RESUMABLE})
    if diffs:
        raise ValueError(f"cannot resume {path}: this run's settings differ from the checkpoint's; " + "; ".join(diffs))
    theirs = state.get("data") or {}
    if theirs.get("fingerprint") != data["fingerprint"]:
        raise ValueError(f"cannot resume {path}: it was fine-tuned on other examples ({theirs.get('examples')} "
                         f"pairs) than this run's ({data['examples']}); resume with the --data it was trained on")


def run_steps(model: nn.Module, n: int, cfg, *, batch_of: Callable, loss_of: Callable, d: Dist,
              run: RunDir | None, data: dict, extra_state: dict, log: Callable = print,
              on_step: Callable | None = None, record: Callable | None = None) -> list[float]:
    """Take ``cfg``'s optimizer steps on examples ``0..n-1``; return the loss of every step taken.

    ``batch_of(indices, epoch)`` collates a micro-batch (on the model's device), ``loss_of(model,
    batch, tokens)`` is its loss summed over its tokens and divided by ``tokens``. ``run``: the run
    directory (None: no checkpoints). ``data`` (``fingerprint``, ``examples``) and ``extra_state``
    (e.g. the tokenizer) go into every checkpoint. ``on_step(step, model)`` is called on every rank
    after each step, after its checkpoint; ``record(step)`` on rank 0 may return a metrics record
    (a point of a learning curve) to log.
    """
    device = next(model.parameters()).device
    total = total_steps(cfg, n, d)
    order = BatchOrder(range(n), cfg.batch_size // d.world, cfg.seed, d)  # this rank's part of each step
    optimizer, scheduler = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay, total_steps=total,
                                          warmup=cfg.warmup, warmup_steps=cfg.warmup_steps)
    config, task = asdict(cfg), extra_state.get("task", "fine-tuning")
    with run_lock(run, d) if run is not None else contextlib.nullcontext():
        out = Path(rank0_decides(lambda: str(prepare_run_dir(run)), d)) if run is not None else None
        state = read_checkpoint(out) if run is not None and run.resume else None
        step = 0
        if state is not None:
            check_same_run(state, config, data, out / CHECKPOINT_FILE)
            load_model_state(model, state, f"checkpoint {out / CHECKPOINT_FILE}")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = int(state["step"])
            log(f"{task}: resumed {out / CHECKPOINT_FILE} at step {step} of {total}")
        rngs = (state or {}).get("rng") or []
        if len(rngs) == d.world:
            set_rng_state(rngs[d.rank], device)  # the dropout of the uninterrupted run
        else:
            torch.manual_seed(cfg.seed + 7919 * d.rank + step)  # each rank its own dropout
        metrics = None
        if out is not None and d.main:
            if state is not None:
                truncate_metrics(out / METRICS_FILE, step)
            metrics = MetricsLog(out / METRICS_FILE, True, fresh=state is None)
        good = {"step": step if state is not None else None}

        def save(step: int) -> None:
            every = rng_states(device, d)
            if d.main:
                save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "step": step, "rng": every,
                                 "model_config": model.config.to_dict(), "finetune_config": config,
                                 "data": data, "world_size": d.world, **extra_state}, out / CHECKPOINT_FILE)
            good["step"] = step

        step_loss: nn.Module = StepLoss(model, loss_of)
        if d.world > 1:
            step_loss = nn.parallel.DistributedDataParallel(
                step_loss, device_ids=[device.index] if device.type == "cuda" else None)
        autocast = cfg.bf16 and device.type == "cuda"
        log_every = max(1, min(total // 5, 500))
        losses: list[float] = []
        model.train()
        t0, seen = time.time(), 0
        try:
            while step < total:
                mine, epoch = order(step), order.position(step)["epoch"]
                size = len(mine) // cfg.grad_accum
                micro = [batch_of(mine[a * size:(a + 1) * size], epoch) for a in range(cfg.grad_accum)]
                count = torch.tensor([float(sum(int((b["par_labels"] != -100).sum()) for b in micro))], device=device)
                if d.world > 1:
                    dist.all_reduce(count)  # the target tokens of the global batch
                tokens = float(count) / d.world  # DDP averages the ranks' gradients: undo its 1/world
                loss_sum = torch.zeros((), device=device)
                for a, batch in enumerate(micro):
                    sync = a == len(micro) - 1 or d.world == 1
                    with (contextlib.nullcontext() if sync else step_loss.no_sync()), \
                            torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                        loss = step_loss(batch, tokens)
                    loss.backward()
                    loss_sum += loss.detach().float()
                if d.world > 1:
                    dist.all_reduce(loss_sum)
                    loss_sum /= d.world
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))  # s2s-ft's max_grad_norm
                lr = scheduler.get_last_lr()[0]
                saved = f"{out / CHECKPOINT_FILE} (step {good['step']})" if good["step"] is not None else None
                check_finite_step(task, step + 1, float(loss_sum), norm, lr, saved=saved)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                seen += cfg.batch_size
                losses.append(float(loss_sum))
                if step % log_every == 0 or step == total:
                    window = losses[-log_every:]
                    rate = seen / max(1e-9, time.time() - t0)
                    log(f"{task} step {step}/{total}: train loss {sum(window) / len(window):.4f}, "
                        f"lr {lr:.3g}, {rate:.1f} pairs/s")
                    if metrics is not None:
                        metrics.write({"step": step, "split": "train", "loss": sum(window) / len(window),
                                       "lr": lr, "pairs_per_s": round(rate, 2)})
                    t0, seen = time.time(), 0
                if record is not None and d.main:
                    point = record(step)
                    if point is not None and metrics is not None:
                        metrics.write({"split": "val", **point})
                if out is not None and ((cfg.save_every and step % cfg.save_every == 0) or step == total):
                    save(step)
                if on_step is not None:
                    on_step(step, model)
        finally:
            if metrics is not None:
                metrics.close()
    return losses

