"""The run directory of :func:`pmlm.train.pretrain`: never clobbered, resumed exactly.

It holds the files of :mod:`pmlm.checkpoint` (``checkpoint.pt``, ``tokenizer.json``,
``metrics.jsonl``), and ``run.lock`` while a run writes it. :func:`prepare_run_dir` refuses to
replace a run without ``--overwrite`` and to resume one that is not there; :func:`check_resumable`
refuses to resume with settings that differ from the checkpoint's, bookkeeping aside
(:data:`pmlm.train.config.RESUMABLE_CHANGES`).

Choices where the paper is silent, and why:

* Dropout draws from torch's RNG, whose state (torch, Python and CUDA) the checkpoint keeps per
  rank (:func:`rng_state`), so a resumed run goes on with the very dropout the killed run would
  have drawn.
* A killed run may have logged past its last checkpoint: on resume the metrics log is cut back to
  the checkpoint's step (:func:`truncate_metrics`), so it reads as the uninterrupted run's.
* Rank 0 alone writes ``metrics.jsonl``, one JSON object a line, flushed each time
  (:class:`MetricsLog`), so a notebook can read a run while it trains.
* One run per folder: rank 0 holds ``run.lock`` (:func:`run_lock`, :mod:`pmlm.locks`) from before
  :func:`prepare_run_dir` looks at the folder until the run ends; a second run into it is refused
  with one line naming the first (pid and command). The kernel drops the lock of a killed run.
* ``--overwrite`` first removes what the earlier run wrote (its weights first, then its checkpoint,
  metrics, model files, tokenizer and TensorBoard events) and nothing else, so that a killed
  ``--overwrite`` run never leaves the old model beside the new tokenizer.
* A full or read-only disk ends the run with one line (:class:`RunWriteError`), not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path

import torch

from pmlm.checkpoint import CHECKPOINT_FILE, METRICS_FILE, read_metrics
from pmlm.locks import hold
from pmlm.machine import THREAD_ENV
from pmlm.model_files import TOKENIZER_FILE, WEIGHTS_FILE, written_files
from pmlm.train.config import RESUMABLE_CHANGES, TrainConfig
from pmlm.train.distributed import Dist, rank0_decides

RUN_LOCK = "run.lock"


class RunWriteError(OSError, ValueError):
    """The run directory cannot be written (a full or read-only disk): one line on the command line."""


@contextlib.contextmanager
def run_lock(cfg: TrainConfig, d: Dist):
    """Rank 0 holds ``<out_dir>/run.lock`` for the block; every rank raises the same one-line
    ValueError if another run holds it (naming that run's pid and command)."""
    with contextlib.ExitStack() as stack:
        rank0_decides(lambda: _take_run_lock(Path(cfg.out_dir), cfg.resume, stack), d)
        yield


def _take_run_lock(out: Path, resume: bool, stack: contextlib.ExitStack) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a directory")
    if resume and not out.is_dir():
        return  # prepare_run_dir refuses it: nothing to lock, and no empty folder made
    try:
        if not out.exists():
            out.mkdir(parents=True)
            stack.callback(_remove_if_empty, out)  # runs after the lock is let go: a failed run leaves no folder
        stack.enter_context(hold(out / RUN_LOCK, "training run"))
    except OSError as err:
        raise RunWriteError(f"cannot write to out_dir {out}: {err.strerror or err}") from None


def resumed_threads(cfg: TrainConfig) -> tuple[int, str] | None:
    """``--resume`` without ``--threads`` (or ``OMP_NUM_THREADS``): the thread count the run started
    with, from its start record, so that the resumed run computes what an uninterrupted one would
    (the count is part of the arithmetic: docs/training.md, "Reproducible"). None otherwise."""
    path = Path(cfg.out_dir) / METRICS_FILE
    if not cfg.resume or cfg.threads is not None or any(os.environ.get(n) for n in THREAD_ENV) \
            or not path.is_file():
        return None
    start = next((r for r in read_metrics(path) if r.get("event") == "start"), {})
    if not start.get("threads"):
        return None
    return int(start["threads"]), "the count the resumed run started with"


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only ever succeeds on an empty folder


def _remove_earlier_run(out: Path, cfg: TrainConfig) -> None:
    """--overwrite: the files an earlier run wrote, its weights first, and nothing else."""
    model, writer = written_files(out)
    names = [WEIGHTS_FILE, CHECKPOINT_FILE, CHECKPOINT_FILE + ".tmp", METRICS_FILE, METRICS_FILE + ".tmp",
             *sorted(model if writer == "save_pretrained" else set())]
    given = Path(cfg.tokenizer).resolve() if cfg.tokenizer else None
    if given not in ((out / TOKENIZER_FILE).resolve(), out.resolve()):  # not the tokenizer this run reads
        names.append(TOKENIZER_FILE)
    try:
        for name in dict.fromkeys(names):
            (out / name).unlink(missing_ok=True)
        for events in sorted((out / "tensorboard").glob("events.out.tfevents.*"))[:10_000]:
            events.unlink(missing_ok=True)
    except OSError as err:
        raise RunWriteError(f"--overwrite: cannot remove the earlier run's files in {out}: "
                            f"{err.strerror or err}") from None


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Check what ``out_dir`` holds against --resume / --overwrite; never clobber silently. With
    --overwrite the earlier run's own files are removed here (:func:`pretrain` calls this under
    :func:`run_lock`, so no other run is writing them)."""
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
    elif cfg.overwrite and out.is_dir():
        _remove_earlier_run(out, cfg)
    return out


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def rng_states(device: torch.device, d: Dist) -> list[dict]:
    """Every rank's RNG state in rank order (a collective: every rank calls it), for a checkpoint
    from which each rank resumes with its own dropout and masks."""
    states = [rng_state(device)]
    if d.world > 1:
        states = [None] * d.world
        torch.distributed.all_gather_object(states, rng_state(device))
    return states


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
        self.enabled, self.path = enabled, path
        try:
            self.file = open(path, "w" if fresh else "a") if enabled else None
        except OSError as err:
            raise RunWriteError(f"cannot write {path}: {err.strerror or err}") from None

    def write(self, record: dict) -> None:
        if self.file is not None:
            try:
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
            except OSError as err:
                raise RunWriteError(f"cannot append to {self.path}: {err.strerror or err}; the last "
                                    "checkpoint is intact (--resume once there is room)") from None

    def close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            with contextlib.suppress(OSError):  # every line was flushed; a full disk was reported by write
                file.close()


def training_record(cfg: TrainConfig, out: Path, data: str, device: torch.device,
                    command: str | None = None) -> dict:
    """``training.json``: how the model in ``out`` was made (command, seed, data, time, final metrics)."""
    import platform
    import time

    records = read_metrics(out) if (out / METRICS_FILE).is_file() else []
    val = [r for r in records if r.get("split") == "val"]
    ends = [r for r in records if r.get("event") == "end"]
    start = next((r for r in records if r.get("event") == "start"), {})
    return {"command": command,
            "train_config": cfg.to_dict(), "seed": cfg.seed, "data": data, "device": str(device),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "steps": ends[-1]["step"] if ends else None,
            # every process of a resumed run: its wall, loop and CPU seconds
            "processes": [{k: r.get(k) for k in ("elapsed_s", "loop_s", "cpu_s")} for r in ends],
            "parameters": start.get("parameters"), "unigram_val_loss": start.get("unigram_val_loss"),
            "final_validation": val[-1] if val else None}
