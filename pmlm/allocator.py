"""Keep freed tensor memory in the process on Linux/glibc, so that a CPU training step stops page-faulting.

Not part of the method: a CPU speed setting. glibc's ``malloc`` serves large blocks with ``mmap``
and returns freed memory at the top of its heap to the operating system once more than a "trim
threshold" is free; both thresholds move with the sizes it has seen. A training step allocates
and frees the same large activations (attention scores, logits, FFN activations) every time;
when they are handed back to the kernel, the next step touches fresh pages again, and the kernel
zeroes every one of them. How much of that happens depends on the pattern of sizes: measured on
the targets' model (``benchmarks/step_cost.py``, 2 threads), a PMLM step took about 21,000 minor
page faults (80-100 MB of fresh pages) and 0.1-0.2 s of extra time per step, our MLM step almost
none. :func:`keep_freed_memory` fixes both thresholds high, which is what the allocators that
PyTorch's CPU tuning guide recommends (jemalloc, tcmalloc) do by design: memory a step frees is
reused by the next without page faults. The cost is that the process keeps its peak memory
(which a training process reaches on its first step anyway).

:func:`pmlm.train.train` calls it (``TrainConfig.keep_freed_memory``); the benchmarks call it once
per process, for every method alike (``--malloc default`` measures without it). Elsewhere than
glibc (macOS, Windows, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # blocks up to 32 MiB come from the heap (glibc's ceiling for this value)
TRIM_THRESHOLD = 2**30  # give memory back to the OS only when a GiB is free at the top of the heap

_APPLIED: dict[str, int] | None = None


def keep_freed_memory() -> dict[str, int] | None:
    """Raise glibc's mmap and trim thresholds for this process; the values set, or None if not glibc.

    Idempotent. Returns ``{"mmap_threshold": ..., "trim_threshold": ...}`` when both were accepted.
    """
    global _APPLIED
    if _APPLIED is not None:
        return dict(_APPLIED)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mmap first: setting the trim threshold alone would freeze the mmap threshold at its 128 KiB
    # start, and then every large tensor would be a fresh mapping (far worse than the default)
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return None
    _APPLIED = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return dict(_APPLIED)


def describe() -> str:
    """One line for benchmark headers and logs: what the allocator setting of this process is."""
    if _APPLIED is None:
        return "malloc: default thresholds"
    return (f"malloc: mmap threshold {_APPLIED['mmap_threshold'] // 2**20} MiB, "
            f"trim threshold {_APPLIED['trim_threshold'] // 2**20} MiB (pmlm.allocator)")
