"""pmlm.allocator: the glibc thresholds are set once, reported, and never required."""

import platform
import subprocess
import sys

import pytest

from pmlm import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_keep_freed_memory_sets_both_thresholds_once():
    code = ("from pmlm import allocator as a; print(a.describe()); s = a.keep_freed_memory(); "
            "print(s == a.keep_freed_memory(), s['mmap_threshold'], s['trim_threshold']); print(a.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "malloc: default thresholds"
    assert out[1] == f"True {allocator.MMAP_THRESHOLD} {allocator.TRIM_THRESHOLD}"
    assert "32 MiB" in out[2] and "1024 MiB" in out[2]


CHURN = """
import resource, sys, torch
from pmlm.allocator import keep_freed_memory
if sys.argv[1] == "tuned":
    keep_freed_memory()
def step():  # a training step's pattern: many large temporaries, all freed at its end
    xs = [torch.ones(2_000_000) for _ in range(10)]  # 10 x 8 MB
    return float(sum(x[0] for x in xs))
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")
def test_freed_memory_is_reused_without_page_faults():
    """With the setting, a step's freed temporaries are reused by the next without fresh pages."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)
    pages = 5 * 10 * 8_000_000 // 4096  # five steps of fresh pages
    # the least of three runs: on a loaded machine one run now and then faults in a few thousand pages
    # (about 6% of them) where the others fault none; glibc's defaults fault in nearly all of them
    tuned = min(faults("tuned") for _ in range(3))
    assert tuned < pages // 20, f"{tuned} page faults for {pages} pages of temporaries"
    default = faults("default")  # glibc's own thresholds hand the memory back and fault it in again
    if default < pages // 2:
        pytest.skip(f"this glibc's default thresholds took only {default} faults: the pattern shows nothing")


def test_off_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator, "_APPLIED", None)
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is None
    assert allocator.describe() == "malloc: default thresholds"
