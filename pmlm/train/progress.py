"""What a run shows while it trains: the train metric lines and the progress bar.

Choices, and why:

* Train metrics of a log line are means over the micro-batches since the last line, averaged over
  ranks; ``tokens_per_s`` counts text (context) tokens, not the appended pseudo masks and copies,
  so the objectives compare on the work that matters to a user: text read per second.
* A budgeted run's bar counts seconds and shows the time left (the steps are not known in
  advance); a run of fixed steps counts steps.
"""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist

from pmlm.train.budget import Budget
from pmlm.train.config import TrainConfig
from pmlm.train.distributed import Dist

WINDOW_KEYS = ("loss", "ae", "par", "ae_acc", "par_acc", "ae_tokens", "par_tokens", "text_tokens", "micro")


class Window:
    """Sums of the loss dicts of the micro-batches since the last train line, and its start time."""

    def __init__(self) -> None:
        self.sums = {k: 0.0 for k in WINDOW_KEYS}
        self.t0 = time.time()

    def add(self, result: dict[str, torch.Tensor], text_tokens: float) -> None:
        for k in WINDOW_KEYS[:-2]:
            self.sums[k] += float(result[k].detach())
        self.sums["text_tokens"] += text_tokens
        self.sums["micro"] += 1

    def seconds(self) -> float:
        return time.time() - self.t0


def train_record(window: dict, step: int, lr: float, seconds: float, d: Dist,
                 device: torch.device) -> dict:
    """The train metric line: means over the window's micro-batches, averaged over ranks."""
    values = torch.tensor([window[k] for k in WINDOW_KEYS], dtype=torch.float64)
    if d.world > 1:
        values = values.to(device)
        dist.all_reduce(values)
        values = values.cpu()
    w = dict(zip(WINDOW_KEYS, values.tolist()))
    micro = max(w["micro"], 1.0)
    record = {"step": step, "split": "train", "loss": w["loss"] / micro, "lr": lr}
    for name in ("ae", "par"):
        has = w[f"{name}_tokens"] > 0
        record[f"{name}_loss"] = w[name] / micro if has else None
        record[f"{name}_acc"] = w[f"{name}_acc"] / micro if has else None
    record["tokens_per_s"] = w["text_tokens"] / max(seconds, 1e-9)
    record["micro_batches"] = int(w["micro"])
    return record


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


class ProgressBar:
    """tqdm on rank 0: steps of a fixed-step run, or seconds (and time left) of a budgeted one."""

    def __init__(self, cfg: TrainConfig, budget: Budget, step: int) -> None:
        from tqdm.auto import tqdm
        self.budget = budget
        desc = f"pre-training ({cfg.objective})"
        if budget.timed:
            self.bar = tqdm(total=round(budget.total_s), initial=0, desc=desc, unit="s", dynamic_ncols=True,
                            file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s, "
                                                        "{remaining} left{postfix}")
        else:
            self.bar = tqdm(total=cfg.steps, initial=step, desc=desc, dynamic_ncols=True, file=sys.stderr)
        self.postfix: dict = {}

    def update(self, step: int, record: dict | None) -> None:
        if record is not None:
            self.postfix = {"loss": f"{record['loss']:.3f}", "ae": _fmt(record["ae_loss"]),
                            "par": _fmt(record["par_loss"])}
        if self.budget.timed:
            spent = self.budget.setup() + self.budget.loop_s()
            self.bar.n = min(spent, self.bar.total)
            self.bar.set_postfix(step=step, **self.postfix, refresh=False)
            self.bar.refresh()
        else:
            if record is not None:
                self.bar.set_postfix(**self.postfix, refresh=False)
            self.bar.update(1)

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
