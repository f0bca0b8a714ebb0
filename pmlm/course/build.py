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

A build never deletes or overwrites what it did not write. It refuses a non-empty OUT that holds no
manifest of an earlier build (``OUT/.pmlm-course-build.json``: every file it wrote, with its SHA-256).
With ``force=True`` (``--force``) it replaces the files of that earlier build, but only the ones
still as it left them: a file added since is kept, and a file edited since (a student's work, a
teacher's change to a test) stops the build before anything is touched. The new build is written
to a staging folder inside OUT first, each file then renamed into place, the manifest last; a lock
file (``OUT/.pmlm-course-build.lock``, naming its holder) keeps two builds out of one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
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
MANIFEST = ".pmlm-course-build.json"  # what a build wrote, file by file with hashes: all --force may replace
LOCK = ".pmlm-course-build.lock"  # one build per folder at a time; says whose it is
EXERCISE_STUB = "# YOUR CODE HERE (then run the check below)\nraise NotImplementedError(\"Exercise: write your answer here\")\n"


def repository_files(root: Path = ROOT) -> list[str]:
    """The repository's tracked files (a teacher's uncommitted scratch files stay out of the student
    copy), or, outside git, every file but caches and build output."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=root,
                             capture_output=True, check=True).stdout
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
    """The standalone grader folder (a new one at ``out``): tests, references, public checks, task list, solutions."""
    if not (AUTOGRADER / "grade.py").is_file():
        raise ValueError("this copy of pmlm has no grader (a student copy leaves it out): run "
                         "python AUTOGRADER/grade.py DIR with the autograder folder of the build")
    if out.exists():
        raise ValueError(f"{out} exists: the autograder is written to a new folder (python -m pmlm.course build "
                         "replaces an earlier one with --force)")
    shutil.copytree(AUTOGRADER, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(PACKAGE / "check.py", out / "public_checks.py")
    shutil.copy(Path(__file__).resolve().parent / "tasks.py", out / "tasks.py")
    for task in TASKS.values():
        for rel, _ in task.functions:
            (out / "solutions" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PACKAGE / rel, out / "solutions" / rel)
    return out


def write_student(student: Path, chosen: list[Task], root: Path = ROOT) -> Path:
    """The student copy, written to a new folder ``student``."""
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
    return student


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def locked(out: Path):
    """Hold ``out``'s build lock (a file that names its holder) while the block runs."""
    lock = out / LOCK
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        holder = lock.read_text(errors="replace").strip() if lock.is_file() else "unknown"
        raise ValueError(f"another build is writing {out} ({holder}); if it is gone, delete {lock}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"python -m pmlm.course build, pid {os.getpid()} on {socket.gethostname()}, "
                f"since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def earlier_build(out: Path, force: bool) -> dict[str, str]:
    """The files (relative path -> SHA-256) of the build ``out`` holds; {} for an empty folder.

    A ValueError, before anything is written, for a non-empty folder with no manifest, and for an
    earlier build without ``force``."""
    if not [p for p in out.iterdir() if p.name != LOCK]:
        return {}
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise ValueError(f"{out} is not empty and was not written by python -m pmlm.course build (it has no "
                         f"{MANIFEST}): choose a new or empty folder; nothing was changed")
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            raise TypeError
        if any(Path(k).is_absolute() or ".." in Path(k).parts for k in files):  # only paths inside OUT
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{manifest} is not a build manifest: remove {out} yourself or choose another folder; "
                         "nothing was changed") from None
    if not force:
        tasks = ", ".join(map(str, data.get("tasks", [])))
        raise ValueError(f"{out} holds an earlier build (tasks {tasks}): pass --force to replace the files it wrote "
                         "(files added since are kept; one edited since stops the build); nothing was changed")
    return files


def check_replaceable(out: Path, old: dict[str, str], new: dict[str, str]) -> None:
    """Every path the new build writes is free, or holds the earlier build's file as it left it (or the new one)."""
    blocked = []
    for rel in sorted(new):
        target = out / rel
        if not os.path.lexists(target):
            continue
        if target.is_symlink() or not target.is_file():
            blocked.append(f"{rel} (not a plain file)")
        elif sha256(target) not in (old.get(rel), new[rel]):
            blocked.append(f"{rel} ({'edited since the build' if rel in old else 'not written by the build'})")
    if blocked:
        raise ValueError(f"--force would overwrite {len(blocked)} file{'s' * (len(blocked) > 1)} in {out} that the "
                         f"earlier build did not leave there as they are, first {blocked[0]}: move "
                         f"{'them' if len(blocked) > 1 else 'it'} away or choose another folder; nothing was changed")


def move_into_place(staging: Path, out: Path, old: dict[str, str], new: dict[str, str]) -> None:
    """Rename the staged files into ``out``; delete the earlier build's files the new one drops, if unchanged."""
    for rel in sorted(new):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, out / rel)
    for rel in sorted(set(old) - set(new)):
        target = out / rel
        if target.is_file() and not target.is_symlink() and sha256(target) == old[rel]:
            target.unlink()
            parent = target.parent
            while parent != out and not any(parent.iterdir()):  # folders it emptied, up to OUT
                parent.rmdir()
                parent = parent.parent


def build(out: str | Path, tasks: list[int], root: Path = ROOT, force: bool = False) -> dict[str, Path]:
    """Write ``out/student`` and ``out/autograder``; return their paths.

    Refuses (ValueError, nothing written) a non-empty ``out`` it did not make; replaces its own
    earlier build only with ``force``, and only the files still as it left them."""
    if regions is None:
        raise ValueError("this copy of pmlm has no course builder (a student copy leaves the grader out); "
                         "build from the full repository")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder")
    chosen = [TASKS[n] for n in tasks]
    out.mkdir(parents=True, exist_ok=True)
    with locked(out):
        old = earlier_build(out, force)
        staging = Path(tempfile.mkdtemp(prefix=".pmlm-course-staging-", dir=out))
        try:
            write_student(staging / "student", chosen, root)
            build_autograder(staging / "autograder")
            new = {p.relative_to(staging).as_posix(): sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
            check_replaceable(out, old, new)
            move_into_place(staging, out, old, new)
            manifest = {"written_by": "python -m pmlm.course build", "tasks": list(tasks), "files": new}
            tmp = out / f"{MANIFEST}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
            os.replace(tmp, out / MANIFEST)  # last: a build cut short leaves the earlier manifest
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"student": out / "student", "autograder": out / "autograder"}
