"""nbval runs the notebooks in smoke mode unless told otherwise.

``make test`` runs every notebook here with nbval (``pyproject.toml``: ``testpaths``, ``addopts``).
Training cells read :func:`pmlm.train.smoke_mode` (``PMLM_SMOKE=1`` or ``CI`` set), so that all the
notebooks together finish in a few minutes on 2 CPU cores. The kernel inherits the environment of
pytest when a notebook starts, so we set ``PMLM_SMOKE=1`` there, for the notebooks only and only when
neither variable is set: ``PMLM_SMOKE=0 pytest notebooks`` runs the full-size cells.
"""

import os

import pytest

_SET_HERE = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _SET_HERE
    if "PMLM_SMOKE" not in os.environ and "CI" not in os.environ:
        os.environ["PMLM_SMOKE"] = "1"  # before nbval starts the notebook's kernel
        _SET_HERE = True


def pytest_sessionfinish(session, exitstatus):
    if _SET_HERE:
        os.environ.pop("PMLM_SMOKE", None)
