"""``python -m pmlm.course build OUT [--tasks 1,4] [--force]``, ``... grade DIR [--tasks 4,6] [--timeout S]``,
``... colab [--repo URL]``.

``build`` writes ``OUT/student/`` (the repository with the chosen tasks stubbed, notebooks without
answers, no oracles) and ``OUT/autograder/`` (tests, references, ``grade.py``); it refuses a
non-empty OUT that it did not write, and replaces the files of its own earlier build only with
``--force`` (files added since are kept; a file edited since stops it). ``grade`` grades the copy in
DIR (the folder holding its ``pmlm/``) with this installation's grading tests, each task in a
subprocess that imports DIR's package, under a time limit per task, prints a score table with one
counterexample per failing task, and exits 0 only when every graded task passes (what the grader
guards against: ``autograder/grade.py``). Run it from outside the copy: inside it, Python would
import the copy's own ``pmlm`` first. ``colab`` puts the "Open in Colab" badge and the Colab install
cell in every notebook. Bad input ends with one error line; an interrupt (exit status 130) leaves no
process and no temporary folder behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pmlm.course", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write OUT/student and OUT/autograder")
    b.add_argument("out")
    b.add_argument("--tasks", help="comma-separated task numbers (default: all seven)")
    b.add_argument("--force", action="store_true",
                   help="replace the files of an earlier build in OUT (files added or edited since are kept)")
    g = sub.add_parser("grade", help="grade the copy in DIR")
    g.add_argument("dir")
    g.add_argument("--tasks", help="comma-separated task numbers (default: all seven)")
    g.add_argument("--json", help="also write every test's result here")
    g.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    g.add_argument("--timeout", type=float,
                   help="seconds each task may run (default: 10 x its expected test time, at least 60)")
    c = sub.add_parser("colab", help="put the Open in Colab badge and the install cell in every notebook")
    c.add_argument("--repo", help="https://github.com/OWNER/NAME (default: pyproject's Repository URL)")
    args = p.parse_args(argv)
    from pmlm.course.tasks import parse_tasks
    if args.command == "colab":
        from pmlm.course.colab import main as colab
        try:
            for path in colab(args.repo):
                print(f"badge and install cell: {path}")
        except ValueError as err:
            print(f"python -m pmlm.course colab: error: {err}", file=sys.stderr)
            return 2
        return 0
    previous = _interrupt_on_sigterm()
    try:
        tasks = parse_tasks(args.tasks)
        if args.command == "build":
            from pmlm.course.build import build
            paths = build(args.out, tasks, force=args.force)
            print(f"student copy: {paths['student']} (tasks {', '.join(map(str, tasks))} stubbed)\n"
                  f"autograder:   {paths['autograder']} (python {paths['autograder'] / 'grade.py'} STUDENT_DIR)")
            return 0
        from pmlm.course.build import build_autograder
        with tempfile.TemporaryDirectory(prefix="pmlm-autograder-") as tmp:
            grader = build_autograder(Path(tmp) / "autograder")
            sys.path.insert(0, str(grader))
            import grade as grader_module
            return grader_module.grade(args.dir, ",".join(map(str, tasks)), grader / "solutions", args.json,
                                       args.verbose, timeout=args.timeout)
    except ValueError as err:
        print(f"python -m pmlm.course {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full disk under OUT (or under --json)
        where = err.filename or getattr(args, "out", None) or args.dir
        print(f"python -m pmlm.course {args.command}: error: {err.strerror or err}: {where}; free space, "
              "fix the permissions or choose another folder", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        left = ("every graded process is stopped and its temporary folder removed" if args.command == "grade" else
                "the staging folder is removed; OUT may hold part of the new build: run it again with --force")
        print(f"python -m pmlm.course {args.command}: interrupted: {left}", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt_on_sigterm():
    """SIGTERM raises KeyboardInterrupt (in the main thread), so the temporary folders go as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
