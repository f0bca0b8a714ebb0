"""The notebooks are committed with their outputs and wired into ``make test``; the figures exist.

nbval itself (``pyproject.toml``: ``testpaths`` and ``addopts``) re-runs every notebook and compares
the cells marked ``# NBVAL_CHECK_OUTPUT``; these tests check what nbval cannot: that the stored
outputs are there for GitHub readers, that each notebook has the promised frame (what you will learn,
the paper's section, the hardware of the stored run, exercises with checks), and that every picture
the README or a notebook shows is in the repository.
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_blockwise_masking", "02_pseudo_masks", "03_one_pass_two_objectives", "04_pretraining",
         "05_finetuning_and_generation", "06_ablation"]
CHECK = "# NBVAL_CHECK_OUTPUT"


def load(name):
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())


def source(cell):
    return "".join(cell["source"])


def test_the_notebooks_are_the_six_of_the_sequence():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_with_the_outputs_of_a_full_run(name):
    nb = load(name)
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and source(c).strip()]
    not_run = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not not_run, f"{name}: code cells {not_run} have no stored run; execute the notebook and save it"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: cells were not run top to bottom in one go"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{name}: stored outputs hold an error: {errors[0].get('ename')}"
    images = [o for c in code for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert images, f"{name}: no stored figure"
    for c in code:
        if source(c).startswith(CHECK):
            assert c["outputs"], f"{name}: a checked cell has no stored output to compare:\n{source(c)[:200]}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_opens_with_goals_paper_and_hardware_and_ends_with_exercises(name):
    cells = load(name)["cells"]
    intro = source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and "What you will learn" in intro
    assert re.search(r"section \d", intro), f"{name}: the intro names no section of the paper"
    assert "Stored outputs" in intro, f"{name}: the intro does not say which hardware produced the outputs"
    assert "Run time" in intro and "CPU" in intro and "GPU" in intro, f"{name}: the intro states no run time"
    assert "Open in Colab" in intro, f"{name}: no Colab badge (python -m pmlm.course colab)"
    install = source(cells[1])
    assert '"google.colab" in sys.modules' in install and "pmlm[notebooks]" in install, f"{name}: no Colab install cell"
    assert "requirements-lock" not in install and "torch==" not in install
    text = "\n".join(source(c) for c in cells)
    assert "## Exercises" in text and "assert" in text.split("## Exercises")[1]
    assert "import pmlm" in text or "from pmlm" in text
    assert any(source(c).startswith(CHECK) for c in cells), f"{name}: no cell is compared strictly"


def test_pytest_runs_the_notebooks_with_nbval():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks" in opts["testpaths"]
    assert "--nbval-lax" in opts["addopts"] and "--nbval-cell-timeout" in opts["addopts"]


def shown_figures():
    """(where, path) of every picture the README and the notebooks' markdown show."""
    found = []
    readme = ROOT / "README.md"
    for ref in re.findall(r"(?:\]\(|src=[\"'])([^)\"']+\.(?:png|svg|jpg))", readme.read_text()):
        found.append(("README.md", ROOT / ref))
    for nb in NOTEBOOKS.glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                for ref in re.findall(r"\]\(([^)]+\.(?:png|svg|jpg))\)", source(cell)):
                    if not re.match(r"https?://", ref):  # a web badge is not a repository figure
                        found.append((nb.name, NOTEBOOKS / ref))
    return [(where, path) for where, path in found if not re.match(r"https?://", str(path))]


def test_every_figure_shown_is_in_the_repository():
    missing = [f"{where}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
               for where, path in shown_figures() if not path.resolve().is_file()]
    assert not missing, "missing figures (run `python -m pmlm.figures`): " + ", ".join(missing)


def test_the_method_figures_are_committed():
    from pmlm.figures import METHOD_FIGURES

    missing = [n for n in METHOD_FIGURES if not (ROOT / "figures" / f"{n}.png").is_file()]
    assert not missing, f"figures/ lacks {missing}; run `python -m pmlm.figures`"
