"""Several processes: ``torchrun --nproc_per_node 2 -m pmlm.train ...`` (DistributedDataParallel).

The paper trains on many GPUs and says nothing of the mechanics. :func:`init_distributed` joins the
process group that ``torchrun`` describes in the environment, or runs alone (``world == 1``, no
process group at all); :func:`pick_device` gives each rank its GPU. Rank 0 alone trains the
tokenizer, logs, evaluates and saves; each rank reads its own examples (:mod:`pmlm.train.batches`).

Choices, and why:

* gloo on the CPU, NCCL on CUDA: the backends torch recommends for each.
* What may fail on rank 0 (the run directory check, the tokenizer training) reaches every rank
  through :func:`rank0_decides`, its error included, so that every rank stops with the same
  message instead of waiting forever for rank 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pmlm.train.config import TrainConfig


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


def describe_device(device: torch.device | str | None = None) -> str:
    """What a run prints about where it runs: the GPU's name, or ``"CPU (2 threads)"``."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''})"


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
