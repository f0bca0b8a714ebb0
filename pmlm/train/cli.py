"""The command line: ``pmlm-train`` or ``python -m pmlm.train`` (``torchrun ... -m pmlm.train``).

A named preset (``--preset tiny|small|base|large``, :data:`pmlm.train.config.TRAIN_PRESETS`) and
flags that change its fields. Table 6 rows are flags: ``--objective ae|par|ae+par``,
``--factorization block|token`` (token = the AR rows), ``--no-rel-pos`` (row 2); ``--set
FIELD=VALUE`` changes a field of the model's :class:`pmlm.PMLMConfig`, typed by its default.
``--plan`` prints what the run would cost (tokens and FLOPs per step, GPU memory, GPU-hours:
:mod:`pmlm.train.plan`) and exits without training.

Choices, and why:

* A flag left out keeps the preset's value (every flag defaults to None), so the presets stay the
  one place where defaults live.
* A bad flag, or a run directory in the way, ends with a one-line message a user can act on, not a
  traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from pmlm.checkpoint import CHECKPOINT_FILE, METRICS_FILE
from pmlm.collator import OBJECTIVES
from pmlm.config import PRESETS, PMLMConfig
from pmlm.tokenizer import TOKENIZER_FILE
from pmlm.train.config import TRAIN_PRESETS, TrainConfig
from pmlm.train.loop import pretrain
from pmlm.train.plan import format_plan, plan, write_plan_json

# Read by main() beside the run's settings (parse_args lists them in --help through parents=)
PLAN_FLAGS = argparse.ArgumentParser(add_help=False)
PLAN_FLAGS.add_argument("--plan", action="store_true",
                        help="print tokens and FLOPs per optimizer step, GPU memory and GPU-hours of "
                             "the run, counted on one example on the CPU, and exit: trains nothing")
PLAN_FLAGS.add_argument("--plan-json", metavar="PATH", help="with --plan: also write the plan as JSON to PATH")


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="pmlm-train", description="Pre-train a UniLMv2 pseudo-masked language model (PMLM).",
        epilog="Several processes: torchrun --nproc_per_node N -m pmlm.train ...", parents=[PLAN_FLAGS])
    p.add_argument("--preset", default="tiny", choices=sorted(TRAIN_PRESETS),
                   help="named settings: tiny (CPU, minutes), small (one GPU, minutes), base and "
                        "large (the paper's recipe, section 4.1: see --plan)")
    p.add_argument("--model", choices=sorted(PRESETS), help="model size preset (default: the preset's)")
    p.add_argument("--set", dest="model_overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a PMLMConfig field, e.g. --set num_layers=2 (repeatable)")
    p.add_argument("--objective", choices=OBJECTIVES, help="ae (BERT), par, ae+par (UniLMv2)")
    p.add_argument("--factorization", choices=("block", "token"), help="token = the AR rows of Table 6")
    p.add_argument("--no-rel-pos", dest="rel_pos", action="store_false", default=None,
                   help="no relative position bias (Table 6 row 2)")
    p.add_argument("--dataset", help="local file, directory or glob, or a hub dataset name (default: bundled Austen)")
    p.add_argument("--data", help="a directory prepared by python -m pmlm.prepare (corpora of any size)")
    p.add_argument("--extra-text", choices=("tasks",),
                   help="tasks: add the training splits of the sentiment and verse tasks to the training text")
    p.add_argument("--text-column", help="column holding the text (default: text)")
    p.add_argument("--doc-column", help="rows sharing this column form one document")
    p.add_argument("--max-documents", type=int, help="use only the first N documents")
    p.add_argument("--val-fraction", type=float, help="share of the text held out, in whole documents")
    p.add_argument("--tokenizer", help="reuse this tokenizer.json instead of training one")
    for name, typ in (("vocab_size", int), ("max_length", int), ("steps", int), ("batch_size", int),
                      ("grad_accum", int), ("lr", float), ("warmup_steps", int),
                      ("weight_decay", float), ("grad_clip", float), ("seed", int),
                      ("log_every", int), ("eval_every", int), ("eval_examples", int),
                      ("save_every", int), ("num_workers", int), ("warmup_fraction", float), ("mask_ratio", float),
                      ("batch_ramp", float)):
        p.add_argument("--" + name.replace("_", "-"), type=typ, dest=name)
    p.add_argument("--time-budget", type=float, dest="time_budget", metavar="MINUTES",
                   help="train for this many minutes of wall time (evaluation and checkpoint "
                        "included); the schedule follows the elapsed fraction and --steps is not used")
    p.add_argument("--out-dir", help="run directory (default: runs/<preset>)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", default=None, help="no bf16 autocast on GPU")
    p.add_argument("--resume", action="store_true", default=None, help="continue the run in --out-dir")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace the run in --out-dir")
    p.add_argument("--init", choices=("fast", "bert"),
                   help="fast: our start for short runs (default); bert: the model's BERT init")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    # --logger, not --log: torchrun reads the script's arguments too, and refuses --log as an
    # ambiguous abbreviation of its own --log-dir and --logs-specs
    p.add_argument("--logger", dest="loggers", action="append", metavar="NAME",
                   help="also write the metrics to tensorboard (<out-dir>/tensorboard/) or wandb; "
                        "repeatable or comma-separated; metrics.jsonl is always written")
    p.add_argument("--default-malloc", dest="keep_freed_memory", action="store_false", default=None,
                   help="leave glibc's malloc thresholds alone (see pmlm.allocator)")
    args = vars(p.parse_args(argv))
    for name in ("plan", "plan_json"):  # main() reads them (PLAN_FLAGS)
        args.pop(name)
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
    command = " ".join(["python -m pmlm.train", *(sys.argv[1:] if argv is None else argv)])
    flags, _ = PLAN_FLAGS.parse_known_args(argv)
    if flags.plan or flags.plan_json:  # what the run would cost, without running it
        try:
            result = plan(cfg, command)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(f"pmlm-train: error: {err}") from None
        print(format_plan(result))
        if flags.plan_json:
            print(f"plan written to {write_plan_json(result, flags.plan_json)}")
        return
    try:
        run = pretrain(cfg, command=command)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"pmlm-train: error: {err}") from None
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"run written to {run}/ ({CHECKPOINT_FILE}, {TOKENIZER_FILE}, {METRICS_FILE})")
