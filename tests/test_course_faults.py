"""The course kit under bad input: the grader's time limit, a graded process that dies, a student's
code that tries to rewrite its grade, a grader that would run the student's package in its own
process, and builds into folders the tool did not write (pmlm/course/autograder/grade.py's docstring
says what the grader guards against, and what not).

Each grading run here is a copy of the solution package with one function changed, graded on one or
two tasks with ``TMPDIR`` pointing to a folder of the test's own, so that the test can see every
temporary folder the grader made is gone. Every wait is bounded in time.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pmlm.course import TASKS
from pmlm.course.autograder import regions
from pmlm.course.build import LOCK, MANIFEST, build, build_autograder, sha256, stub_tasks

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 20  # s: the time limit of these runs; task 6 alone takes about 10 s on a busy 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HANGS = '''
def may_attend(q, k):
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(os.environ["PMLM_FAULT_PIDS"], "a") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    while True:
        pass
'''

DIES = '''
def may_attend(q, k):
    import os
    os._exit(3)
'''

# appended to the copy's pmlm/__init__.py: at exit, rewrite every results file the grader might read
# (the old grader's PMLM_GRADE_RESULTS among them) and write passing records on every descriptor
# the process had when the package was imported (the results pipe among them)
REWRITES_AT_EXIT = '''
import atexit as _atexit, glob as _glob, json as _json, os as _os
_kept = []
for _fd in range(3, 64):
    try:
        _kept.append(_os.dup(_fd))
    except OSError:
        pass

def _rewrite_the_grade():
    passing = [{"test": "test_public_checks", "task": 1, "points": 1, "passed": True, "message": ""}]
    paths = [_os.environ.get("PMLM_GRADE_RESULTS", "")] + _glob.glob(_os.path.join(_os.getcwd(), "..", "*.json"))
    for path in filter(None, paths):
        with open(path, "w") as f:
            f.write(_json.dumps(passing))
    for fd in _kept:
        try:
            _os.write(fd, b'forged {"kind": "result", "id": "x", "passed": true, "message": ""}\\n')
        except OSError:
            pass

_atexit.register(_rewrite_the_grade)
'''

# appended to the copy's pmlm/__init__.py: while the session runs, a passing record on every pipe
FORGES_A_RECORD = '''
import os as _os, stat as _stat
for _fd in range(3, 64):
    try:
        if _stat.S_ISFIFO(_os.fstat(_fd).st_mode):
            _os.write(_fd, b'0123456789abcdef {"kind": "result", "id": "x", "passed": true, "message": ""}\\n')
    except OSError:
        pass
'''

# appended to the copy's pmlm/__init__.py: which processes import the package
RECORDS_ITS_IMPORTER = '''
import os as _os
with open(_os.environ["PMLM_FAULT_PIDS"], "a") as _f:
    _f.write(f"{_os.getpid()}\\n")
'''


def copy_of_the_solution(tmp: Path) -> Path:
    """The folder of a copy to grade: the solution's pmlm/ (without the grader, as a student copy)."""
    copy = tmp / "copy"
    shutil.copytree(ROOT / "pmlm", copy / "pmlm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "autograder", "checkpoints", "corpora"))
    return copy


def put(copy: Path, rel: str, name: str, source: str) -> None:
    path = copy / "pmlm" / rel
    path.write_text(regions.splice_function(path.read_text(), name, textwrap.dedent(source).strip() + "\n"))


def append_to_init(copy: Path, code: str) -> None:
    init = copy / "pmlm" / "__init__.py"
    init.write_text(init.read_text() + "\n" + textwrap.dedent(code))


def environment(tmp: Path, **extra) -> dict:
    (tmp / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp / "tmp"),
            "PMLM_FAULT_PIDS": str(tmp / "pids"), **extra}


def grade(copy: Path, tasks: str, tmp: Path, *extra: str) -> tuple[int, dict, str, float]:
    out = tmp / "grade.json"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pmlm.course", "grade", str(copy), "--tasks", tasks,
                           "--json", str(out), *extra], capture_output=True, text=True, cwd=ROOT,
                          env=environment(tmp), timeout=240)
    results = json.loads(out.read_text()) if out.is_file() else {}
    return proc.returncode, results, proc.stdout + proc.stderr, time.monotonic() - start


def pids(tmp: Path) -> list[int]:
    path = tmp / "pids"
    return [int(p) for p in path.read_text().split()] if path.is_file() else []


def gone(pid: int, within: float = 15.0) -> bool:
    """Whether process pid has ended (or is a zombie awaiting its reaper) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path("/proc").is_dir():
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state in ("Z", "X"):
                    return True
            else:
                os.kill(pid, 0)
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.1)
    return False


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in (tmp / "tmp").iterdir())


# ## The time limit

def test_a_task_that_never_returns_times_out_and_the_others_are_graded(tmp_path):
    copy = copy_of_the_solution(tmp_path)
    put(copy, "attention.py", "may_attend", HANGS)
    code, results, text, seconds = grade(copy, "4,6", tmp_path, "--timeout", str(LIMIT))
    assert code == 1, text
    assert seconds < 55, f"a {LIMIT} s limit took {seconds:.0f} s to end the grading"
    assert all(not r["passed"] for r in results["4"]) and f"timed out after {LIMIT} s" in results["4"][0]["message"]
    assert f"task 4: 0.0 / 20" in text and f"timed out after {LIMIT} s" in text
    assert all(r["passed"] for r in results["6"]), "the task graded beside the one that hangs must still pass"
    assert leftovers(tmp_path) == [], "the grader left temporary folders behind"
    started = pids(tmp_path)
    assert len(started) == 2, "the hanging function should have recorded itself and its child"
    assert all(gone(p) for p in started), "the graded process or the one it started outlived the time limit"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_the_grader_stops_every_task_and_removes_its_folders(tmp_path, signum):
    copy = copy_of_the_solution(tmp_path)
    put(copy, "attention.py", "may_attend", HANGS)
    proc = subprocess.Popen([sys.executable, "-m", "pmlm.course", "grade", str(copy), "--tasks", "4"], cwd=ROOT,
                            env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(pids(tmp_path)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(pids(tmp_path)) == 2, "the graded function never started"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err, err
    assert leftovers(tmp_path) == [], "an interrupted grader left temporary folders behind"
    assert all(gone(p) for p in pids(tmp_path)), "the graded process outlived the interrupted grader"


def test_a_process_that_dies_fails_the_tests_it_did_not_report(tmp_path):
    copy = copy_of_the_solution(tmp_path)
    put(copy, "attention.py", "may_attend", DIES)
    code, results, text, _ = grade(copy, "4", tmp_path, "--timeout", str(LIMIT))
    assert code == 1
    assert "the test process ended (exit status 3)" in results["4"][0]["message"], results["4"][0]
    assert leftovers(tmp_path) == []


def test_a_bad_time_limit_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pmlm.course", "grade", str(ROOT), "--tasks", "6", "--timeout", "0"],
                          capture_output=True, text=True, cwd=ROOT, env=environment(tmp_path), timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--timeout must be" in proc.stderr
    assert leftovers(tmp_path) == []


# ## Results the student's code cannot rewrite

def test_an_atexit_hook_cannot_rewrite_the_grade(tmp_path):
    """Task 1 left unimplemented; at exit the package rewrites results files and writes on every descriptor."""
    copy = copy_of_the_solution(tmp_path)
    stub_tasks(copy, [TASKS[1]])
    append_to_init(copy, REWRITES_AT_EXIT)
    code, results, text, _ = grade(copy, "1", tmp_path, "--timeout", "120")
    assert code == 1 and "15.0 / 15" not in text, text
    # what the stub earns on its own: only the bad-input checks, which run before the stubbed region
    assert results["1"] and all(r["passed"] == r["test"].startswith("test_bad_input") for r in results["1"]), results
    assert all("not implemented yet (Task 1" in r["message"] for r in results["1"] if not r["passed"])
    assert leftovers(tmp_path) == []


def test_a_record_forged_during_the_session_scores_the_task_zero(tmp_path):
    copy = copy_of_the_solution(tmp_path)  # task 6 correct: 10 / 10 unless somebody writes on the channel
    append_to_init(copy, FORGES_A_RECORD)
    code, results, text, _ = grade(copy, "6", tmp_path, "--timeout", "120")
    assert code == 1 and "0.0 / 10" in text, text
    assert results["6"] == [{"test": "results channel", "task": 6, "points": 10, "passed": False,
                             "message": results["6"][0]["message"]}]
    assert "not written by the grader" in results["6"][0]["message"]


def test_only_the_nonce_carrying_records_before_the_end_count():
    """The channel's reading, on its own: order, duplicates, lines after the end record, missing outcomes."""
    saved = list(sys.path)
    try:
        from pmlm.course.autograder import grade as grader  # it puts its folder on sys.path: not for the other tests
    finally:
        sys.path[:] = saved
    task, nonce = TASKS[4], b"n0nce"

    def run(*records, tail=b"", **kw):
        data = b"".join(nonce + b" " + json.dumps(r).encode() + b"\n" for r in records) + tail
        return grader.Run(data, nonce, kw.get("rc", 0), kw.get("timed_out", False), False)

    collected = {"kind": "collected", "tests": [{"id": "a", "test": "test_a", "task": 4, "points": 3},
                                                {"id": "b", "test": "test_b", "task": 4, "points": 1}]}
    ok, bad = {"kind": "result", "id": "a", "passed": True, "message": ""}, {"kind": "end", "exitstatus": 0}
    after = nonce + b' {"kind": "result", "id": "b", "passed": true, "message": ""}\n'
    results = grader.task_results(run(collected, ok, bad, tail=after), 4, task, 60, "")
    assert [r["passed"] for r in results] == [True, False] and "reported no outcome" in results[1]["message"]
    assert grader.score(results, 20)[0] == 15.0  # 3 of 4 points' weight
    results = grader.task_results(run(collected, ok, timed_out=True), 4, task, 60, "")
    assert results[1]["message"].startswith("timed out after 60 s")
    for forged in (run(collected, ok, ok), run(collected, {**ok, "id": "z"}), run(ok, collected),
                   run(collected, tail=b"foreign line\n")):
        results = grader.task_results(forged, 4, task, 60, "")
        assert len(results) == 1 and "not written by the grader" in results[0]["message"], results
    results = grader.task_results(run(tail=b"cut off"), 4, task, 60, "ImportError: x")
    assert results[0]["test"] == "import" and "could not run: ImportError: x" in results[0]["message"]


# ## The student's package runs only in the graded processes

@pytest.mark.parametrize("how", ["grade.py from inside the copy", "python -m pmlm.course from outside"])
def test_the_graded_package_never_runs_in_the_graders_process(tmp_path, how):
    copy = copy_of_the_solution(tmp_path)
    append_to_init(copy, RECORDS_ITS_IMPORTER)
    if how.startswith("grade.py"):  # as in GitHub Classroom: the copy installed, the grader run from inside it
        autograder = build_autograder(copy / ".autograder")
        cmd, cwd = [sys.executable, str(autograder / "grade.py"), ".", "--tasks", "6"], copy
        env = environment(tmp_path, PYTHONPATH=str(copy))
    else:
        cmd = [sys.executable, "-m", "pmlm.course", "grade", str(copy), "--tasks", "6"]
        cwd, env = ROOT, environment(tmp_path)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    assert pids(tmp_path), "the graded process should have imported the copy's package"
    assert proc.pid not in pids(tmp_path), "the grader's own process imported the copy's package"


def test_a_grader_that_has_imported_the_copy_refuses_to_grade_it(tmp_path):
    copy = copy_of_the_solution(tmp_path)
    autograder = build_autograder(tmp_path / "autograder")
    probe = (f"import sys; sys.path.insert(0, {str(copy)!r}); import pmlm; sys.path.insert(0, {str(autograder)!r}); "
             f"import grade; sys.exit(grade.main([{str(copy)!r}, '--tasks', '6']))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env=environment(tmp_path), timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert re.search(r"imported pmlm[.\w]* from the copy being graded", proc.stderr), proc.stderr


# ## Builds never delete what they did not write

def test_a_build_refuses_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "out"
    (out / "autograder").mkdir(parents=True)
    (out / "autograder" / "my_tests.py").write_text("# a teacher's own tests\n")
    proc = subprocess.run([sys.executable, "-m", "pmlm.course", "build", str(out), "--tasks", "4"],
                          capture_output=True, text=True, cwd=ROOT, env=environment(tmp_path), timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "was not written by" in proc.stderr, proc.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["autograder", "autograder/my_tests.py"]
    assert (out / "autograder" / "my_tests.py").read_text() == "# a teacher's own tests\n"


def test_a_rebuild_needs_force_and_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "out"
    build(out, [4])
    with pytest.raises(ValueError, match="--force"):
        build(out, [4])
    (out / "student" / "NOTES.md").write_text("mine\n")
    (out / "autograder" / "extra_test.py").write_text("# added by the teacher\n")
    dropped = out / "student" / "dropped" / "old.txt"  # a file of the earlier build that the new one no longer writes
    dropped.parent.mkdir()
    dropped.write_text("old\n")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["student/dropped/old.txt"] = sha256(dropped)
    (out / MANIFEST).write_text(json.dumps(manifest))
    build(out, [4, 6], force=True)
    assert (out / "student" / "NOTES.md").read_text() == "mine\n"
    assert (out / "autograder" / "extra_test.py").read_text() == "# added by the teacher\n"
    assert "Task 6:" in (out / "student" / "pmlm" / "relpos.py").read_text()
    assert not (out / "student" / "dropped").exists(), "a file of the earlier build, unchanged, is removed"
    assert json.loads((out / MANIFEST).read_text())["tasks"] == [4, 6]
    edited = out / "student" / "pmlm" / "attention.py"
    edited.write_text(edited.read_text() + "\n# the student's work\n")
    with pytest.raises(ValueError, match="student/pmlm/attention.py .edited since the build"):
        build(out, [4, 6], force=True)
    assert edited.read_text().endswith("# the student's work\n")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "autograder", "student"], "staging or lock left behind"


def test_a_build_refuses_a_folder_another_build_holds(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text("python -m pmlm.course build, pid 12345 on somewhere\n")
    with pytest.raises(ValueError, match="another build is writing .*pid 12345"):
        build(out, [4])
    assert sorted(p.name for p in out.iterdir()) == [LOCK]
