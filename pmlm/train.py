"""Pre-training a PMLM: ``python -m pmlm.train --preset tiny`` (sections 3.3, 4.1 and Table 6).

One step: a batch of packed ``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data`) gets fresh
blockwise masks, pseudo masks and attention masks (:class:`pmlm.PMLMCollator`), one forward pass
gives both losses through the fast path ``model.loss(batch, objective)`` (only labelled rows are
projected to the vocabulary), and ``L = L_AE + L_PAR`` (Eq. 7) is minimised.

Optimiser as in section 4.1: Adam(W) with betas (0.9, 0.98), eps 1e-6, weight decay 0.01, linear
warm-up then linear decay to zero; gradient clipping, bf16 autocast on a GPU, gradient
accumulation. Table 6 rows are flags: ``--objective ae|par|ae+par``, ``--factorization
block|token`` (token = the AR rows), ``--no-rel-pos`` (row 2).

Several GPUs or machines: ``torchrun --nproc_per_node 2 -m pmlm.train ...`` (DistributedDataParallel,
a DistributedSampler per rank; rank 0 alone trains the tokenizer, logs, evaluates and saves).

Choices where the paper is silent, and why:

* A start for short runs (:func:`init_for_short_runs`, ``init="fast"``): larger token and position
  embeddings, zero segment embeddings and the output bias at the log word-piece frequencies. With
  the model's BERT init a CPU-sized run stays on the unigram plateau; ``--init bert`` keeps it.
* Weight decay skips biases, LayerNorm weights and the relative position bias table (BERT's
  convention); the embeddings, tied to the softmax, are decayed.
* The masks of micro-step m are drawn from a generator seeded by (seed, rank, m), so a resumed run
  draws exactly the masks the uninterrupted run would have, and the same seed gives the same loss
  curve on the CPU. Dropout draws from torch's RNG, whose state the checkpoint keeps per rank.
* Validation always lays out AE *and* PAR (the context half is BERT's masked LM whatever is
  appended, see :mod:`pmlm.attention`), so every Table 6 row reports both AE and PAR numbers; it
  uses a fixed set of examples and fixed masks, so successive evaluations are comparable.
* ``tokens_per_s`` counts text (context) tokens, not the appended pseudo masks and copies, so the
  objectives compare on the work that matters to a user: text read per second.
* Train metrics of a log line are means over the micro-batches since the last line, averaged over
  ranks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import nn

from pmlm.checkpoint import (CHECKPOINT_FILE, METRICS_FILE, checkpoint_tokenizer, load_model_state,
                             read_checkpoint, save_checkpoint)
from pmlm.collator import OBJECTIVES
from pmlm.config import PRESETS, PMLMConfig
from pmlm.data import Corpus, PackedDataset, prepare_corpus, unigram_baseline, unigram_log_probs
from pmlm.model import PMLMModel
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer, make_collator, save_tokenizer


def smoke_mode() -> bool:
    """True when ``PMLM_SMOKE=1`` or ``CI`` is set: presets then train for a handful of steps."""
    smoke = os.environ.get("PMLM_SMOKE", "").strip().lower()
    return smoke not in ("", "0", "false", "no") or bool(os.environ.get("CI"))


@dataclass
class TrainConfig:
    # --- model (Table 6 rows are objective x factorization x rel_pos)
    model: str = "tiny"  # a PMLMConfig preset (pmlm.config.PRESETS): tiny, small, base
    model_overrides: dict = field(default_factory=dict)  # PMLMConfig fields to change, e.g. {"num_layers": 2}
    objective: str = "ae+par"  # "ae" (BERT), "par", "ae+par" (UniLMv2, Eq. 7)
    factorization: str = "block"  # "block" (paper) or "token" (the AR rows: one token per step)
    rel_pos: bool = True  # False removes the relative position bias (Table 6 row 2)
    # --- data
    dataset: str | None = None  # None: bundled Austen; a local file, directory or glob; or a hub name
    text_column: str | None = None  # column holding the text (default "text")
    doc_column: str | None = None  # rows sharing this column form a document (bundled: book+chapter)
    val_fraction: float = 0.05  # share of the text, in whole documents, held out for validation
    max_documents: int | None = None  # keep the first N documents only (quick experiments, tests)
    max_length: int = 128  # tokens per example, [SOS] S1 [EOS] S2 [EOS]; the paper uses 512
    vocab_size: int = 8192  # WordPiece entries to train; the paper's is 30,522
    tokenizer: str | None = None  # reuse this tokenizer.json instead of training one
    # --- optimisation (section 4.1, scaled down)
    steps: int = 2000  # optimizer steps
    batch_size: int = 32  # examples per process and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step: effective batch = batch_size x accum x ranks
    lr: float = 1e-3  # peak; small models tolerate more than the paper's 6e-4 for BASE
    warmup_steps: int = 100  # linear warm-up (paper: 24K of 0.5M steps), then linear decay to 0
    weight_decay: float = 0.01  # paper value
    betas: tuple[float, float] = (0.9, 0.98)  # paper value
    eps: float = 1e-6  # paper value
    grad_clip: float = 1.0  # max gradient norm (BERT's)
    init: str = "fast"  # "fast": our start for short runs (init_for_short_runs); "bert": the model's own
    # --- bookkeeping
    seed: int = 0  # model init, data order, masks and dropout all follow from it
    out_dir: str = "runs/tiny"  # the run directory: checkpoint.pt, tokenizer.json, metrics.jsonl
    log_every: int = 10  # steps between train metric lines
    eval_every: int = 100  # steps between validations (also at step 0 and at the end)
    eval_examples: int = 128  # validation examples evaluated each time (fixed set, fixed masks)
    save_every: int = 200  # steps between checkpoints (also at the end)
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    resume: bool = False  # continue the run in out_dir exactly where its checkpoint stopped
    overwrite: bool = False  # allow starting afresh over an existing run in out_dir
    progress: bool = True  # a tqdm progress bar on rank 0
    num_workers: int = 0  # DataLoader workers building masked batches ahead; 0 = in this process

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.model_overrides = dict(self.model_overrides)

    def validate(self) -> None:
        if self.model not in PRESETS:
            raise ValueError(f"unknown model preset {self.model!r}; choose one of {sorted(PRESETS)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.factorization not in ("block", "token"):
            raise ValueError(f"factorization must be 'block' or 'token', got {self.factorization!r}")
        for name in ("steps", "batch_size", "grad_accum", "max_length", "vocab_size", "eval_examples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup_steps", "log_every", "eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.init not in ("fast", "bert"):
            raise ValueError(f"init must be 'fast' or 'bert', got {self.init!r}")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in out_dir, --overwrite replaces it: choose one")

    def model_config(self, vocab_size: int) -> PMLMConfig:
        """The PMLMConfig of this run for a tokenizer of ``vocab_size`` entries."""
        overrides = dict(self.model_overrides)
        overrides["vocab_size"] = vocab_size
        if not self.rel_pos:
            overrides["rel_pos_buckets"] = 0
        try:
            config = PMLMConfig.preset(self.model, **overrides)
        except TypeError as err:
            raise ValueError(f"bad model override: {err}") from None
        if config.max_positions < self.max_length:
            raise ValueError(f"max_length={self.max_length} exceeds the model's max_positions="
                             f"{config.max_positions}; lower --max-length or raise max_positions")
        return config

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named preset (``tiny``, ``small``), shrunk in smoke mode, then ``overrides``."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
        cfg = TRAIN_PRESETS[name]
        if smoke_mode():
            cfg = replace(cfg, steps=min(cfg.steps, 8), warmup_steps=2, log_every=2, eval_every=4,
                          eval_examples=16, save_every=8, batch_size=min(cfg.batch_size, 8),
                          max_documents=cfg.max_documents or 40)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return replace(cfg, **overrides)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # CPU, about 4 minutes on 2 cores: 1,500 steps of 32 x 64 tokens (~3M tokens, 3 passes over the
    # Austen training split). Short examples buy steps, and steps are what a small model needs to
    # leave the unigram plateau (around step 500 here; a high lr shortens it: 2e-3 gave PAR
    # accuracy 0.126 at the end, 3e-3 0.160); no dropout, since 3 passes over 0.9M tokens do not
    # overfit 1.5M parameters.
    "tiny": TrainConfig(model="tiny", model_overrides={"dropout": 0.0}, max_length=64, steps=1500,
                        batch_size=32, lr=3e-3, warmup_steps=100, log_every=10, eval_every=150,
                        eval_examples=256, save_every=500, out_dir="runs/tiny"),
    # One GPU, minutes: the 4-layer, 256-hidden model on 256-token examples, bf16, batches built
    # by 4 DataLoader workers.
    "small": TrainConfig(model="small", steps=3000, batch_size=64, max_length=256, lr=1e-3,
                         warmup_steps=300, log_every=20, eval_every=250, eval_examples=512,
                         save_every=500, num_workers=4, out_dir="runs/small"),
}

# Fields a resumed run may change; any other difference from the checkpoint is refused.
RESUMABLE_CHANGES = {"steps", "log_every", "eval_every", "save_every", "device", "resume",
                     "overwrite", "progress", "out_dir", "eval_examples", "num_workers"}


# ------------------------------------------------------------------------------ distributed setup

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group ``torchrun`` describes in the environment (or run alone)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Dist()
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def pick_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} asked for but no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def rank0_decides(fn: Callable, d: Dist):
    """Run ``fn`` on rank 0 and return its result on every rank; if it fails with a ValueError or
    FileNotFoundError, every rank raises it (instead of waiting forever for rank 0)."""
    if d.world == 1:
        return fn()
    message = None
    if d.main:
        try:
            message = ("ok", fn())
        except (ValueError, FileNotFoundError) as err:
            message = ("error", f"{err}")
    message = broadcast_object(message, d)
    if message[0] == "error":
        raise ValueError(message[1])
    return message[1]


def broadcast_object(obj, d: Dist):
    """Rank 0's ``obj`` on every rank."""
    if d.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------------- the schedule

def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up to the peak over ``warmup_steps``, then linear decay to 0 at ``steps``."""
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


class LossModule(nn.Module):
    """``forward(batch)`` = ``model.loss(batch, objective)``, so DDP wraps the fast path."""

    def __init__(self, model: PMLMModel, objective: str) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.loss(batch, objective=self.objective)


# ---------------------------------------------------------------------------------- data order

class BatchOrder:
    """Example indices of global micro-step m for this rank: epochs of a DistributedSampler.

    Micro-step m lies in epoch ``m // per_epoch``; the sampler shuffles each epoch with
    ``seed + epoch``, so any micro-step is found again after a restart without replaying the data.
    """

    def __init__(self, dataset: PackedDataset, batch_size: int, seed: int, d: Dist) -> None:
        self.sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.per_epoch = len(self.sampler) // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"the training split has {len(dataset)} examples, fewer than one batch "
                             f"of {batch_size} per process x {d.world} process(es); give more text "
                             "or lower --batch-size")
        self._epoch, self._indices = -1, []

    def __call__(self, m: int) -> list[int]:
        epoch, k = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._indices = epoch, list(self.sampler)
        return self._indices[k * self.batch_size:(k + 1) * self.batch_size]


def mask_seed(seed: int, rank: int, micro: int) -> int:
    """Seed of the masks of micro-step ``micro`` on ``rank`` (distinct for every pair)."""
    return (seed * 1_000_003 + rank) * 1_000_000_007 + micro


class MicroBatches(torch.utils.data.Dataset):
    """Item m = the collated batch of micro-step m: its examples, masked with seed (seed, rank, m).

    A pure function of m, so DataLoader workers may build batches ahead (``num_workers``) and a
    resumed run starts at any m with the very batches the uninterrupted run would have seen.
    """

    def __init__(self, data: PackedDataset, order: BatchOrder, collator, seed: int, rank: int) -> None:
        self.data, self.order, self.collator, self.seed, self.rank = data, order, collator, seed, rank

    def __len__(self) -> int:
        return 2**62  # unbounded: the sampler says which micro-steps to build

    def __getitem__(self, micro: int) -> dict[str, torch.Tensor]:
        self.collator.generator.manual_seed(mask_seed(self.seed, self.rank, micro))
        batch = self.collator([self.data[i] for i in self.order(micro)])
        batch["text_tokens"] = (batch["valid"] & (batch["step_ids"] == 0)).sum()  # () context tokens
        return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: PMLMModel, batches: list[dict[str, torch.Tensor]], device: torch.device,
             autocast: bool) -> dict[str, float]:
    """Token-weighted AE and PAR loss and accuracy over fixed validation batches."""
    was_training = model.training
    model.eval()
    sums = {k: 0.0 for k in ("ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens")}
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model.loss(to_device(batch, device), objective="ae+par")
        for name in ("ae", "par"):
            n = float(out[f"{name}_tokens"])
            sums[name] += float(out[name]) * n
            sums[f"{name}_acc"] += float(out[f"{name}_acc"]) * n
            sums[f"{name}_tokens"] += n
    model.train(was_training)
    out = {}
    for name in ("ae", "par"):
        n = max(sums[f"{name}_tokens"], 1.0)
        out[f"val_{name}_loss"] = sums[name] / n
        out[f"val_{name}_acc"] = sums[f"{name}_acc"] / n
    return out


# ---------------------------------------------------------------------------- the run directory

def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Check what ``out_dir`` holds against --resume / --overwrite; never clobber silently."""
    out = Path(cfg.out_dir)
    ckpt, metrics = out / CHECKPOINT_FILE, out / METRICS_FILE
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a directory")
    if cfg.resume:
        if not ckpt.is_file():
            raise ValueError(f"--resume: {out} holds no {CHECKPOINT_FILE} to continue from")
    elif (ckpt.exists() or metrics.exists()) and not cfg.overwrite:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, --overwrite to "
                         "replace it, or choose another --out-dir")
    return out


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def check_resumable(saved: dict, cfg: TrainConfig) -> None:
    """Refuse to resume with settings that would not continue the same run."""
    wanted = json.loads(json.dumps(cfg.to_dict()))
    saved = json.loads(json.dumps(saved))
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs {wanted.get(k)!r}"
             for k in sorted(set(saved) | set(wanted))
             if k not in RESUMABLE_CHANGES and saved.get(k) != wanted.get(k)]
    if diffs:
        raise ValueError("cannot resume: this run's settings differ from the checkpoint's; "
                         + "; ".join(diffs))


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the metric lines up to ``step`` (a killed run may have logged past its checkpoint)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step:
            keep.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (rank 0 only), flushed each time."""

    def __init__(self, path: Path, enabled: bool, fresh: bool) -> None:
        self.enabled = enabled
        self.file = open(path, "w" if fresh else "a") if enabled else None

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# ------------------------------------------------------------------------------------ the data

def load_corpus(cfg: TrainConfig, tok, d: Dist) -> Corpus:
    """The packed corpus on every rank, with one tokenizer.

    Without a given tokenizer, rank 0 trains it (WordPiece training is not promised to be
    deterministic across processes) and sends it to the others, or sends its error so that every
    rank stops with the same message instead of waiting forever.
    """
    def prepare(tokenizer):
        return prepare_corpus(cfg.dataset, text_column=cfg.text_column, doc_column=cfg.doc_column,
                              val_fraction=cfg.val_fraction, seed=cfg.seed, max_length=cfg.max_length,
                              vocab_size=cfg.vocab_size, max_documents=cfg.max_documents,
                              tokenizer=tokenizer)

    if tok is not None or d.world == 1:
        return prepare(tok)
    box = {}

    def train_on_rank0() -> str:
        box["corpus"] = prepare(None)
        return box["corpus"].tokenizer.to_str()

    tok_json = rank0_decides(train_on_rank0, d)
    return box["corpus"] if d.main else prepare(Tokenizer.from_str(tok_json))


# ------------------------------------------------------------------------------------ pretrain

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


# ------------------------------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="pmlm-train", description="Pre-train a UniLMv2 pseudo-masked language model (PMLM).",
        epilog="Several processes: torchrun --nproc_per_node N -m pmlm.train ...")
    p.add_argument("--preset", default="tiny", choices=sorted(TRAIN_PRESETS),
                   help="named settings: tiny (CPU, minutes), small (one GPU, minutes)")
    p.add_argument("--model", choices=sorted(PRESETS), help="model size preset (default: the preset's)")
    p.add_argument("--set", dest="model_overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a PMLMConfig field, e.g. --set num_layers=2 (repeatable)")
    p.add_argument("--objective", choices=OBJECTIVES, help="ae (BERT), par, ae+par (UniLMv2)")
    p.add_argument("--factorization", choices=("block", "token"), help="token = the AR rows of Table 6")
    p.add_argument("--no-rel-pos", dest="rel_pos", action="store_false", default=None,
                   help="no relative position bias (Table 6 row 2)")
    p.add_argument("--dataset", help="local file, directory or glob, or a hub dataset name (default: bundled Austen)")
    p.add_argument("--text-column", help="column holding the text (default: text)")
    p.add_argument("--doc-column", help="rows sharing this column form one document")
    p.add_argument("--max-documents", type=int, help="use only the first N documents")
    p.add_argument("--val-fraction", type=float, help="share of the text held out, in whole documents")
    p.add_argument("--tokenizer", help="reuse this tokenizer.json instead of training one")
    for name, typ in (("vocab_size", int), ("max_length", int), ("steps", int), ("batch_size", int),
                      ("grad_accum", int), ("lr", float), ("warmup_steps", int),
                      ("weight_decay", float), ("grad_clip", float), ("seed", int),
                      ("log_every", int), ("eval_every", int), ("eval_examples", int),
                      ("save_every", int), ("num_workers", int)):
        p.add_argument("--" + name.replace("_", "-"), type=typ, dest=name)
    p.add_argument("--out-dir", help="run directory (default: runs/<preset>)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=None, help="no bf16 autocast on GPU")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in --out-dir")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace the run in --out-dir")
    p.add_argument("--init", choices=("fast", "bert"),
                   help="fast: our start for short runs (default); bert: the model's BERT init")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    args = vars(p.parse_args(argv))
    preset = args.pop("preset")
    overrides_list = args.pop("model_overrides")
    overrides = {k: v for k, v in args.items() if v is not None}
    if overrides_list:  # --set adds to the preset's own model overrides
        overrides["model_overrides"] = {**TRAIN_PRESETS[preset].model_overrides,
                                        **parse_model_overrides(overrides_list, p)}
    try:
        return TrainConfig.preset(preset, **overrides)
    except ValueError as err:
        p.error(str(err))


def parse_model_overrides(items: list[str], parser: argparse.ArgumentParser) -> dict:
    """``["num_layers=2", "dropout=0.0"]`` -> ``{"num_layers": 2, "dropout": 0.0}``, typed by PMLMConfig."""
    defaults = {f.name: getattr(PMLMConfig(), f.name) for f in fields(PMLMConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in defaults:
            parser.error(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(defaults)}")
        kind = type(defaults[name])
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[name] = value.lower() in ("true", "1")
            else:
                out[name] = kind(value)
        except ValueError:
            parser.error(f"--set {item!r}: {value!r} is not a valid {kind.__name__}")
    return out


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        run = pretrain(cfg)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"pmlm-train: error: {err}") from None
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"run written to {run}/ ({CHECKPOINT_FILE}, {TOKENIZER_FILE}, {METRICS_FILE})")


if __name__ == "__main__":
    main()
