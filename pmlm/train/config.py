"""The settings of a pre-training run: :class:`TrainConfig` and its named presets (section 4.1).

A run is one dataclass: the model preset and the Table 6 row (``objective`` x ``factorization`` x
``rel_pos``), the data, the optimisation of section 4.1 scaled down, and the bookkeeping. Each
default has its reason beside it; "paper value" marks the values the paper gives.

``TRAIN_PRESETS`` are the named recipes: ``tiny`` (a CPU, minutes), ``small`` (one GPU,
minutes), and the paper's own recipe at full size, ``base`` (section 4.1) and ``large``
(BERT-LARGE's size on base's recipe), whose cost ``python -m pmlm.train --preset base --plan``
prints (:mod:`pmlm.train.plan`). :meth:`TrainConfig.preset` returns one with your changes.
:func:`smoke_mode` is the package-wide switch (``PMLM_SMOKE=1`` or ``CI`` set) that shrinks every
preset to a handful of steps, so that CI and the notebooks run each training cell in seconds;
fine-tuning and the ablation read the same switch.

Choices where the paper is silent, and why:

* ``tiny`` and ``small`` are scaled to a CPU and one GPU (the paper trains BASE for 0.5M steps of
  7,680 examples of 512 tokens); the comment above each says what was measured and why it is set
  so. ``base`` and ``large`` carry the paper's values, each marked with its section, and say
  where the choice is ours.
* Smoke mode also runs the accumulated presets with one micro-batch a step and at most 256
  tokens an example, so that ``base`` and ``large`` take a handful of (slow) steps, not 240 times
  as many; ``tiny`` and ``small`` shrink as before.
* A resumed run may change only bookkeeping fields (:data:`RESUMABLE_CHANGES`); any other
  difference from the checkpoint would not continue the same run, so it is refused.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace

from pmlm.collator import OBJECTIVES
from pmlm.config import PRESETS, PMLMConfig


LOGGERS = ("tensorboard", "wandb")  # --logger names; each is also the package it needs


def logger_names(loggers: str | tuple | list) -> tuple[str, ...]:
    """``"tensorboard,wandb"`` or ``["tensorboard", "wandb,tensorboard"]`` -> ``("tensorboard", "wandb")``."""
    items = [loggers] if isinstance(loggers, str) else list(loggers)
    names = (name.strip() for item in items for name in item.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def smoke_mode() -> bool:
    """True when ``PMLM_SMOKE=1`` or ``CI`` is set: presets then train for a handful of steps."""
    smoke = os.environ.get("PMLM_SMOKE", "").strip().lower()
    return smoke not in ("", "0", "false", "no") or bool(os.environ.get("CI"))


@dataclass
class TrainConfig:
    # --- model (Table 6 rows are objective x factorization x rel_pos)
    model: str = "tiny"  # a PMLMConfig preset (pmlm.config.PRESETS): tiny, small, base, large
    model_overrides: dict = field(default_factory=dict)  # PMLMConfig fields to change, e.g. {"num_layers": 2}
    objective: str = "ae+par"  # "ae" (BERT), "par", "ae+par" (UniLMv2, Eq. 7)
    factorization: str = "block"  # "block" (paper) or "token" (the AR rows: one token per step)
    rel_pos: bool = True  # False removes the relative position bias (Table 6 row 2)
    # --- data
    dataset: str | None = None  # None: bundled Austen; a local file, directory or glob; or a hub name
    # a directory written by `python -m pmlm.prepare` (memory-mapped shards, pmlm.data.shards): for
    # corpora of any size; it brings its tokenizer and held-out split, so it replaces `dataset`
    data: str | None = None
    text_column: str | None = None  # column holding the text (default "text")
    doc_column: str | None = None  # rows sharing this column form a document (bundled: book+chapter)
    extra_text: str | None = None  # "tasks": add the tasks' training text to the training split only
    val_fraction: float = 0.05  # share of the text, in whole documents, held out for validation
    max_documents: int | None = None  # keep the first N documents only (quick experiments, tests)
    max_length: int = 128  # tokens per example, [SOS] S1 [EOS] S2 [EOS]; the paper uses 512
    mask_ratio: float = 0.15  # share of text tokens masked in training (paper: 15%); validation keeps 15%
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
    # --- time budget (pmlm.train.budget): minutes of wall time for the whole run; None = run `steps`.
    # With a budget, `steps` is not used: warm-up, decay and the batch ramp follow the elapsed fraction
    time_budget: float | None = None
    warmup_fraction: float = 0.06  # budgeted runs: warm-up share of the budget (100 of 1,500 steps before)
    batch_ramp: float = 0.0  # share of the run over which accumulation grows 1 -> grad_accum; 0 = none
    # --- bookkeeping
    seed: int = 0  # model init, data order, masks and dropout all follow from it
    out_dir: str = "runs/tiny"  # the run directory: checkpoint.pt, tokenizer.json, metrics.jsonl
    log_every: int = 10  # steps between train metric lines
    # where the records of metrics.jsonl also go: "tensorboard" and/or "wandb" (pmlm.train.loggers);
    # none by default, so that a run needs no extra package and metrics.jsonl stays the one record
    loggers: tuple[str, ...] = ()
    eval_every: int = 100  # steps between validations (also at step 0 and at the end)
    eval_examples: int = 128  # validation examples evaluated each time (fixed set, fixed masks)
    save_every: int = 200  # steps between checkpoints (also at the end)
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    resume: bool = False  # continue the run in out_dir exactly where its checkpoint stopped
    overwrite: bool = False  # allow starting afresh over an existing run in out_dir
    progress: bool = True  # a tqdm progress bar on rank 0
    num_workers: int = 0  # DataLoader workers building masked batches ahead; 0 = in this process
    # torch threads of a CPU run; None = one per core free at the start (pmlm.machine.choose_threads:
    # torch's threads spin-wait for each other, so a thread on a busy core holds all of them up)
    threads: int | None = None
    # CPU speed: glibc keeps freed tensor memory instead of handing it back and page-faulting it in
    # again every step (pmlm.allocator; measured 0.1-0.2 s of a 0.8 s PMLM step on the CPU)
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.model_overrides = dict(self.model_overrides)
        self.loggers = logger_names(self.loggers)

    def validate(self, *, imports: bool = True) -> None:
        """A ValueError naming the first setting that cannot run; ``imports=False`` leaves out the
        check that each ``--logger`` package imports (the command line parses without them)."""
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
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget is minutes of wall time and must be positive, got {self.time_budget}")
        for name in ("warmup_fraction", "batch_ramp"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.time_budget is not None and not math.isfinite(self.time_budget):
            raise ValueError(f"time_budget is minutes of wall time and must be finite, got {self.time_budget}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip is the largest gradient norm and must be >= 0 (0 = no clipping), "
                             f"got {self.grad_clip}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or left out: one per free core), got {self.threads}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.max_documents is not None and self.max_documents < 1:
            raise ValueError(f"--max-documents must be at least 1 (or left out: every document), "
                             f"got {self.max_documents}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if self.extra_text not in (None, "tasks"):
            raise ValueError(f"extra_text must be None or 'tasks', got {self.extra_text!r}")
        if self.init not in ("fast", "bert"):
            raise ValueError(f"init must be 'fast' or 'bert', got {self.init!r}")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in out_dir, --overwrite replaces it: choose one")
        if self.data is not None:
            clash = [f"--{n.replace('_', '-')}" for n in ("dataset", "extra_text", "text_column", "doc_column",
                                                          "max_documents") if getattr(self, n) is not None]
            if clash:
                raise ValueError(f"--data reads a prepared directory; {', '.join(clash)} belong to "
                                 "python -m pmlm.prepare (or to --dataset instead of --data)")
        for name in self.loggers:  # before any work: a missing package should not wait for the corpus
            if name not in LOGGERS:
                raise ValueError(f"unknown logger {name!r} in --logger; choose from {sorted(LOGGERS)} "
                                 "(metrics.jsonl is always written)")
            if not imports:
                continue
            try:
                importlib.import_module(name)
            except ImportError:
                raise ValueError(f"--logger {name} needs the {name} package: "
                                 f"pip install 'pmlm[{name}]' (or pip install {name})") from None

    def check_device(self) -> None:
        """A ValueError unless ``device`` exists on this machine (not part of :meth:`validate`, so
        that ``--plan`` can price a GPU run on a laptop)."""
        from pmlm.machine import check_device

        check_device(self.device)

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
        """A named preset (``tiny``, ``small``, ``base``, ``large``), shrunk in smoke mode, then
        ``overrides``."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
        cfg = TRAIN_PRESETS[name]
        if smoke_mode():
            cfg = replace(cfg, steps=min(cfg.steps, 8), warmup_steps=2, log_every=2, eval_every=4,
                          eval_examples=16, save_every=8, batch_size=min(cfg.batch_size, 8),
                          grad_accum=1, max_length=min(cfg.max_length, 256),
                          # a prepared directory (--data) is already cut to size by whoever made it
                          max_documents=None if overrides.get("data") else (cfg.max_documents or 40))
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return replace(cfg, **overrides)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # CPU: `make demo` trains it for 5 minutes of wall time (--time-budget 5, the schedule on the
    # elapsed fraction); without a budget, 1,500 steps. 32 x 64-token examples: short examples buy
    # steps, and steps are what a small model needs to leave the unigram plateau. lr 3e-3, no
    # dropout, post-LN, 8k pieces, 15% masking: the recipe study of docs/training.md
    # (results/recipes.jsonl) found no single change that beats it at 5 minutes by more than a
    # single run can resolve (the best, 25% masking, by 1-2% in bits per character).
    "tiny": TrainConfig(model="tiny", model_overrides={"dropout": 0.0}, max_length=64, steps=1500,
                        batch_size=32, lr=3e-3, warmup_steps=100, log_every=10, eval_every=300,
                        eval_examples=256, save_every=500, out_dir="runs/tiny"),
    # One GPU, minutes: the 4-layer, 256-hidden model on 256-token examples, bf16, batches built
    # by 4 DataLoader workers.
    "small": TrainConfig(model="small", steps=3000, batch_size=64, max_length=256, lr=1e-3,
                         warmup_steps=300, log_every=20, eval_every=250, eval_examples=512,
                         save_every=500, num_workers=4, out_dir="runs/small"),
    # The paper's recipe (section 4.1), at the paper's compute: `python -m pmlm.train --preset base
    # --plan` prints what it costs (pmlm.train.plan; the paper: "about 20 days using 64 Nvidia
    # V100-32GB"). Each value's source is beside it; "ours" marks the choices where 4.1 is silent.
    "base": TrainConfig(
        model="base",  # 12 layers, hidden 768, 12 heads, FFN 3072, dropout 0.1 (4.1; pmlm.config)
        max_length=512,  # tokens per example (4.1)
        vocab_size=30522,  # BERT's uncased WordPiece vocabulary, 30,522 pieces (4.1)
        mask_ratio=0.15,  # 15% masked (4.1, Algorithm 1)
        steps=500_000,  # 0.5M steps (4.1)
        # batch 7,680 (4.1) = 32 examples x 240 micro-batches on one process (ours: 32 take about
        # 15 GiB by --plan's upper bound, within a 24 GB GPU); with N processes keep 7,680 =
        # batch_size x grad_accum x N: 8 GPUs --grad-accum 30, 64 GPUs --batch-size 30 --grad-accum 4
        batch_size=32, grad_accum=240,
        lr=6e-4,  # peak learning rate (4.1)
        warmup_steps=24_000,  # linear warm-up of 24K steps, then linear decay (4.1), to 0 here
        weight_decay=0.01, betas=(0.9, 0.98), eps=1e-6,  # Adam(W) (4.1)
        grad_clip=1.0,  # ours: BERT's; 4.1 is silent
        init="bert",  # ours: the model's N(0, 0.02); init_for_short_runs is a start for minutes-long runs
        bf16=True,  # ours: bf16 autocast on the GPU; 4.1 names no precision
        log_every=100, eval_every=5000, eval_examples=1024, save_every=5000,  # ours: bookkeeping
        num_workers=8,  # ours: masks and layout are Python, ~8 ms an example on a CPU core: kept ahead
        out_dir="runs/base"),
}
# LARGE: BERT-LARGE's size (pmlm.config) on BASE's recipe. Ours: section 4.1 gives LARGE no
# recipe of its own; 16 examples x 480 micro-batches keep the batch at 7,680 in about 23 GiB
# (--plan's upper bound), within a 32 GB V100 like the paper's.
TRAIN_PRESETS["large"] = replace(TRAIN_PRESETS["base"], model="large", batch_size=16, grad_accum=480,
                                 out_dir="runs/large")

# Fields a resumed run may change; any other difference from the checkpoint is refused.
RESUMABLE_CHANGES = {"steps", "log_every", "eval_every", "save_every", "device", "resume",
                     "overwrite", "progress", "out_dir", "eval_examples", "num_workers",
                     "keep_freed_memory", "loggers", "threads"}  # loggers: a resume may add or drop one
