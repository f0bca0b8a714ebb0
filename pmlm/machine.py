"""What a measurement ran on: CPU model, cores, threads, load, Python and torch, date.

Every recorded result (``results/``, ``benchmarks/RESULTS.md``, a shipped model's
``training.json``) carries this record, so that a number always comes with the machine, the thread
count and the day that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess

import torch


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
