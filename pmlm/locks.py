"""One writer per folder: a lock file that names its holder (``fcntl.flock``).

A ``prepare`` writing a directory holds ``DIR/prepare.lock``; whoever else wants that directory
(a second ``prepare``, a training run) asks :func:`holder` and is refused with the holder's pid.
A training run holds ``<out_dir>/run.lock`` the same way (:func:`pmlm.train.run_dir.run_lock`), so
that a second run into its folder is refused instead of interleaving its metrics.
The lock is the kernel's, on an open file: it ends with the process, so a killed writer leaves a
stale file, never a held lock, and the next writer simply takes it. The refusal names the
holder's pid and, where ``/proc`` says, its command line.
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


def describe(pid: int | str | None) -> str:
    """``pid 123: python -m pmlm.train --out-dir runs/a`` where the system says what it runs."""
    text = f"pid {pid or '?'}"
    try:
        command = Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, TypeError):
        return text
    command = " ".join(command.split())
    return f"{text}: {command[:160]}{'...' if len(command) > 160 else ''}" if command else text


@contextlib.contextmanager
def hold(path: str | Path, what: str):
    """Hold the lock at ``path`` for the block (which gets its file descriptor: a forked child
    should close it, or it holds the lock too); a ValueError naming the holder if it is taken."""
    path = Path(path)
    for _ in range(100):  # bounded: each turn loses only to a holder that let go between open and lock
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read().strip()
            f.close()
            raise ValueError(f"{path.parent} is in use by another {what} ({describe(pid)}); wait for it "
                             "to finish or choose another folder") from None
        try:  # the file we locked must still be the one at `path` (a leaving holder unlinks it)
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    else:
        raise ValueError(f"{path.parent}: could not take {path.name} (it keeps being replaced); try again")
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
