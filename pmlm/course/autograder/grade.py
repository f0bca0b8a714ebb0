"""Grade a student's copy of pmlm, task by task: ``python grade.py DIR [--tasks 4,6]``.

Standalone (the standard library, pytest and what the tests import): it runs from the
``autograder/`` folder that ``python -m pmlm.course build`` writes, or through ``python -m pmlm.course
grade`` from the package. For each task it

1. copies DIR's ``pmlm/`` package to a scratch folder and puts the reference version of every
   *other* task's functions in place (``solutions/``), so that a task is graded on its own: a bug in
   task 4 does not fail task 7;
2. runs this folder's ``test_task<N>.py`` in a subprocess whose ``import pmlm`` is that copy;
3. prints one row per task (points earned of points possible) and, for each failing task, the
   first counterexample in the paper's terms.

Exit status 0 only when every graded task passes every test; 1 otherwise; 2 for bad input.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import regions  # noqa: E402


def load_tasks(folder: Path = HERE) -> dict:
    spec = importlib.util.spec_from_file_location("pmlm_course_tasks", folder / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


def hybrid(student_pkg: Path, solutions: Path, graded: int, tasks: dict, out: Path) -> Path:
    """A copy of the student's package with every task but ``graded`` replaced by the reference."""
    target = out / "pmlm"
    shutil.copytree(student_pkg, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for number, task in tasks.items():
        if number == graded:
            continue
        for rel, name in task.functions:
            path = target / rel
            if not path.is_file():
                raise ValueError(f"the graded copy has no pmlm/{rel}; it should keep the package's files")
            reference = regions.function_source((solutions / rel).read_text(), name, f"solutions/{rel}")
            path.write_text(regions.splice_function(path.read_text(), name, reference, f"pmlm/{rel}"))
    return out


def run_task(student: Path, solutions: Path, number: int, tasks: dict, verbose: bool = False) -> list[dict]:
    """The results of task ``number``'s tests: [{test, task, points, passed, message}]."""
    with tempfile.TemporaryDirectory(prefix=f"pmlm-grade-task{number}-") as scratch:
        scratch = Path(scratch)
        root = hybrid(student / "pmlm", solutions, number, tasks, scratch / "root")
        results = scratch / "results.json"
        env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONPATH": str(root), "PMLM_GRADE_ROOT": str(root),
               "PMLM_GRADE_RESULTS": str(results), "PYTHONDONTWRITEBYTECODE": "1"}  # tiny models: one thread each
        cmd = [sys.executable, "-m", "pytest", str(HERE / f"test_task{number}.py"), "-q", "-c", str(HERE / "pytest.ini"),
               "--import-mode=importlib", "--rootdir", str(HERE), "--no-header"]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        if verbose:
            print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
        if not results.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return [{"test": "import", "task": number, "points": tasks[number].points, "passed": False,
                     "message": "the tests could not run: " + " | ".join(tail)}]
        return json.loads(results.read_text())


def score(results: list[dict], points: int) -> tuple[float, int, int]:
    """(points earned, tests passed, tests) with the task's points split by the tests' weights."""
    weight = sum(r["points"] for r in results) or 1
    earned = sum(r["points"] for r in results if r["passed"])
    return points * earned / weight, sum(r["passed"] for r in results), len(results)


def table(by_task: dict[int, list[dict]], tasks: dict) -> str:
    lines = [f"{'task':<6}{'points':>10}  {'tests':>7}  what", "-" * 78]
    total = possible = 0.0
    for number, results in by_task.items():
        task = tasks[number]
        earned, passed, count = score(results, task.points)
        total, possible = total + earned, possible + task.points
        lines.append(f"{number:<6}{earned:>5.1f} / {task.points:<3}{passed:>3}/{count:<3}  {task.title}")
    lines += ["-" * 78, f"{'total':<6}{total:>5.1f} / {possible:<3.0f}"]
    for number, results in by_task.items():
        failed = [r for r in results if not r["passed"]]
        if failed:
            lines.append(f"\ntask {number}: {len(failed)} failing; first: {failed[0]['test']}\n  {failed[0]['message']}")
    return "\n".join(lines)


def grade(student: str | Path, tasks_arg: str | None = None, solutions: str | Path | None = None,
          out_json: str | Path | None = None, verbose: bool = False, jobs: int | None = None) -> int:
    module = load_tasks()
    tasks = module.TASKS
    numbers = module.parse_tasks(tasks_arg)
    student = Path(student).resolve()
    if not (student / "pmlm" / "__init__.py").is_file():
        raise ValueError(f"{student} holds no pmlm/ package: pass the root of the copy to grade")
    solutions = Path(solutions) if solutions else HERE / "solutions"
    if not solutions.is_dir():
        raise ValueError(f"no reference solutions at {solutions}: run python -m pmlm.course build first")
    jobs = max(1, min(len(numbers), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(jobs) as pool:  # each task is its own subprocess: run them side by side
        futures = {n: pool.submit(run_task, student, solutions, n, tasks, verbose) for n in numbers}
        by_task = {n: futures[n].result() for n in numbers}
    print(table(by_task, tasks))
    if out_json:
        Path(out_json).write_text(json.dumps({str(n): r for n, r in by_task.items()}, indent=1))
    return 0 if all(r["passed"] for results in by_task.values() for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="grade.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="root of the copy to grade (the folder that holds pmlm/)")
    p.add_argument("--tasks", help="comma-separated task numbers (default: all)")
    p.add_argument("--solutions", help="folder of the reference files (default: solutions/ beside this file)")
    p.add_argument("--json", help="also write every test's result here")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    p.add_argument("--jobs", type=int, help="tasks graded at once (default: the CPU count)")
    args = p.parse_args(argv)
    try:
        return grade(args.dir, args.tasks, args.solutions, args.json, args.verbose, args.jobs)
    except ValueError as err:
        print(f"grade: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
