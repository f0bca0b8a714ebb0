"""The run directory of :func:`pmlm.train.pretrain`: never clobbered, resumed exactly.

It holds the files of :mod:`pmlm.checkpoint` (``checkpoint.pt``, ``tokenizer.json``,
``metrics.jsonl``). :func:`prepare_run_dir` refuses to replace a run without ``--overwrite`` and to
resume one that is not there; :func:`check_resumable` refuses to resume with settings that differ
from the checkpoint's, bookkeeping aside (:data:`pmlm.train.config.RESUMABLE_CHANGES`).

Choices where the paper is silent, and why:

* Dropout draws from torch's RNG, whose state (torch, Python and CUDA) the checkpoint keeps per
  rank (:func:`rng_state`), so a resumed run goes on with the very dropout the killed run would
  have drawn.
* A killed run may have logged past its last checkpoint: on resume the metrics log is cut back to
  the checkpoint's step (:func:`truncate_metrics`), so it reads as the uninterrupted run's.
* Rank 0 alone writes ``metrics.jsonl``, one JSON object a line, flushed each time
  (:class:`MetricsLog`), so a notebook can read a run while it trains.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import torch

from pmlm.checkpoint import CHECKPOINT_FILE, METRICS_FILE, read_metrics
from pmlm.train.config import RESUMABLE_CHANGES, TrainConfig


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
            self.file = None


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
