"""Grade a student's copy of pmlm, task by task: ``python grade.py DIR [--tasks 4,6] [--timeout S]``.

Standalone (the standard library, pytest and what the tests import): it runs from the
``autograder/`` folder that ``python -m pmlm.course build`` writes, or through ``python -m pmlm.course
grade`` from the package. For each task it

1. copies DIR's ``pmlm/`` package to a scratch folder and puts the reference version of every
   *other* task's functions in place (``solutions/``), so that a task is graded on its own: a bug in
   task 4 does not fail task 7;
2. runs this folder's ``test_task<N>.py`` in a subprocess whose ``import pmlm`` is that copy, under
   the task's time limit;
3. prints one row per task (points earned of points possible) and, for each failing task, the
   first counterexample in the paper's terms.

Exit status 0 only when every graded task passes every test; 1 otherwise; 2 for bad input; 130 when
interrupted (Ctrl-C or SIGTERM).

How a task runs, and what decides its grade
-------------------------------------------
* **A time limit, in a process group of its own.** pytest starts in a new session
  (``start_new_session``), so it and everything the student's code starts share one process group.
  At the task's limit (``--timeout S``; by default ``LIMIT_FACTOR`` times the task's expected test
  time, ``Task.test_seconds``, and at least ``MIN_LIMIT_S``) the whole group gets SIGKILL: the
  tests that had not reported fail with "timed out after S s" and the other tasks are graded as
  usual. The group is killed whenever a task ends, before its leader is reaped (so its id cannot
  have been reused), so nothing the student's code started keeps running.
* **Scratch folders removed in every case.** A task's copy of the package, pytest's log and the
  student process's ``TMPDIR`` live in one ``TemporaryDirectory``, removed once the group is dead:
  on success, failure, timeout and interrupt alike. Ctrl-C and SIGTERM set an event that every task
  checks between reads; each kills its group and cleans up before the grader exits.
* **Results over a channel the grader holds, not a file.** The grader makes two pipes. It writes a
  fresh random nonce into one, which the plugin (``conftest.py``) reads and closes before the graded
  package is imported; on the other the plugin streams ``NONCE JSON`` lines: the collected tests,
  each outcome as it is reported, an end record, then it closes the pipe. The grader keeps the
  reading end. A pipe cannot be rewritten, and the grader reads nothing after the end record, so
  code that runs after the session (an ``atexit`` hook, a finaliser, a process left behind) cannot
  change the grade. A line without the nonce, a second outcome for a test or an outcome for a test
  that was not collected scores the task 0: somebody else wrote on the channel. A collected test
  with no outcome (the process crashed, called ``os._exit``, hung) fails, with the reason.
* **The student's package is never imported in the grader's process**, only in the subprocesses.
  :func:`grade` refuses to run when a module of DIR is already loaded in its own process (``python
  -m pmlm.course grade .`` from inside a copy: Python puts the current folder first on
  ``sys.path``), unless DIR is the very repository this grader was built from. pytest starts with
  plugin autoloading off and without ``PYTEST_ADDOPTS``/``PYTEST_PLUGINS``, from this folder's
  ``pytest.ini`` with ``--confcutdir`` here, so neither the copy's installed entry points, nor its
  ``conftest.py`` files, nor the environment add anything to the run.

What this does not protect against: the student's code runs with the rights of the user who grades,
in the same process as the tests and the plugin. Code written to cheat can find the nonce in the
plugin's memory and forge records, patch pytest, the tests or the references, read ``solutions/``
(public anyway), reach the network, fill the disk or the memory, or start a process that leaves the
group (``setsid``) and outlives the kill; code in the copy's packaging (``setup.py``, ``.pth``
files) runs when the copy is installed, before any grader. Grade in an isolated, throw-away runner
(GitHub Classroom's, a container) with the grader's files protected, and read the code behind a
grade that surprises you. ``docs/teaching.md`` says the same for teachers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import regions  # noqa: E402

MIN_LIMIT_S = 60  # the floor of the default limit: starting torch and pytest alone takes seconds on a busy machine
LIMIT_FACTOR = 10  # default limit / expected test time: tasks run side by side, often on shared cores
GRACE_S = 10  # how long pytest may take to exit once its end record has arrived (then it is killed)
POLL_S = 0.05  # how often a task checks its process, its deadline and the interrupt event
MAX_CHANNEL_BYTES = 8 << 20  # an honest run writes a few kB; a flood beyond this is not read
SCRUBBED_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PMLM_GRADE_FD", "PMLM_GRADE_NONCE_FD", "PMLM_GRADE_RESULTS")


def load_tasks(folder: Path = HERE) -> dict:
    spec = importlib.util.spec_from_file_location("pmlm_course_tasks", folder / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


def time_limit(task, timeout: float | None = None) -> float:
    """Seconds task may run: ``timeout`` if given, else LIMIT_FACTOR x its expected test time, >= MIN_LIMIT_S."""
    return float(timeout) if timeout else float(max(MIN_LIMIT_S, LIMIT_FACTOR * task.test_seconds))


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


# ---------------------------------------------------------------------------------------------------
# One pytest run: its own process group, a deadline, the results pipe read as it fills
# ---------------------------------------------------------------------------------------------------

@dataclass
class Run:
    data: bytes  # what the results pipe carried, as read (at most MAX_CHANNEL_BYTES)
    nonce: bytes
    returncode: int | None
    timed_out: bool  # the deadline passed before the end record arrived
    interrupted: bool  # the grading was interrupted (Ctrl-C, SIGTERM)


def _has_exited(proc: subprocess.Popen) -> bool:
    """Whether proc has exited, *without* reaping it: while it is a zombie its group id stays ours."""
    if not hasattr(os, "waitid"):  # pragma: no cover - not POSIX
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL proc's process group (it leads one: start_new_session), then reap proc."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _ended(data: bytes | bytearray, nonce: bytes, start: int = 0) -> bool:
    """Whether an end record (a line that opens with the nonce and the end kind) begins at or after ``start``."""
    marker = nonce + b' {"kind": "end"'
    return (start <= 0 and data.startswith(marker)) or data.find(b"\n" + marker, max(0, start - 1)) >= 0


def run_pytest(cmd: list[str], cwd: Path, env: dict, limit: float, cancel: threading.Event, log: Path) -> Run:
    """Run cmd with the results channel; return what it carried once the process group is gone."""
    nonce = secrets.token_hex(16).encode()
    nonce_r, nonce_w = os.pipe()
    results_r, results_w = os.pipe()
    os.write(nonce_w, nonce + b"\n")  # 33 bytes: fits the pipe's buffer, the child reads it at start-up
    os.close(nonce_w)
    env = {**env, "PMLM_GRADE_NONCE_FD": str(nonce_r), "PMLM_GRADE_FD": str(results_w)}
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, pass_fds=(nonce_r, results_w), start_new_session=True)
    except BaseException:
        os.close(results_r)
        raise
    finally:
        os.close(nonce_r)
        os.close(results_w)  # from here on only the child (and what it forks) can write on the channel
    deadline = time.monotonic() + limit
    data, eof, ended_at, timed_out = bytearray(), False, None, False
    try:
        while not (_has_exited(proc) or cancel.is_set()):
            now = time.monotonic()
            if ended_at is not None and now >= ended_at + GRACE_S:
                break  # the tests are over; a hang in the process's exit costs no more time
            if now >= deadline:
                timed_out = ended_at is None
                break
            if eof or len(data) >= MAX_CHANNEL_BYTES:
                time.sleep(POLL_S)
                continue
            if select.select([results_r], [], [], min(POLL_S, deadline - now))[0]:
                chunk = os.read(results_r, 1 << 16)
                eof = not chunk
                data += chunk
                if ended_at is None and _ended(data, nonce, len(data) - len(chunk) - len(nonce) - 20):
                    ended_at = now
    finally:
        _kill_group(proc)  # always, before anything else: nothing the student's code started outlives the task
        try:  # what the dead group left in the pipe; a writer outside the group cannot hold this loop
            for _ in range(MAX_CHANNEL_BYTES >> 16):
                if len(data) >= MAX_CHANNEL_BYTES or not select.select([results_r], [], [], 0)[0]:
                    break
                chunk = os.read(results_r, 1 << 16)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(results_r)
    ended = _ended(data, nonce)
    return Run(bytes(data[:MAX_CHANNEL_BYTES]), nonce, proc.returncode, timed_out and not ended,
               cancel.is_set() and not ended)


# ---------------------------------------------------------------------------------------------------
# From the channel's records to the task's results
# ---------------------------------------------------------------------------------------------------

def failure(number: int, points: int, test: str, message: str) -> dict:
    return {"test": test, "task": number, "points": points, "passed": False, "message": message}


def records(run: Run) -> tuple[list[dict], bool, str | None]:
    """(the nonce-carrying records up to the end record, whether it came, the first forgery if any)."""
    prefix = run.nonce + b" "
    out: list[dict] = []
    for line in run.data.split(b"\n")[:-1]:  # a last line without its newline was cut off by the kill
        if not line.startswith(prefix):
            return out, False, "a line without the grader's nonce"
        try:
            record = json.loads(line[len(prefix):])
        except ValueError:
            return out, False, "a record that is not JSON"
        if not isinstance(record, dict) or record.get("kind") not in ("collected", "result", "end"):
            return out, False, "a record of no known kind"
        out.append(record)
        if record["kind"] == "end":
            return out, True, None  # nothing after the end record is read: the session is over
    return out, False, None


def task_results(run: Run, number: int, task, limit: float, tail: str) -> list[dict]:
    """Every collected test's result; a test with no outcome fails with the reason it has none."""
    found, ended, forged = records(run)
    first, *rest = found or [{}]
    collected = first.get("tests") if first.get("kind") == "collected" else None
    if forged is None and found and (collected is None or any(r["kind"] == "collected" for r in rest)):
        forged = "records out of order"
    outcomes: dict[str, dict] = {}
    if forged is None and collected is not None:
        ids = {t.get("id") for t in collected if isinstance(t, dict)}
        for r in rest:
            if r["kind"] == "result" and (r.get("id") not in ids or r.get("id") in outcomes
                                          or not isinstance(r.get("passed"), bool)):
                forged = "an outcome for a test that was not collected, or a second one"
                break
            if r["kind"] == "result":
                outcomes[r["id"]] = r
    if forged is not None:
        return [failure(number, task.points, "results channel",
                        f"the results channel carried {forged}, not written by the grader: the task scores 0")]
    if run.timed_out:
        missing = f"timed out after {limit:g} s (the task's time limit; --timeout changes it)"
    elif run.interrupted:
        missing = "not graded: the grading was interrupted"
    elif ended:
        missing = f"reported no outcome (pytest stopped the session, exit status {rest[-1].get('exitstatus')})"
    else:
        missing = f"the test process ended (exit status {run.returncode}) before this test reported: {tail}"
    if collected is None:
        what = missing if (run.timed_out or run.interrupted) else f"the tests could not run: {tail}"
        return [failure(number, task.points, "import", what)]
    if not collected:
        return [failure(number, task.points, "collection", f"no test was collected: {tail}")]
    out = []
    for t in collected:
        r = outcomes.get(t["id"])
        out.append({"test": t.get("test", t["id"]), "task": number, "points": t.get("points", 1),
                    "passed": bool(r and r["passed"]), "message": r["message"] if r else missing})
    return out


def _tail(log: Path, lines: int = 3) -> str:
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        text = f.read().decode(errors="replace")
    return " | ".join(text.strip().splitlines()[-lines:])


def run_task(student: Path, solutions: Path, number: int, tasks: dict, verbose: bool = False,
             timeout: float | None = None, cancel: threading.Event | None = None) -> list[dict]:
    """The results of task ``number``'s tests: [{test, task, points, passed, message}]."""
    task, cancel = tasks[number], cancel or threading.Event()
    if cancel.is_set():
        return [failure(number, task.points, "interrupted", "not graded: the grading was interrupted")]
    limit = time_limit(task, timeout)
    scratch = tempfile.TemporaryDirectory(prefix=f"pmlm-grade-task{number}-", ignore_cleanup_errors=True)
    try:
        folder = Path(scratch.name)
        root = hybrid(student / "pmlm", solutions, number, tasks, folder / "root")
        (folder / "tmp").mkdir()
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env = {"OMP_NUM_THREADS": "1", **env,  # tiny models: one thread each
               "PYTHONPATH": str(root), "PMLM_GRADE_ROOT": str(root), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **{k: str(folder / "tmp") for k in ("TMPDIR", "TEMP", "TMP")}}
        cmd = [sys.executable, "-m", "pytest", str(HERE / f"test_task{number}.py"), "-q",
               "-c", str(HERE / "pytest.ini"), "--import-mode=importlib", "--rootdir", str(HERE),
               "--confcutdir", str(HERE), "--no-header"]
        log = folder / "pytest.log"
        run = run_pytest(cmd, root, env, limit, cancel, log)
        if verbose:
            print(log.read_text(errors="replace")[-6000:])
        return task_results(run, number, task, limit, _tail(log))
    finally:
        scratch.cleanup()
        if Path(scratch.name).exists():  # a process outside the group still writing there
            print(f"grade: could not remove {scratch.name}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# The table, and grading a copy
# ---------------------------------------------------------------------------------------------------

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


def own_source(student: Path) -> bool:
    """Whether ``student`` is the repository this grader was built from (its autograder files, unchanged)."""
    theirs = student / "pmlm" / "course" / "autograder"
    names = [p.name for p in sorted(theirs.glob("*")) if p.suffix in (".py", ".ini")] if theirs.is_dir() else []
    return bool(names) and all((HERE / n).is_file() and (HERE / n).read_bytes() == (theirs / n).read_bytes()
                               for n in names)


def graded_modules(student: Path) -> list[tuple[str, str]]:
    """(name, file) of the modules in this process loaded from the copy (this grader's own folder aside)."""
    out = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.realpath(file).startswith(str(student) + os.sep):
            if not Path(os.path.realpath(file)).is_relative_to(HERE):
                out.append((name, file))
    return out


def _interrupt_on_sigterm():
    """SIGTERM raises KeyboardInterrupt in the main thread, so it stops the tasks as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)


def write_json(path: str | Path, data) -> None:
    """Whole or nothing: a temporary sibling, renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def grade(student: str | Path, tasks_arg: str | None = None, solutions: str | Path | None = None,
          out_json: str | Path | None = None, verbose: bool = False, jobs: int | None = None,
          timeout: float | None = None) -> int:
    module = load_tasks()
    tasks = module.TASKS
    numbers = module.parse_tasks(tasks_arg)
    student = Path(student).resolve()
    if not (student / "pmlm" / "__init__.py").is_file():
        raise ValueError(f"{student} holds no pmlm/ package: pass the root of the copy to grade")
    loaded = graded_modules(student)
    if loaded and not own_source(student):
        raise ValueError(f"this process has imported {loaded[0][0]} from the copy being graded ({loaded[0][1]}), so "
                         "the copy's code runs in the grader: run the grader from outside the copy (Python puts the "
                         "current folder first on sys.path), or python AUTOGRADER/grade.py DIR")
    solutions = Path(solutions) if solutions else HERE / "solutions"
    if not solutions.is_dir():
        raise ValueError(f"no reference solutions at {solutions}: run python -m pmlm.course build first")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    jobs = max(1, min(len(numbers), jobs or os.cpu_count() or 1))
    limits = sorted({time_limit(tasks[n], timeout) for n in numbers})
    limit = f"{limits[0]:g} s" if len(limits) == 1 else f"{limits[0]:g} to {limits[-1]:g} s"
    print(f"grading task{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} of {student}, "
          f"{jobs} at a time, time limit per task {limit}", file=sys.stderr, flush=True)
    cancel, by_task = threading.Event(), {}
    previous = _interrupt_on_sigterm()
    pool = ThreadPoolExecutor(jobs)  # each task is its own subprocess: run them side by side
    try:
        futures = {pool.submit(run_task, student, solutions, n, tasks, verbose, timeout, cancel): n for n in numbers}
        for future in as_completed(futures):
            n = futures[future]
            by_task[n] = future.result()
            earned, passed, count = score(by_task[n], tasks[n].points)
            failed = [r["message"] for r in by_task[n] if not r["passed"]]
            note = f": {failed[0][:90]}" if failed else ""
            print(f"task {n}: {earned:.1f} / {tasks[n].points} ({passed}/{count} tests){note}", file=sys.stderr,
                  flush=True)
    except BaseException:
        cancel.set()  # every running task kills its process group and removes its folder
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    by_task = {n: by_task[n] for n in numbers}
    print(table(by_task, tasks))
    if out_json:
        write_json(out_json, {str(n): r for n, r in by_task.items()})
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
    p.add_argument("--timeout", type=float, help=f"seconds each task may run (default: {LIMIT_FACTOR} x its expected "
                                                 f"test time, at least {MIN_LIMIT_S})")
    args = p.parse_args(argv)
    try:
        return grade(args.dir, args.tasks, args.solutions, args.json, args.verbose, args.jobs, args.timeout)
    except ValueError as err:
        print(f"grade: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grade: interrupted: every graded process is stopped and its temporary folder removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
