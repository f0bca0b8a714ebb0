"""Where a run's metric records go: ``metrics.jsonl`` always, TensorBoard and W&B when asked.

The training loop writes each record once (``log.write(record)``, then ``log.close()``); the
:class:`Sinks` of :func:`open_sinks` hand it to every sink: :class:`~pmlm.train.run_dir.MetricsLog`
(``metrics.jsonl``, the run's own record, read by the notebooks and ``training.json``), and, with
``--logger tensorboard`` and/or ``--logger wandb`` (``TrainConfig.loggers``),
:class:`TensorBoardSink` and :class:`WandbSink`. Three kinds of record reach them::

    {"step": 10, "split": "train", "loss": 7.9, "ae_loss": 4.0, "par_loss": 3.9, "lr": 1e-3, ...}
    {"step": 100, "split": "val", "val_ae_loss": 3.1, "val_ae_m_bpc": 5.2, ...}
    {"step": 0, "event": "start", "parameters": 1234567, "data": "bundled Austen", ...}

and each becomes scalars named ``<split or event>/<key>`` at the record's step (:func:`scalars`):
``train/loss``, ``val/val_ae_loss``, ``start/parameters``; text, ``None`` and booleans are left out.

Choices, and why:

* Rank 0 alone writes, as for ``metrics.jsonl``: the train records are already averaged over
  ranks (:func:`pmlm.train.progress.train_record`) and rank 0 alone evaluates.
* Both extras are optional (``pip install 'pmlm[tensorboard]'``, ``'pmlm[wandb]'``); a missing one
  is refused by :meth:`TrainConfig.validate` before any work, in one line that says what to
  install, and is imported here only when asked for.
* A resumed run continues the same curves. ``metrics.jsonl`` is cut back to the checkpoint's step
  (:func:`pmlm.train.run_dir.truncate_metrics`) and TensorBoard's ``purge_step`` hides the events
  a killed run wrote past it, so both read as the uninterrupted run. W&B continues the same run,
  whose id is kept in the run directory (``wandb_id.txt``), and plots against our ``step``
  (``define_metric``) rather than its own counter, which only grows and would drop the resumed
  steps a killed run had already logged; it has no purge, so those points of the killed run stay
  beside the resumed run's.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pmlm.checkpoint import METRICS_FILE
from pmlm.train.config import TrainConfig
from pmlm.train.run_dir import MetricsLog

TENSORBOARD_DIR = "tensorboard"  # <out_dir>/tensorboard/: `tensorboard --logdir runs/` finds every run
WANDB_ID_FILE = "wandb_id.txt"  # the W&B run id, so that --resume continues the same W&B run


def scalars(record: dict) -> dict[str, float]:
    """The numeric fields of a record under ``<split or event>/<key>``, ``step`` aside.

    ``{"step": 4, "split": "train", "loss": 7.9, "ae_acc": None, "micro_batches": 1}``
    -> ``{"train/loss": 7.9, "train/micro_batches": 1.0}``.
    """
    prefix = record.get("split") or record.get("event") or "run"
    return {f"{prefix}/{key}": float(value) for key, value in record.items()
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)}


class TensorBoardSink:
    """Scalars into ``<out_dir>/tensorboard/`` through torch's ``SummaryWriter``, flushed each record."""

    def __init__(self, out: Path, resumed_at: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides the events of earlier files from this step on, so the lines a
        # killed run wrote past its checkpoint vanish as they do from metrics.jsonl (an --overwrite
        # run purges from 0: the replaced run's events are hidden too)
        purge = 0 if resumed_at is None else resumed_at + 1
        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR), purge_step=purge)

    def write(self, record: dict) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, global_step=record["step"])
        self.writer.flush()  # a TensorBoard open on the run shows each line as it comes

    def close(self) -> None:
        self.writer.close()


def wandb_run_id(out: Path, fresh: bool) -> str:
    """The W&B run id of ``out``: a new one for a fresh run, the stored one for a resumed run."""
    path = out / WANDB_ID_FILE
    if not fresh and path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(8)  # letters and digits, as W&B ids must be
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(run_id + "\n")
    os.replace(tmp, path)  # whole or nothing
    return run_id


class WandbSink:
    """Scalars to a Weights & Biases run (``wandb.init(resume="allow", id=...)``), against ``step``.

    The project is ``$WANDB_PROJECT`` (W&B's own variable), else ``pmlm``; the run is named after
    its directory and carries the whole :class:`TrainConfig`; W&B keeps its files in
    ``<out_dir>/wandb/``.
    """

    def __init__(self, cfg: TrainConfig, out: Path, resumed_at: int | None) -> None:
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "pmlm"), name=out.name,
                              dir=str(out), config=cfg.to_dict(), resume="allow",
                              id=wandb_run_id(out, fresh=resumed_at is None))
        self.run.define_metric("step")  # our step is the x axis of every chart, not W&B's counter
        for prefix in ("train", "val", "start", "end"):
            self.run.define_metric(f"{prefix}/*", step_metric="step")

    def write(self, record: dict) -> None:
        values = scalars(record)
        if values:
            self.run.log({"step": record["step"], **values})

    def close(self) -> None:
        self.run.finish()


class Sinks:
    """``write(record)`` to every sink, ``close()`` each once: the interface of ``MetricsLog``."""

    def __init__(self, sinks: list) -> None:
        self.sinks = sinks

    def write(self, record: dict) -> None:
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:  # the loop closes on its way out and again in its `finally`
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink.close()


def open_sinks(cfg: TrainConfig, out: Path, main: bool, resumed_at: int | None) -> Sinks:
    """``metrics.jsonl`` and the sinks of ``cfg.loggers``, on rank 0 (``main``); the other ranks write
    nothing. ``resumed_at`` is the checkpoint's step of a resumed run, None for a fresh one."""
    sinks: list = [MetricsLog(out / METRICS_FILE, main, fresh=resumed_at is None)]
    if main:
        for name in cfg.loggers:  # names and packages checked by TrainConfig.validate
            if name == "tensorboard":
                sinks.append(TensorBoardSink(out, resumed_at))
            elif name == "wandb":
                sinks.append(WandbSink(cfg, out, resumed_at))
    return Sinks(sinks)
