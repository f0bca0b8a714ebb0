"""Training for a time budget: the schedule runs on the elapsed fraction of the budget (Cramming).

The paper trains for a number of steps (0.5M, section 4.1); on a laptop what a user has is minutes.
With ``TrainConfig.time_budget`` (minutes) the run ends when the time is up, and the warm-up, the
decay and the optional batch ramp follow the *elapsed fraction of the budget* instead of the step
count, as in Geiping and Goldstein's "Cramming" (2022): "five minutes" then means five minutes on
any machine, and a faster machine simply takes more steps.

Choices, and why:

* The budget is wall time from the call of :func:`pmlm.train.pretrain` to the final checkpoint:
  data, tokenizer, evaluations and checkpoints included. The schedule's fraction counts only the
  training loop's share: ``(loop seconds so far) / (budget - setup - reserve)``, where the reserve
  is the last measured final evaluation plus checkpoint, so that both land inside the budget.
* A resumed run continues the fraction where its checkpoint stopped (the loop seconds and the
  first run's setup are saved); the new process's own setup time comes on top.
* Without a budget the same fraction is ``step / steps``, so the batch ramp works in both modes.
"""

from __future__ import annotations

import time


class Budget:
    """The elapsed fraction of a run: of its time budget, or of its steps when there is none."""

    def __init__(self, minutes: float | None, steps: int, t_start: float, saved: dict | None = None) -> None:
        self.total_s = None if minutes is None else 60.0 * minutes
        self.steps = steps
        self.t_start = t_start  # when pretrain() was called
        saved = saved or {}
        self.loop_before_s = float(saved.get("loop_s", 0.0))  # loop seconds of earlier processes
        self.setup_s = saved.get("setup_s")  # the first process's setup, kept across resumes
        self.reserve_s = float(saved.get("reserve_s", 0.0))  # final evaluation + checkpoint
        self.loop_start: float | None = None

    @property
    def timed(self) -> bool:
        return self.total_s is not None

    def start(self) -> None:
        """Call once, when the training loop begins."""
        self.loop_start = time.time()
        if self.setup_s is None:
            self.setup_s = self.loop_start - self.t_start

    def loop_s(self) -> float:
        """Seconds spent in the training loop, earlier processes included."""
        return self.loop_before_s + (0.0 if self.loop_start is None else time.time() - self.loop_start)

    def setup(self) -> float:
        """Seconds before the loop: measured at :meth:`start`, so far before it."""
        return time.time() - self.t_start if self.setup_s is None else self.setup_s

    def left_s(self) -> float:
        """Seconds of the budget left for training steps (0 when it is spent)."""
        return max(0.0, self.total_s - self.setup() - self.reserve_s - self.loop_s())

    def fraction(self, step: int) -> float:
        """The elapsed fraction in [0, 1]: of the training time when timed, else ``step / steps``."""
        if not self.timed:
            return min(1.0, step / self.steps)
        available = max(self.total_s - self.setup() - self.reserve_s, 1e-9)
        return min(1.0, self.loop_s() / available)

    def done(self, step: int) -> bool:
        return self.fraction(step) >= 1.0 if self.timed else step >= self.steps

    def reserve(self, seconds: float) -> None:
        """Keep ``seconds`` (the last final evaluation + checkpoint as measured) for the end."""
        self.reserve_s = max(0.0, seconds)

    def state(self) -> dict:
        return {"loop_s": self.loop_s(), "setup_s": self.setup_s, "reserve_s": self.reserve_s}


def schedule_factor(fraction: float, warmup_fraction: float) -> float:
    """Learning-rate factor at an elapsed ``fraction``: linear warm-up, then linear decay to 0."""
    if fraction < warmup_fraction:
        return max(fraction / warmup_fraction, 1e-3)
    return max(0.0, (1.0 - fraction) / max(1e-9, 1.0 - warmup_fraction))


def accumulation(fraction: float, grad_accum: int, ramp_fraction: float) -> int:
    """Micro-batches per step: from 1 up to ``grad_accum`` linearly over ``ramp_fraction``.

    The batch-size ramp of Cramming (and of GPT-3), done by accumulation so that every micro-batch
    keeps its shape; with ``ramp_fraction`` 0 it is ``grad_accum`` throughout.
    """
    if ramp_fraction <= 0 or fraction >= ramp_fraction:
        return grad_accum
    return max(1, min(grad_accum, 1 + int(fraction / ramp_fraction * grad_accum)))
