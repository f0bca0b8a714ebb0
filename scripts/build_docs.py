"""``make docs``: stage README.md, docs/, the notebooks and the figures, then build the site with MkDocs.

MkDocs reads pages from one folder; the project keeps them where they belong (README at the root,
guides in docs/, notebooks in notebooks/), so they are copied into ``build/site-src`` in the same
relative places (the README becomes ``index.md``), which keeps every relative link and figure path
of the sources valid. The site lands in ``build/site``; open ``build/site/index.html``.

The site works from ``file://`` with no network: the notebooks' widgets render from the widget state
saved in each notebook, with the widget renderer (``@jupyter-widgets/html-manager``'s ``embed.js``
and its fonts) that the pages would otherwise load from a CDN, and the search runs through the
``iframe-worker`` shim, also a CDN script otherwise. Both come from the npm registry at the versions
pinned in ``scripts/site-js/package-lock.json`` (``npm ci`` into ``build/site-js``, once per lock),
are copied into ``build/site/assets`` and the pages are pointed at those copies; the build fails if
a page still loads a script from the network. ``tests/browser/`` opens the site with the network
blocked and finds every widget rendered.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "build" / "site-src"
PAGES = ["docs", "notebooks", "figures", "benchmarks/RESULTS.md", "pmlm/corpora/README.md"]
SITE = ROOT / "build" / "site"
JS_PINS = ROOT / "scripts" / "site-js"  # package.json and package-lock.json: what the site carries
JS = ROOT / "build" / "site-js"  # where npm ci installs them
# the CDN scripts that the pages name, and the copy in build/site that replaces each
CDN_SCRIPTS = {
    "https://unpkg.com/@jupyter-widgets/html-manager@*/dist/embed-amd.js": "assets/widgets/embed.js",
    # nbconvert's fallback for widget state older than version 2; the notebooks save version 2
    "https://unpkg.com/@jupyter-js-widgets@*/dist/embed.js": "assets/widgets/embed.js",
    "https://unpkg.com/iframe-worker/shim": "assets/javascripts/iframe-worker-shim.js",
}


def stage() -> None:
    shutil.rmtree(SRC, ignore_errors=True)
    SRC.mkdir(parents=True)
    shutil.copyfile(ROOT / "README.md", SRC / "index.md")
    for name in PAGES:
        src, dst = ROOT / name, SRC / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copyfile(src, dst)


def install_js() -> Path:
    """``npm ci`` the pinned packages into build/site-js (again only when the lock changed)."""
    if shutil.which("npm") is None:
        raise SystemExit("make docs: npm is needed for the widget renderer of the site "
                         "(Node.js and npm: apt-get install nodejs npm)")
    lock = (JS_PINS / "package-lock.json").read_text()
    stamp = JS / ".installed-lock"
    if not (stamp.is_file() and stamp.read_text() == lock and (JS / "node_modules").is_dir()):
        JS.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(JS_PINS / name, JS / name)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, cwd=JS)
        stamp.write_text(lock)
    return JS / "node_modules"


def copy_js(modules: Path) -> None:
    """The widget renderer with its fonts, and the search's shim, into build/site/assets."""
    dist = modules / "@jupyter-widgets" / "html-manager" / "dist"
    widgets = SITE / "assets" / "widgets"
    widgets.mkdir(parents=True, exist_ok=True)
    for f in dist.iterdir():  # embed.js finds its fonts beside itself
        if f.name in ("embed.js", "embed.js.LICENSE.txt") or f.suffix in (".woff2", ".woff", ".ttf", ".eot", ".svg"):
            shutil.copyfile(f, widgets / f.name)
    shim = SITE / "assets" / "javascripts" / "iframe-worker-shim.js"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(modules / "iframe-worker" / "shim" / "index.js", shim)


def point_pages_at_copies() -> None:
    """Replace the CDN script addresses of every page with relative ones; fail if one is left."""
    left = []
    for page in SITE.rglob("*.html"):
        text = original = page.read_text(encoding="utf-8")
        up = os.path.relpath(SITE, page.parent).replace(os.sep, "/")
        for url, copy in CDN_SCRIPTS.items():
            text = text.replace(url, f"{up}/{copy}")
        if text != original:
            page.write_text(text, encoding="utf-8")
        left += [f"{page.relative_to(SITE)}: {src}" for src in re.findall(r"<script[^>]*\ssrc=\"(https?://[^\"]+)", text)]
    if left:
        raise SystemExit("make docs: pages still load scripts from the network:\n  " + "\n  ".join(left))


def main() -> None:
    modules = install_js()
    stage()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's end-of-life banner, not about the site
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "-f", str(ROOT / "mkdocs.yml")],
                   check=True, cwd=ROOT, env=env)
    index = SITE / "index.html"
    if not index.is_file():
        raise SystemExit("make docs: mkdocs wrote no build/site/index.html")
    copy_js(modules)
    point_pages_at_copies()
    print(f"site written to {index.parent}/ (open {index.relative_to(ROOT)}; it needs no network)")


if __name__ == "__main__":
    main()
