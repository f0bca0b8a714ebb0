"""``make docs``: stage README.md, docs/, the notebooks and the figures, then build the site with MkDocs.

MkDocs reads pages from one folder; the project keeps them where they belong (README at the root,
guides in docs/, notebooks in notebooks/), so they are copied into ``build/site-src`` in the same
relative places (the README becomes ``index.md``), which keeps every relative link and figure path
of the sources valid. The site lands in ``build/site``; open ``build/site/index.html``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "build" / "site-src"
PAGES = ["docs", "notebooks", "figures", "benchmarks/RESULTS.md", "pmlm/corpora/README.md"]


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


def main() -> None:
    stage()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's end-of-life banner, not about the site
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "-f", str(ROOT / "mkdocs.yml")],
                   check=True, cwd=ROOT, env=env)
    index = ROOT / "build" / "site" / "index.html"
    if not index.is_file():
        raise SystemExit("make docs: mkdocs wrote no build/site/index.html")
    print(f"site written to {index.parent}/ (open {index.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
