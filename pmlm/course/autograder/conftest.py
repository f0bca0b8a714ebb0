"""The grader's pytest setup: markers task1..task7 and points, the student's package, the results channel.

Run by ``grade.py`` with ``PYTHONPATH`` set to the copy being graded (``PMLM_GRADE_ROOT``), so
``import pmlm`` is the student's package; this folder's own modules (``oracles``, ``public_checks``)
are put on ``sys.path`` here.

The results go back over a pipe that ``grade.py`` holds the reading end of, never through a file
(a file can be rewritten after the fact, by an ``atexit`` hook for instance). When this module is
imported, before the graded package is, it reads a random nonce from a second pipe
(``PMLM_GRADE_NONCE_FD``, then closed) and takes the results pipe (``PMLM_GRADE_FD``); both
variables are removed from the environment. It then writes one line per record, ``NONCE JSON``:

* ``{"kind": "collected", "tests": [{"id", "test", "task", "points"}, ...]}`` once collection ends;
* ``{"kind": "result", "id", "passed", "message"}`` as each test's outcome is reported;
* ``{"kind": "end", "exitstatus"}`` when the session finishes, after which the pipe is closed.

The grader counts nothing after the end record, so code that runs later cannot change the grade;
what this does not protect against is in ``grade.py``'s docstring. Without the two variables (pytest
run by hand on this folder) the tests run as ordinary tests and nothing is sent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _channel() -> tuple[bytes, int | None]:
    """(nonce, fd of the results pipe) that grade.py passed, read before any graded code runs."""
    nonce_fd, fd = os.environ.pop("PMLM_GRADE_NONCE_FD", None), os.environ.pop("PMLM_GRADE_FD", None)
    if nonce_fd is None or fd is None:
        return b"", None
    with os.fdopen(int(nonce_fd), "rb") as f:  # the grader wrote the nonce and closed its end: read once, gone
        nonce = f.readline().strip()
    return nonce, int(fd)


_NONCE, _FD = _channel()


def _send(record: dict) -> None:
    global _FD
    if _FD is None:
        return
    data = _NONCE + b" " + json.dumps(record).encode() + b"\n"
    try:
        while data:
            data = data[os.write(_FD, data):]
    except OSError:  # the grader has gone (or stopped listening): the run can no longer count
        _FD = None


try:
    from hypothesis import settings

    # every student meets the same cases: derandomised, no example database, no deadline
    settings.register_profile("grading", derandomize=True, database=None, deadline=None, max_examples=60,
                              print_blob=False)
    settings.load_profile("grading")
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)  # the graded models are tiny; tasks run side by side
    for n in range(1, 8):
        config.addinivalue_line("markers", f"task{n}: grades task {n}")
    config.addinivalue_line("markers", "points(n): what the test is worth")
    root = os.environ.get("PMLM_GRADE_ROOT")
    if root:
        import pmlm

        if not Path(pmlm.__file__).resolve().is_relative_to(Path(root).resolve()):
            raise pytest.UsageError(f"the graded package should come from {root}, but pmlm is {pmlm.__file__}")


def _task(item) -> int | None:
    for n in range(1, 8):
        if item.get_closest_marker(f"task{n}"):
            return n
    return None


def _points(item) -> int:
    marker = item.get_closest_marker("points")
    return marker.args[0] if marker else 1


def _first_line(excinfo) -> str:
    err = excinfo.value
    if isinstance(err, NotImplementedError):
        return f"not implemented yet ({err})"
    text = str(err).strip() or type(err).__name__
    for prefix in ("Task ",):
        if text.startswith(prefix) and ": " in text:
            text = text.split(": ", 1)[1]
    line = text.splitlines()[0]
    if not isinstance(err, AssertionError):
        line = f"{type(err).__name__}: {line}"
    return line[:300]


def pytest_collection_finish(session):
    _send({"kind": "collected", "tests": [{"id": item.nodeid, "test": item.name, "task": _task(item),
                                           "points": _points(item)} for item in session.items]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.passed:
            message = ""
        elif report.when == "setup" and report.skipped:
            message = "skipped before it ran: a skipped test earns nothing"
        else:
            message = "failed" if call.excinfo is None else _first_line(call.excinfo)
        _send({"kind": "result", "id": item.nodeid, "passed": report.passed, "message": message})


def pytest_sessionfinish(session, exitstatus):
    global _FD
    _send({"kind": "end", "exitstatus": int(exitstatus)})
    if _FD is not None:
        os.close(_FD)  # nothing after the end record counts, and nothing can be written to this end now
        _FD = None
