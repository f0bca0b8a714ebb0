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
  traceback. Every setting is checked when the flags are parsed, before any data is read: a
  learning rate that is finite and > 0, ``--grad-clip`` >= 0 (0 = off), steps and batch sizes >= 1,
  a device that exists here.
* The end of a run says in words whether it is any good (:func:`run_verdict`): the steps made
  against the steps expected, and, if the model is still on the unigram plateau, the likely cause
  and the command to try. Expected steps of a time budget come from the recorded demo run
  (``results/demo.json``) when the run has its settings; the plateau line is :data:`PLATEAU`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from dataclasses import fields
from pathlib import Path

from pmlm.checkpoint import CHECKPOINT_FILE, METRICS_FILE, read_metrics
from pmlm.collator import OBJECTIVES
from pmlm.config import PRESETS, PMLMConfig
from pmlm.tokenizer import TOKENIZER_FILE
from pmlm.train.config import TRAIN_PRESETS, TrainConfig, smoke_mode
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
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads on the CPU (default: one per core free at the start; "
                        "OMP_NUM_THREADS is kept too)")
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
    planning = bool(args.pop("plan") or args.pop("plan_json"))  # main() reads them (PLAN_FLAGS)
    args.pop("plan_json", None)
    preset = args.pop("preset")
    overrides_list = args.pop("model_overrides")
    overrides = {k: v for k, v in args.items() if v is not None}
    if overrides_list:  # --set adds to the preset's own model overrides
        overrides["model_overrides"] = {**TRAIN_PRESETS[preset].model_overrides,
                                        **parse_model_overrides(overrides_list, p)}
    try:  # every setting checked here, before any data is read: one line, not a traceback later
        cfg = TrainConfig.preset(preset, **overrides)
        cfg.validate(imports=False)  # pretrain imports the --logger packages, before any work too
        if not planning:  # --plan prices a GPU run on any machine
            cfg.check_device()
        return cfg
    except ValueError as err:  # one line (no usage block), as pretrain's own errors end
        raise SystemExit(f"pmlm-train: error: {err}") from None


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
        for line in run_verdict(run, cfg, command):
            print(line)


# ------------------------------------------------------------------- the end of a run, in words

RESULTS = Path(__file__).resolve().parents[2] / "results"  # the repository's recorded runs
PLATEAU = 1.5  # [M] accuracy below this multiple of the unigram baseline's: still on the plateau
PLATEAU_STEPS = 1000  # the tiny preset's 5-minute runs leave the plateau after ~1,000 steps (docs/training.md)
STEP_COST_FIELDS = ("model", "model_overrides", "objective", "factorization", "rel_pos", "max_length",
                    "mask_ratio", "vocab_size", "batch_size", "grad_accum", "batch_ramp", "num_workers")


def reference_run(results: Path | None = None) -> dict | None:
    """The recorded demo run (``results/demo.json``: preset, steps, minutes, machine), if there is one."""
    results = RESULTS if results is None else results
    try:
        ref = json.loads((results / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    return ref if isinstance(ref, dict) and ref.get("steps") and ref.get("time_budget_min") else None


def expected_steps(cfg: TrainConfig, reference: dict | None) -> tuple[int, str] | None:
    """The steps a run of ``cfg`` should make, and where that number comes from; None if unknown.

    Without a time budget, ``cfg.steps``. With one, the recorded demo run's steps scaled to the
    budget, when ``cfg`` has that run's preset settings for everything a step costs.
    """
    if cfg.time_budget is None:
        return cfg.steps, "--steps"
    if reference is None or reference.get("preset") not in TRAIN_PRESETS:
        return None
    preset = TRAIN_PRESETS[reference["preset"]]
    if any(getattr(cfg, f) != getattr(preset, f) for f in STEP_COST_FIELDS):
        return None
    m = reference.get("machine", {})
    steps = round(reference["steps"] * cfg.time_budget / reference["time_budget_min"])
    return steps, (f"the {reference['preset']} preset made {reference['steps']:,} steps in "
                   f"{reference['time_budget_min']:g} minutes on {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
                   f"results/demo.json")


def with_flag(command: str, flag: str, value) -> str:
    """``command`` with ``flag value`` in place of any ``flag`` it has (``--x v`` or ``--x=v``)."""
    command = re.sub(rf"\s{re.escape(flag)}(=\S+|\s+\S+)", "", " " + command).strip()
    return f"{command} {flag} {value}"


def run_verdict(run: Path, cfg: TrainConfig, command: str | None = None, *, budget_flag: str = "--time-budget",
                reference: dict | None = None) -> list[str]:
    """Lines that say how a finished run went: steps made against expected, and the plateau in words.

    ``command`` (the command line that started it) is the base of the command to try;
    ``budget_flag`` is how it names minutes (the demo's ``--minutes``).
    """
    records = read_metrics(run)
    start = next((r for r in records if r.get("event") == "start"), {})
    end = next((r for r in reversed(records) if r.get("event") == "end"), {})
    val = [r for r in records if r.get("split") == "val"]
    made = end.get("step", val[-1]["step"] if val else 0)
    minutes = end.get("elapsed_s", 0.0) / 60
    on_cpu = str(start.get("device", "cpu")).startswith("cpu")
    ref = (reference if reference is not None else reference_run()) if on_cpu else None
    expected = expected_steps(cfg, ref) if (on_cpu or cfg.time_budget is None) else None
    threads = f"; torch threads: {end['threads']} ({end['threads_chosen_by']})" if on_cpu and "threads" in end else ""
    if cfg.time_budget is None:
        head = f"steps: {made:,} of {cfg.steps:,}, in {minutes:.1f} minutes"
    elif expected:
        head = f"steps: {made:,} in {minutes:.1f} minutes, about {expected[0]:,} expected ({expected[1]})"
    else:
        head = f"steps: {made:,} in {minutes:.1f} minutes ({made / max(minutes, 1e-9):,.0f} a minute)"
    lines = [head + threads]
    if not val or not val[-1].get("unigram_m_acc"):
        return lines
    last, uni = val[-1], val[-1]["unigram_m_acc"]
    scores = {k: last[f"val_{k}_m_acc"] for k in ("ae", "par") if last.get(f"val_{k}_m_acc") is not None
              and cfg.objective in (k, "ae+par")}
    if not scores:
        return lines
    best = max(scores.values())
    figures = ", ".join(f"{k.upper()} {v:.3f}" for k, v in scores.items()) + f", unigram {uni:.3f}"
    if best >= PLATEAU * uni:
        lines.append(f"the model left the unigram plateau: [M] accuracy {best / uni:.1f}x the unigram "
                     f"baseline's ({figures})")
        return lines
    base = command or "python -m pmlm.train"
    if "--overwrite" not in base.split() and "--resume" not in base.split() and "pmlm.demo" not in base:
        base += " --overwrite"
    lines.append(f"the model did not leave the unigram plateau: [M] accuracy {best / uni:.1f}x the unigram "
                 f"baseline's ({figures}), the score of guessing word pieces by their frequency alone")
    if smoke_mode():
        cause = ("smoke mode: PMLM_SMOKE or CI is set, which keeps every run to a handful of steps; unset it "
                 f"and run again: {base}")
    elif expected and expected[1] != "--steps" and made < 0.5 * expected[0]:
        more = math.ceil(cfg.time_budget * expected[0] / max(made, 1))
        used = (f", on {end['threads']} torch thread{'s' if end['threads'] > 1 else ''} ({end['threads_chosen_by']})"
                if "threads" in end else "")
        cause = (f"the machine was busy: {made:,} of about {expected[0]:,} steps{used}. Run it when the machine "
                 f"is idle (uptime shows the load), or give it the time those steps take: "
                 f"{with_flag(base, budget_flag, more)}")
    elif made < PLATEAU_STEPS:
        fix = (with_flag(base, budget_flag, math.ceil(cfg.time_budget * PLATEAU_STEPS / max(made, 1)))
               if cfg.time_budget is not None else with_flag(base, "--steps", max(1500, PLATEAU_STEPS)))
        cause = (f"too few steps: {made:,}; 5-minute runs of the tiny preset leave the plateau after about "
                 f"{PLATEAU_STEPS:,} (docs/training.md). Try: {fix}")
    else:
        cause = (f"the recipe: {made:,} steps at learning rate {cfg.lr:g} did not do it, where the presets' "
                 f"recipes do (docs/training.md). Try the preset as it is: python -m pmlm.train --preset tiny "
                 f"--out-dir {cfg.out_dir} --overwrite")
    lines.append("likely cause: " + cause)
    return lines
