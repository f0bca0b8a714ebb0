"""An "Open in Colab" badge and an install cell for every notebook: ``python -m pmlm.course colab``.

The badge opens the notebook from the project's repository on GitHub (``[project.urls] Repository``
in ``pyproject.toml``; a fork passes ``--repo https://github.com/OWNER/NAME``). The install cell
runs only inside Colab (``"google.colab" in sys.modules``): it clones that repository into
``/content/pmlm`` (notebooks 5 and 6 read the committed ``results/``, which a wheel does not carry)
and installs it, editable, with its ``notebooks`` extra, which resolves the ranges of
``pyproject.toml`` against what Colab has (its own CUDA torch included), never the torch pin of
the lock file. Elsewhere
the cell does nothing, so nbval and a local Jupyter run it harmlessly.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- colab-badge -->"
INSTALL_ID = "colab-install"


def repository(root: Path = ROOT) -> str:
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        raise ValueError("pyproject.toml has no [project.urls] Repository; pass --repo https://github.com/OWNER/NAME")
    return urls["Repository"].rstrip("/")


def owner_name(repo: str) -> str:
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(\.git)?", repo)
    if not match:
        raise ValueError(f"{repo!r} is not a GitHub repository URL (https://github.com/OWNER/NAME)")
    return match.group(1)


def badge(notebook: str, repo: str, branch: str = "main") -> str:
    url = f"https://colab.research.google.com/github/{owner_name(repo)}/blob/{branch}/notebooks/{notebook}"
    return f"{MARK}[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})\n\n"


def install_source(repo: str) -> str:
    return ("# In Colab only: clone the repository (notebooks 5 and 6 read its committed results/)\n"
            "# and install it, editable, with its notebooks extra under pyproject's ranges, so Colab keeps\n"
            "# its own torch; anywhere else this cell does nothing.\n"
            "import os\n"
            "import sys\n\n"
            "if \"google.colab\" in sys.modules:\n"
            "    if not os.path.isdir(\"/content/pmlm\"):\n"
            f"        !git clone --quiet --depth 1 {repo} /content/pmlm\n"
            "    %pip install --quiet -e \"/content/pmlm[notebooks]\"\n"
            "    sys.path.insert(0, \"/content/pmlm\")  # an editable install is on the path only after a restart\n"
            "    os.chdir(\"/content/pmlm/notebooks\")\n")


def add_to_notebook(path: Path, repo: str) -> None:
    """Put the badge at the top of the first cell and the install cell second (idempotent)."""
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    text = "".join(first["source"])
    if text.startswith(MARK):
        text = text.split("\n\n", 1)[1]
    first["source"] = (badge(path.name, repo) + text).splitlines(keepends=True)
    cell = {"cell_type": "code", "execution_count": None, "id": INSTALL_ID, "metadata": {}, "outputs": [],
            "source": install_source(repo).splitlines(keepends=True)}
    existing = [i for i, c in enumerate(nb["cells"]) if c.get("id") == INSTALL_ID]
    if existing:
        cell["execution_count"] = nb["cells"][existing[0]].get("execution_count")
        nb["cells"][existing[0]] = cell
    else:
        nb["cells"].insert(1, cell)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(repo: str | None = None, notebooks: Path = ROOT / "notebooks") -> list[Path]:
    repo = (repo or repository()).rstrip("/")
    owner_name(repo)
    paths = sorted(notebooks.glob("*.ipynb"))
    for path in paths:
        add_to_notebook(path, repo)
    return paths
