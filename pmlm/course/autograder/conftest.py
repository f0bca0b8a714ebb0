"""The grader's pytest setup: markers task1..task7 and points, the student's package, a results file.

Run by ``grade.py`` with ``PYTHONPATH`` set to the copy being graded (``PMLM_GRADE_ROOT``), so
``import pmlm`` is the student's package; this folder's own modules (``oracles``, ``public_checks``)
are put on ``sys.path`` here. Every test's outcome, task, points and first line of failure are
written as JSON to ``PMLM_GRADE_RESULTS``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

try:
    from hypothesis import settings

    # every student meets the same cases: derandomised, no example database, no deadline
    settings.register_profile("grading", derandomize=True, database=None, deadline=None, max_examples=60,
                              print_blob=False)
    settings.load_profile("grading")
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass

RESULTS: list[dict] = []


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        marker = item.get_closest_marker("points")
        RESULTS.append({"test": item.name, "task": _task(item), "points": marker.args[0] if marker else 1,
                        "passed": report.passed,
                        "message": "" if report.passed or call.excinfo is None else _first_line(call.excinfo)})


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("PMLM_GRADE_RESULTS")
    if path:
        Path(path).write_text(json.dumps(RESULTS, indent=1))
