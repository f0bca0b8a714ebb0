"""One writer per folder: a lock file that names its holder (``fcntl.flock``).

A ``prepare`` writing a directory holds ``DIR/prepare.lock``; whoever else wants that directory
(a second ``prepare``, a training run) asks :func:`holder` and is refused with the holder's pid.
The lock is the kernel's, on an open file: it ends with the process, so a killed writer leaves a
stale file, never a held lock, and the next writer simply takes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def holder(path: str | Path) -> int | None:
    """The pid holding the lock at ``path``, or None if no live process holds it."""
    path = Path(path)
    try:
        f = open(path, "r")
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


@contextlib.contextmanager
def hold(path: str | Path, what: str):
    """Hold the lock at ``path`` for the block (which gets its file descriptor: a forked child
    should close it, or it holds the lock too); a ValueError naming the holder if it is taken."""
    path = Path(path)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        pid = f.read().strip()
        f.close()
        raise ValueError(f"{path.parent} is in use by another {what} (pid {pid or '?'}); wait for it "
                         "to finish or choose another folder") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield f.fileno()
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
