"""The machine a run is on: what a measurement ran on, how busy it is, what a run may ask of it.

* :func:`machine_info`: CPU model, cores, threads, load, Python and torch, date. Every recorded
  result (``results/``, ``benchmarks/RESULTS.md``, a shipped model's ``training.json``) carries
  this record, so that a number always comes with the machine, the thread count and the day that
  produced it.
* :func:`free_cores` and :func:`choose_threads`: how many torch threads a CPU run takes, from the
  cores that are free when it starts.
* :func:`check_device` and :func:`available_memory`: a device that exists, and the memory free on it.

Choices, and why:

* torch's threads spin-wait for each other at the end of every operator, so one thread on a core
  that another process is using holds all of them up. Measured on the project's 2-core VM, 1-minute
  budgeted ``tiny`` runs with one other process spinning on one core: 2 threads made 72 steps, 1
  thread 151; idle, 2 threads make 239. So a run takes one thread per *free* core, never more.
* A core is free when it was at most about a third busy over a short sample of ``/proc/stat``
  (:data:`SAMPLE_S`, other processes only: this one sleeps meanwhile), not by the load average,
  which lags a minute behind: a run started right after a busy spell would take too few threads,
  one started right after a spinner began too many. Without ``/proc/stat`` (macOS) the 1-minute
  load average stands in.
* The cores a process may use are its affinity set (``taskset``, a container's cpuset), capped by
  a cgroup CPU quota where there is one (``cpu.max``).
* A thread count the user chose is kept: ``--threads``, ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``,
  or a ``torch.set_num_threads(n)`` before the run (seen as a count other than torch's default;
  one equal to the default cannot be told from it: use ``--threads`` then).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
import subprocess
import time
from pathlib import Path

import torch

SAMPLE_S = 0.3  # seconds of /proc/stat sampled to see which cores other processes keep busy
BUSY_SLACK = 0.3  # a core at most this busy (other processes' share) still counts as free
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def machine_info() -> dict[str, str]:
    """CPU model (lscpu), cores, torch threads, 1/5/15-minute load, Python, torch, date; GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        cpu = m.group(1).strip() if m else cpu
    except (OSError, subprocess.SubprocessError):
        pass
    info = {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": str(os.cpu_count()),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "torch": torch.__version__}
    try:
        with open("/proc/loadavg") as f:
            info["load"] = " ".join(f.read().split()[:3])
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------- a busy machine

def usable_cores() -> int:
    """Cores this process may run on: its affinity set, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_times() -> dict[int, tuple[int, int]]:
    """``{cpu: (busy, total)}`` jiffies from ``/proc/stat`` (steal counts as busy: not ours to use)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()[:8]]  # user nice system idle iowait irq softirq steal
                total = sum(v)
                out[int(m.group(1))] = (total - v[3] - v[4], total)
    return out


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """Cores' worth of CPU that *other* processes use now, over this process's cores.

    A ``sample_s`` look at ``/proc/stat`` (this process's own CPU time in it subtracted); the
    1-minute load average where there is no ``/proc/stat``.
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        before, own0 = _cpu_times(), time.process_time()
        time.sleep(sample_s)
        after, own1 = _cpu_times(), time.process_time()
    except (OSError, ValueError):
        try:
            return max(0.0, os.getloadavg()[0])
        except OSError:
            return 0.0
    busy = total = 0
    for cpu in after:
        if cpu in before and (cpus is None or cpu in cpus):
            busy += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
    if total <= 0:
        return 0.0
    cores = len(cpus) if cpus is not None else len(after)
    per_core_s = total / cores / os.sysconf("SC_CLK_TCK")  # wall seconds the sample spanned
    own = (own1 - own0) / per_core_s if per_core_s > 0 else 0.0  # this process's cores' worth
    return max(0.0, busy / total * cores - own)


def free_cores(busy: float | None = None) -> int:
    """Cores this process may use that other processes are not busy on (at least 1).

    ``busy``: cores' worth of other processes' CPU use (default: measured, :func:`busy_cores`).
    """
    cores = usable_cores()
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, math.floor(cores - busy + BUSY_SLACK)))


def choose_threads(requested: int | None = None, *, processes: int = 1) -> tuple[int, str]:
    """The torch thread count for a CPU run, and why, in words.

    ``requested`` (a ``--threads`` flag) wins; then ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` and a
    count set with ``torch.set_num_threads`` (kept as they are); else the free cores at this moment
    (:func:`free_cores`), shared among ``processes`` processes of one run on this machine.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return requested, "--threads"
    for name in THREAD_ENV:
        if os.environ.get(name, "").strip():
            return torch.get_num_threads(), f"{name}={os.environ[name].strip()}"
    now = torch.get_num_threads()
    if now not in torch_default_threads():
        return now, "torch.set_num_threads"
    cores = usable_cores()
    free = free_cores()
    threads = max(1, free // max(1, processes))
    why = f"{free} of {cores} core{'s' if cores > 1 else ''} free at the start"
    return threads, why + (f", shared by {processes} processes" if processes > 1 else "")


def torch_default_threads() -> set[int]:
    """The counts torch may start with on its own: the cores of the affinity set, all cores, or the
    physical cores (torch takes one thread per physical core where there is SMT)."""
    counts = {os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        cpus = os.sched_getaffinity(0)
        counts.add(len(cpus))
        physical = set()
        for cpu in cpus:
            base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
            try:
                physical.add((Path(base + "physical_package_id").read_text().strip(),
                              Path(base + "core_id").read_text().strip()))
            except OSError:
                break
        else:
            counts.add(max(1, len(physical)))
    return counts


class threads_for_run:
    """``with threads_for_run(n): ...`` sets torch's thread count for a run and restores it after,
    so that a later run in the same process chooses afresh."""

    def __init__(self, threads: int) -> None:
        self.threads, self.before = threads, torch.get_num_threads()

    def __enter__(self) -> "threads_for_run":
        if self.threads != self.before:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc) -> None:
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)


# ---------------------------------------------------------------------------- device and memory

def check_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a device that exists here; a ValueError
    that says what is there otherwise (``auto`` is CUDA when present, else the CPU)."""
    name = (name or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}: give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r} asked for but no CUDA device is available here: "
                             "use --device cpu (or auto)")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} asked for but this machine has {count} CUDA "
                             f"device{'s' if count > 1 else ''} (cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} asked for but MPS is not available here: use --device cpu")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: give auto, cpu, cuda or cuda:N")
    return device


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for new tensors on ``device`` (MemAvailable on the CPU); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
