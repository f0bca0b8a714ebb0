"""The course kit proves itself: the solution passes, the student copy fails exactly its stubs, the
grader has teeth (a planted bug fails each task, a different correct implementation passes it)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_variants import COMBINE, CORRECT, PLANTED
from pmlm.course import TASKS, parse_tasks
from pmlm.course.autograder import regions
from pmlm.course.build import build, strip_notebook

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def grade(directory: Path, tasks: str, tmp: Path) -> tuple[int, dict, str]:
    out = tmp / f"grade-{tasks.replace(',', '_')}.json"
    proc = subprocess.run([sys.executable, "-m", "pmlm.course", "grade", str(directory), "--tasks", tasks,
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    results = json.loads(out.read_text()) if out.is_file() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    return build(out, sorted(TASKS))


def test_the_solution_passes_every_task(tmp_path):
    code, results, text = grade(ROOT, "all", tmp_path)
    assert code == 0, text
    assert set(results) == {str(n) for n in TASKS} and all(r["passed"] for rs in results.values() for r in rs)
    assert "100.0 / 100" in text


def test_the_student_copy_imports_and_fails_exactly_the_stubs(kit, tmp_path):
    student = kit["student"]
    env = {**os.environ, "PYTHONPATH": str(student)}
    probe = "import pmlm, pmlm.train, pmlm.finetune, pmlm.viz, pmlm.check; print(pmlm.__file__)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=student)
    assert proc.returncode == 0 and proc.stdout.startswith(str(student)), proc.stderr
    code, results, text = grade(student, "all", tmp_path)
    assert code == 1
    for n in TASKS:
        failed = [r for r in results[str(n)] if not r["passed"]]
        assert failed, f"task {n} passes while stubbed"
        assert all("not implemented yet (Task " + str(n) in r["message"] for r in failed), failed[0]["message"]
    # no oracle and no answer ships in the copy
    assert not (student / "pmlm" / "course" / "autograder").exists()
    assert sorted(p.name for p in (student / "tests").iterdir()) == ["test_public_checks.py"]
    for t in TASKS.values():
        for rel, _ in t.functions:
            assert regions.BEGIN not in (student / "pmlm" / rel).read_text()
    assert "reference_attention_mask" not in (student / "pmlm" / "attention.py").read_text()
    assert (student / "ASSIGNMENT.md").is_file() and (student / ".github/workflows/classroom.yml").is_file()
    own = subprocess.run([sys.executable, "-m", "pmlm.course", "grade", "."], capture_output=True, text=True,
                         env=env, cwd=student)  # the copy itself has no grader: one line, not a traceback
    assert own.returncode == 2 and own.stderr.count("\n") == 1 and "autograder folder" in own.stderr


def test_a_partial_assignment_stubs_only_its_tasks(tmp_path):
    paths = build(tmp_path / "kit", [4, 6])
    text = (paths["student"] / "pmlm" / "attention.py").read_text()
    assert "raise NotImplementedError(" in text and "Task 4:" in text
    assert "### BEGIN SOLUTION" in (paths["student"] / "pmlm" / "masking.py").read_text()  # task 1 kept
    workflow = (paths["student"] / ".github/workflows/classroom.yml").read_text()
    assert "--tasks 4" in workflow and "--tasks 6" in workflow and "--tasks 1" not in workflow
    assert "max-score: 20" in workflow


def install(student: Path, task: int, name: str, source: str) -> None:
    """Write a variant in place of the stub (task 5: with a correct ``combine``, its second function)."""
    functions = [(name, source)] + ([("combine", COMBINE)] if task == 5 else [])
    for fname, fsource in functions:
        for rel, fn in TASKS[task].functions:
            if fn == fname and not rel.startswith("hf_remote"):
                path = student / "pmlm" / rel
                path.write_text(regions.splice_function(path.read_text(), fname, textwrap.dedent(fsource).strip() + "\n"))


@pytest.mark.parametrize("task", sorted(PLANTED))
def test_a_planted_bug_fails_its_task(kit, tmp_path, task):
    what, name, source, phrase = PLANTED[task]
    install(kit["student"], task, name, source)
    code, results, text = grade(kit["student"], str(task), tmp_path)
    assert code == 1, f"task {task}: the planted bug ({what}) passes the grader\n{text}"
    failed = [r for r in results[str(task)] if not r["passed"]]
    assert any(phrase in r["message"] for r in failed), (what, [r["message"] for r in failed])
    assert "not implemented" not in failed[0]["message"]


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_a_correct_implementation_written_differently_passes(kit, tmp_path, task):
    name, source = CORRECT[task]
    install(kit["student"], task, name, source)
    code, results, text = grade(kit["student"], str(task), tmp_path)
    assert code == 0, f"task {task}: a correct implementation fails\n{text}"


def test_the_student_notebooks_run_under_nbval_through_their_exercises(tmp_path):
    """With the package's tasks done (--tasks 7 stubs only decoding), nbval runs notebooks 1-3 of the
    student copy: every cell before the exercises as it is, the unanswered exercises allowed to raise."""
    paths = build(tmp_path / "kit", [7])
    student = paths["student"]
    names = ["01_blockwise_masking.ipynb", "02_pseudo_masks.ipynb", "03_one_pass_two_objectives.ipynb"]
    for name in names:
        cells = json.loads((student / "notebooks" / name).read_text())["cells"]
        exercises = [c for c in cells if "exercise" in c.get("metadata", {}).get("tags", [])]
        assert exercises and all("raise NotImplementedError" in "".join(c["source"]) for c in exercises)
    env = {**os.environ, "PYTHONPATH": str(student), "PMLM_SMOKE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"] +
                          [f"notebooks/{n}" for n in names], cwd=student, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_notebook_answers_are_stripped(tmp_path):
    cell = {"cell_type": "code", "id": "a1", "metadata": {}, "outputs": [], "execution_count": 3,
            "source": ["x = 1\n", "### BEGIN SOLUTION\n", "answer = 42\n", "### END SOLUTION\n", "assert answer == 42\n"]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert strip_notebook(path) == 1
    out = json.loads(path.read_text())["cells"][0]
    text = "".join(out["source"])
    assert "answer = 42" not in text and "raise NotImplementedError" in text and "assert answer == 42" in text
    assert out["metadata"]["tags"] == ["exercise", "raises-exception"] and out["metadata"]["nbgrader"]["solution"]


@pytest.mark.parametrize("bad", ["8", "1,x", "0"])
def test_bad_task_lists_are_refused(bad):
    with pytest.raises(ValueError, match="unknown task"):
        parse_tasks(bad)


def test_grading_a_folder_without_a_package_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pmlm.course", "grade", str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "holds no pmlm/ package" in proc.stderr
