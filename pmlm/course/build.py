"""``python -m pmlm.course build OUT [--tasks 1,4]``: the student copy and the autograder.

``OUT/student/`` is the repository as a student receives it:

* every chosen task's solution regions (:mod:`pmlm.course.tasks`) replaced by
  ``raise NotImplementedError("Task N: ... see notebook ..., section ...")`` at the region's
  indentation, so the package still imports and everything downstream (notebooks, training,
  fine-tuning) runs on the student's code once a task is done;
* the notebooks with the exercise answers (the lines between the solution markers of a cell)
  replaced by a marked place to work, the cell tagged ``exercise`` (and ``raises-exception``, so that
  nbval runs a student notebook through its unanswered exercises);
* no oracles: the grader folder ``pmlm/course/autograder/`` and the repository's ``tests/`` (whose
  references would give answers away) are left out; ``tests/test_public_checks.py`` runs
  :mod:`pmlm.check` for the chosen tasks instead;
* ``ASSIGNMENT.md`` (the tasks, where each is taught, points) and a GitHub Classroom workflow
  (``.github/workflows/classroom.yml``, one step per task with its points).

``OUT/autograder/`` holds the grading tests, their references (``oracles.py``), the public checks,
the reference files of every task (``solutions/``) and ``grade.py``, which runs on its own:
``python OUT/autograder/grade.py STUDENT_DIR``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from pmlm.course.tasks import TASKS, Task, stub_message

try:
    from pmlm.course.autograder import regions
except ImportError:  # a student copy: the grader and its tools are left out
    regions = None

PACKAGE = Path(__file__).resolve().parents[1]  # pmlm/
ROOT = PACKAGE.parent  # the repository
AUTOGRADER = Path(__file__).resolve().parent / "autograder"
LEFT_OUT = ("tests/", "pmlm/course/autograder/", "runs/", "build/", ".venv/")
EXERCISE_STUB = "# YOUR CODE HERE (then run the check below)\nraise NotImplementedError(\"Exercise: write your answer here\")\n"


def repository_files(root: Path = ROOT) -> list[str]:
    """The repository's tracked files (git), or every file but caches and build output."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                 and not any(part in (".git", "__pycache__") for part in p.parts)]
    return sorted(f for f in files if not f.startswith(LEFT_OUT) and (root / f).is_file())


def stub_tasks(root: Path, tasks: list[Task]) -> None:
    """Replace the solution regions of ``tasks`` in the package under ``root``."""
    for task in tasks:
        for rel, name in task.functions:
            path = root / "pmlm" / rel
            path.write_text(regions.stub_function(path.read_text(), name, stub_message(task), f"pmlm/{rel}"))


def strip_notebook(path: Path) -> int:
    """Replace the marked answers in a notebook's code cells; return how many cells changed."""
    nb = json.loads(path.read_text())
    changed = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines(keepends=True)
        found = regions.regions(lines, path=str(path))
        if not found:
            continue
        for begin, end in reversed(found):
            indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
            lines[begin:end + 1] = [indent + line for line in EXERCISE_STUB.splitlines(keepends=True)]
        cell["source"] = "".join(lines).splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        for tag in ("exercise", "raises-exception"):  # nbval runs the student notebook through its exercises
            if tag not in tags:
                tags.append(tag)
        cell["metadata"]["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                        "grade_id": f"{path.stem}-{cell.get('id', changed)}", "schema_version": 3}
        changed += 1
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


def public_checks_test(tasks: list[Task]) -> str:
    names = ", ".join(str(t.number) for t in tasks)
    return f'''"""The public checks of the tasks in this assignment ({names}): pmlm.check on your code.

The grade comes from the autograder, which runs these checks and more; passing them is a good sign,
not a grade.
"""

import pytest

import pmlm.check


@pytest.mark.parametrize("task", [{names}])
def test_public_checks(task):
    pmlm.check.BY_TASK[task]()
'''


def assignment(tasks: list[Task]) -> str:
    lines = ["# Assignment: the pseudo-masked language model, implemented by you", "",
             "Implement each task below in the package itself: the function raises NotImplementedError",
             "with the task's number until you write it. Everything downstream (the notebooks, training,",
             "fine-tuning) then runs on your code. Check a task in a notebook or a shell with",
             "`pmlm.check.<function>()` (for instance `python -c \"import pmlm.check as c; c.may_attend()\"`),",
             "or all of them with `python -m pytest tests/test_public_checks.py`. The autograder runs these",
             "checks and hidden ones (random cases against independent references, leak tests, decoding",
             "against recomputation), each task on its own.", "",
             "| task | implement | taught in | paper | expected time | points |", "|---|---|---|---|---|---|"]
    for t in tasks:
        files = ", ".join(f"`pmlm/{rel}: {name}`" for rel, name in t.functions if not rel.startswith("hf_remote"))
        lines.append(f"| {t.number} | {t.title} ({files}) | {t.where} | {t.paper} | {t.minutes} min | {t.points} |")
    lines += ["", "Task 6 also stubs the copy of the buckets in `pmlm/hf_remote/modeling_pmlm.py` (the standalone",
              "Hugging Face module); write it there too if you export a model.", ""] if any(t.number == 6 for t in tasks) else [""]
    return "\n".join(lines)


def classroom_workflow(tasks: list[Task]) -> str:
    """A GitHub Classroom autograding workflow: one step per task with its points."""
    steps, reporters = [], []
    for t in tasks:
        steps.append(f"""      - name: Task {t.number}
        id: task{t.number}
        uses: classroom-resources/autograding-command-grader@v1
        with:
          test-name: "Task {t.number}: {t.title.split(' (')[0]}"
          setup-command: ""
          command: python .autograder/grade.py . --tasks {t.number}
          timeout: 10
          max-score: {t.points}""")
        reporters.append(f"TASK{t.number}_RESULTS: \"${{{{steps.task{t.number}.outputs.result}}}}\"")
    runners = ",".join(f"task{t.number}" for t in tasks)
    return f"""# GitHub Classroom autograding for the pmlm assignment (written by python -m pmlm.course build).
# Put the autograder/ folder of the build at .autograder/ in the template repository (or fetch it in
# the setup step from a repository of your own) and protect it with Classroom's protected paths.
name: Autograding
on: [push, workflow_dispatch, repository_dispatch]
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: python -m pip install -e ".[test]"
{chr(10).join(steps)}
      - name: Report
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
          {(chr(10) + '          ').join(reporters)}
        with:
          runners: {runners}
"""


def build_autograder(out: Path) -> Path:
    """The standalone grader folder: tests, references, public checks, task list, solutions."""
    if not (AUTOGRADER / "grade.py").is_file():
        raise ValueError("this copy of pmlm has no grader (a student copy leaves it out): run "
                         "python AUTOGRADER/grade.py DIR with the autograder folder of the build")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(AUTOGRADER, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(PACKAGE / "check.py", out / "public_checks.py")
    shutil.copy(Path(__file__).resolve().parent / "tasks.py", out / "tasks.py")
    for task in TASKS.values():
        for rel, _ in task.functions:
            (out / "solutions" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PACKAGE / rel, out / "solutions" / rel)
    return out


def build(out: str | Path, tasks: list[int], root: Path = ROOT) -> dict[str, Path]:
    """Write ``out/student`` and ``out/autograder``; return their paths."""
    if regions is None:
        raise ValueError("this copy of pmlm has no course builder (a student copy leaves the grader out); "
                         "build from the full repository")
    out = Path(out)
    student = out / "student"
    if student.exists():
        if not (student / "ASSIGNMENT.md").is_file():
            raise ValueError(f"{student} exists and is not a student copy written by this command; "
                             "choose another OUT")
        shutil.rmtree(student)
    chosen = [TASKS[n] for n in tasks]
    for rel in repository_files(root):
        (student / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, student / rel)
    stub_tasks(student, chosen)
    for nb in sorted((student / "notebooks").glob("*.ipynb")):
        strip_notebook(nb)
    (student / "tests").mkdir(exist_ok=True)
    (student / "tests" / "test_public_checks.py").write_text(public_checks_test(chosen))
    (student / "ASSIGNMENT.md").write_text(assignment(chosen))
    workflow = student / ".github" / "workflows" / "classroom.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(classroom_workflow(chosen))
    grader = build_autograder(out / "autograder")
    return {"student": student, "autograder": grader}
