"""The browser tests' fixtures: Debian's Chromium under Playwright, and a JupyterLab server of their own.

``make browser-test`` runs these tests (``pytest -m browser tests/browser``); ``make test`` leaves
them out (``-m "not browser"`` in ``pyproject.toml``). They need Chromium at ``/usr/bin/chromium``
(``apt-get install chromium``, or ``PMLM_CHROMIUM`` for another binary) and the Playwright package
(``requirements-browser.txt``); Playwright's own browser downloads are never used.

Choices: Chromium starts with the flags that keep it from reaching for the network (no background
networking, component updates or sync) and a fresh profile. JupyterLab serves copies of the
notebooks from a temporary folder (so the repository's notebooks are never saved over), with
settings of its own: every cell kept in the page (no windowing, so that off-screen widgets exist),
no news or update checks, and ``CI=true`` so that the training cells run in smoke mode.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"  # screenshots of each widget at 1280 px
CHROMIUM = os.environ.get("PMLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen
LAB_NOTEBOOKS = ["01_blockwise_masking", "02_pseudo_masks", "04_pretraining"]
LAB_SETTINGS = {  # JupyterLab user settings: plugin id -> values
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A Chromium context (1280 x 800) in a fresh profile, closed at the end of the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("no Playwright: pip install -r requirements-browser.txt (make browser-test does)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PMLM_CHROMIUM)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(60_000)
        yield context
        context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server on copies of notebooks 1, 2 and 4: ``{"url", "token", "root"}``."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    for name in LAB_NOTEBOOKS:
        shutil.copyfile(ROOT / "notebooks" / f"{name}.ipynb", root / f"{name}.ipynb")
    for plugin, values in LAB_SETTINGS.items():
        path = base / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "CI": "true", "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces")}
    log = (base / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(base / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "root": root}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
