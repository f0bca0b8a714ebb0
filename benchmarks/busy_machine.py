"""A busy machine: steps a budgeted ``tiny`` run makes with the default thread choice, against 1 and all threads.

    python benchmarks/busy_machine.py                 # 1-minute runs, 1 round: about 8 minutes
    python benchmarks/busy_machine.py --minutes 2 --rounds 2

torch's threads spin-wait for each other at the end of every operator, so on a machine where
another process keeps a core busy, a run with one thread per core is held up by the thread that
shares its core (measured on the project's 2-core VM with one process spinning: 2 threads made 72
steps in a minute, 1 thread 151; idle, 2 threads make 239). ``pmlm.train`` therefore takes one
thread per core that is free at its start (:func:`pmlm.machine.choose_threads`). This script
checks that choice side by side, under two conditions:

* ``idle``: nothing else started by the script (the load of other users is recorded beside it);
* ``busy``: one process that the script starts, spinning on one core (pinned to the first core of
  this process's affinity set), for the whole condition and no longer: it is stopped when the
  condition ends, and it stops itself after ``--minutes`` x runs + 5 minutes whatever happens.

Under each, three settings run as ``python -m pmlm.train --preset tiny --time-budget MINUTES``
subprocesses, in an order that rotates each round: ``default`` (no ``--threads``, no
``OMP_NUM_THREADS``: the choice under test), ``--threads 1`` and ``--threads N`` (N = all usable
cores). The score is the steps of ``default`` over the best of the other two, within a round;
the targets are at least 0.9 busy and 0.95 idle. Written to ``results/busy_machine.json`` (through a
temporary file and a rename), with the machine, the thread count each default run chose and the
measured load at the start of each condition.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/busy_machine.py` from a checkout

from pmlm.machine import busy_cores, machine_info, usable_cores  # noqa: E402
from pmlm.model_files import write_atomic  # noqa: E402

OUT = ROOT / "results" / "busy_machine.json"
TARGETS = {"busy": 0.9, "idle": 0.95}  # default steps / best of 1 and all threads


def spinner(lifetime_s: float) -> subprocess.Popen:
    """A process that keeps one core busy (the first of ours) for at most ``lifetime_s`` seconds."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    code = ("import os, time\n"
            f"cpu = {cpu!r}\n"
            "if cpu is not None and hasattr(os, 'sched_setaffinity'): os.sched_setaffinity(0, {cpu})\n"
            f"end = time.time() + {lifetime_s:.0f}\n"
            "while time.time() < end: pass\n")
    return subprocess.Popen([sys.executable, "-c", code])


def stop(proc: subprocess.Popen) -> None:
    """End a process this script started, by its own handle; kill it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def one_run(threads: int | None, minutes: float, work: Path, name: str) -> dict:
    """One budgeted tiny run in a subprocess; its steps and the threads it used."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for name in ("PMLM_SMOKE", "CI"):  # the real preset, not the smoke one
        env.pop(name, None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = work / name
    cmd = [sys.executable, "-m", "pmlm.train", "--preset", "tiny", "--time-budget", str(minutes),
           "--out-dir", str(out), "--overwrite", "--no-progress", "--save-every", "0"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    t = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60 * minutes + 300)
    if proc.returncode != 0:
        raise SystemExit(f"busy_machine: the run {' '.join(cmd[2:])} failed: {proc.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    end = next(r for r in reversed(records) if r.get("event") == "end")
    return {"steps": end["step"], "threads": end.get("threads"), "chosen_by": end.get("threads_chosen_by"),
            "wall_s": round(time.time() - t, 1)}


def summarize(rounds: dict[str, list[dict[str, dict]]]) -> dict:
    """Per condition: steps of each setting by round, the default's ratio to the best other setting
    within each round, its median, and whether it meets the target."""
    out = {}
    for condition, by_round in rounds.items():
        ratios = [r["default"]["steps"] / max(1, max(v["steps"] for k, v in r.items() if k != "default"))
                  for r in by_round]
        median = statistics.median(ratios) if ratios else float("nan")
        out[condition] = {"steps": {k: [r[k]["steps"] for r in by_round] for k in by_round[0]} if by_round else {},
                          "default_threads": [r["default"]["threads"] for r in by_round],
                          "default_chosen_by": [r["default"]["chosen_by"] for r in by_round],
                          "ratio_by_round": [round(x, 3) for x in ratios], "ratio": round(median, 3),
                          "target": TARGETS.get(condition), "met": bool(median >= TARGETS.get(condition, 0))}
    return out


def words(summary: dict) -> list[str]:
    lines = []
    for condition, s in summary.items():
        steps = ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in s["steps"].items())
        lines.append(f"{condition}: steps {steps}; the default chose {s['default_threads']} thread(s) "
                     f"({s['default_chosen_by'][0] if s['default_chosen_by'] else '?'}) and made {s['ratio']:.2f}x "
                     f"the best of the others: {'meets' if s['met'] else 'MISSES'} the target {s['target']}")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0, help="time budget of each run (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of the three settings per condition")
    p.add_argument("--out", default=str(OUT), help=f"results file (default {OUT.relative_to(ROOT)})")
    args = p.parse_args(argv)
    if not args.minutes > 0 or args.rounds < 1:
        raise SystemExit("busy_machine: --minutes must be > 0 and --rounds >= 1")
    cores = usable_cores()
    settings = {"default": None, "1 thread": 1, f"{cores} threads": cores}
    if cores == 1:
        settings.pop(f"{cores} threads")
    rounds: dict[str, list[dict]] = {}
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="busy_machine-") as tmp:
        work = Path(tmp)
        for condition in ("idle", "busy"):
            spin = None
            try:
                if condition == "busy":
                    spin = spinner(60 * args.minutes * len(settings) * args.rounds + 300)
                    time.sleep(2.0)  # let it start spinning
                loads[condition] = round(busy_cores(1.0), 2)  # other processes' cores' worth, ours included
                print(f"{condition}: {loads[condition]:.2f} cores busy at the start", file=sys.stderr, flush=True)
                rounds[condition] = []
                names = list(settings)
                for r in range(args.rounds):
                    order = names[r % len(names):] + names[:r % len(names)]
                    result = {}
                    for name in order:
                        result[name] = one_run(settings[name], args.minutes, work, f"{condition}-{r}-{name.split()[0]}")
                        print(f"  {condition} round {r + 1}: {name}: {result[name]['steps']} steps "
                              f"({result[name]['threads']} threads)", file=sys.stderr, flush=True)
                    rounds[condition].append(result)
            finally:
                if spin is not None:
                    stop(spin)
    summary = summarize(rounds)
    record = {"machine": machine_info(), "minutes": args.minutes, "rounds": args.rounds, "cores": cores,
              "busy_cores_at_start": loads, "conditions": summary,
              "command": " ".join(["python benchmarks/busy_machine.py", *(sys.argv[1:] if argv is None else argv)])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(record, indent=2) + "\n")
    print("\n".join(words(summary)))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
