"""The fault hunt: bad input and faults against every entry point, each outcome classified.

Every case runs one command as a subprocess (``python -m pmlm.train``, ``pmlm.finetune``,
``pmlm.predict``, ``pmlm.prepare``, ``pmlm.course``, ``pmlm.demo``, ``pmlm.ablation``, and the
Python entry points ``load_model``, ``from_unilmv2``, ``export_hf``, ``save_pretrained`` and the
collator through small ``python -c`` scripts) in a folder of its own, with ``PMLM_SMOKE=1``, tiny
sizes and a time limit, and is classified from its exit status, its standard error and the files
it leaves:

* ``clean``     an error was expected: exit status not 0, no traceback, and the last line of
  standard error says what is wrong (it matches the case's expected words, e.g. the flag or file);
* ``handled``   valid input, or a fault the tool should survive: the case's own check of the result
  holds (a resumed run that finishes, a grader that scores a hanging task 0 and goes on);
* ``traceback`` a Python traceback on standard error;
* ``vague``     an error, but its last line lacks the expected words;
* ``silent``    exit status 0 where an error was expected, or a wrong result with exit status 0;
* ``refused``   valid input, refused;
* ``lost``      the case's check of the files after it failed (an earlier model no longer loads
  whole, a user's file changed, temporary files left behind);
* ``hung``      still running at the time limit (killed then);
* ``killed``    killed by a signal we did not send (the kernel's OOM killer: -9).

The Python scripts turn a ``ValueError``, ``TypeError`` or ``OSError`` (what a library raises for
bad arguments) into one ``error:`` line; any other exception prints its traceback. Faults of the
disk use a 1 MiB tmpfs (full) and a tmpfs mounted read-only (``mount`` as root; without it those
cases are skipped, with a note). kill -9 comes at chosen moments: at the first sight of a save's
temporary files, or a few milliseconds later.

    python benchmarks/fault_hunt.py                 # every case (minutes: the results file has the time)
    python benchmarks/fault_hunt.py --only predict  # the cases whose entry point or name matches
    python -m pmlm.reports                          # the table in docs/training.md

Results: ``results/fault_hunt.json`` (every case; counts by outcome; the machine; the date), and a
summary table on standard output. ``--only`` runs print their table and write nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "results" / "fault_hunt.json"
PY = sys.executable
OUTCOMES = ("clean", "handled", "traceback", "vague", "silent", "refused", "lost", "hung", "killed", "skipped")
GOOD = ("clean", "handled")
ENV = {**os.environ, "PMLM_SMOKE": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
ENV.pop("CI", None)
USER = {k: v for k, v in ENV.items() if k != "PMLM_SMOKE"}  # as a user runs it: no smoke mode


@dataclass
class Result:
    rc: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float
    note: str = ""


@dataclass
class Case:
    entry: str  # the entry point, e.g. "train", "finetune classify", "load_model"
    name: str  # what is wrong, in a few words
    cmd: Callable[[Path], list[str]] | None  # the command, given the case's folder
    expect: str  # "error", "ok" or "either" (a clean error, or a result the check accepts)
    words: str = ""  # regex the error's last line must match (case-insensitive)
    stdin: bytes | None = None
    setup: Callable[[Path], None] | None = None  # files the case needs, in its folder
    ok: Callable[[Result, Path], str | None] | None = None  # expected ok: None if right, else what is wrong
    after: Callable[[Path], str | None] | None = None  # files after: None, or what was lost
    runner: Callable[[Case, Path], Result] | None = None  # a case that is more than one command
    timeout: float = 120
    env: dict | None = None  # the environment, where not ENV
    accepted_if: str = ""  # a timed-out error case whose stderr matches this was accepted (silent), not hung
    needs_mount: bool = False
    how: str = ""  # a case of several commands: what it does, in words
    slug: str = field(default="", init=False)


# --------------------------------------------------------------------------------- fixtures

F: dict[str, Path] = {}  # shared inputs, built once: tokenizer, models, data files
MODEL = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=64)
SET = [x for k, v in MODEL.items() for x in ("--set", f"{k}={v}")]


def build_fixtures(root: Path) -> None:
    """The tokenizer, a model, a classifier, a seq2seq model, bad variants and data files."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    import pmlm
    from pmlm.data import load_documents, prepare_corpus
    from pmlm.finetune.decoding import DecodeConfig
    from pmlm.finetune.heads import PMLMClassifier
    from pmlm.finetune.saved import save_classifier, save_seq2seq
    from pmlm.tokenizer import save_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    tok = prepare_corpus(None, max_documents=8, vocab_size=500, max_length=32).tokenizer
    F["tok"] = root / "tokenizer.json"
    save_tokenizer(tok, F["tok"])
    torch.manual_seed(0)
    model = pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), **MODEL)).eval()
    F["model"] = model.save_pretrained(root / "model", tokenizer=tok)
    # the same model with one tensor broken: int64, bool, NaN, inf
    path = F["model"] / "model.safetensors"
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    for kind, bad in {"int64": lambda t: t.to(torch.int64), "bool": lambda t: t > 0,
                      "nan": lambda t: t.clone().fill_(float("nan")),
                      "inf": lambda t: t.clone().fill_(float("inf"))}.items():
        d = root / f"model-{kind}"
        shutil.copytree(F["model"], d)
        tensors = load_file(path)
        key = sorted(tensors)[0]
        tensors[key] = bad(tensors[key]).contiguous()
        save_file(tensors, d / "model.safetensors", metadata=metadata)
        F[f"model-{kind}"] = d
    d = root / "model-truncated"
    shutil.copytree(F["model"], d)
    (d / "model.safetensors").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    F["model-truncated"] = d
    d = root / "model-badconfig"
    shutil.copytree(F["model"], d)
    (d / "config.json").write_text('{"model_type": "pmlm", "hidden_size": ')
    F["model-badconfig"] = d
    d = root / "model-unknownfield"
    shutil.copytree(F["model"], d)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "num_experts": 8}))
    F["model-unknownfield"] = d
    d = root / "model-shape"
    shutil.copytree(F["model"], d)
    (d / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    F["model-shape"] = d
    d = root / "model-notok"
    shutil.copytree(F["model"], d)
    (d / "tokenizer.json").unlink()
    F["model-notok"] = d
    d = root / "model-othertok"
    shutil.copytree(F["model"], d)
    other = prepare_corpus(None, max_documents=8, vocab_size=300, max_length=32).tokenizer
    save_tokenizer(other, d / "tokenizer.json")
    F["model-othertok"] = d
    # fine-tuned models: a classifier (labels old-neg, old-pos: told apart from a new save) and seq2seq
    torch.manual_seed(1)
    clf = PMLMClassifier(pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), **MODEL)), 2).eval()
    F["clf"] = save_classifier(clf, tok, root / "clf", labels=["old-neg", "old-pos"], max_length=32)
    F["s2s"] = save_seq2seq(model, tok, root / "s2s", max_source_len=16, max_target_len=8,
                            decode=DecodeConfig(beam_size=2, max_length=8))
    d = root / "clf-badtask"
    shutil.copytree(F["clf"], d)
    (d / "task.json").write_text("{not json")
    F["clf-badtask"] = d
    # data
    texts = [f"{w} number {i}" for i, w in enumerate(["a gorgeous and witty film", "dull and lifeless",
                                                       "the best film of the year", "a waste of time"] * 20)]
    rows = "".join(f"{'fresh' if i % 2 == 0 else 'rotten'},{t}\n" for i, t in enumerate(texts))
    data = root / "data"
    data.mkdir()
    files = {
        "good.csv": b"label,text\n" + rows.encode(),
        "ragged.csv": b"label,text\nfresh,a witty film\nrotten\nfresh,dull\n",
        "one-class.tsv": b"label\ttext\n" + "".join(f"fresh\t{t}\n" for t in texts).encode(),
        "latin1.csv": b"label,text\nfresh,ok\nrotten,caf\xe9 cr\xe8me\n",
        "nul.csv": b"label,text\n\x00\x01\x02\n",
        "bad.jsonl": b'{"label": "fresh", "text": "ok"}\n{"label": "fresh", "text": \n',
        "header-only.csv": b"label,text\n",
        "no-text.csv": b"label,review\n" + b"".join(b"fresh,x%d\nrotten,y%d\n" % (i, i) for i in range(20)),
        "other-labels.csv": b"label,text\n" + b"".join(b"good,x%d\nbad,y%d\n" % (i, i) for i in range(20)),
        "empty.txt": b"",
        "latin1.txt": b"hello there\n\ncaf\xe9 au lait\n",
        "fake.txt.gz": b"this is not gzip data\n",
        "fake.parquet": b"this is not parquet\n",
        "binary.txt": bytes(range(256)) * 40,
        "garbage-tokenizer.json": b'{"this": "is not a tokenizer"}',
        "not-json.json": b"\x89PNG\r\n not json",
    }
    for name, content in files.items():
        (data / name).write_bytes(content)
        F[name] = data / name
    (data / "fake.csv.gz").write_bytes(b"not gzip\n")
    F["fake.csv.gz"] = data / "fake.csv.gz"
    docs, _ = load_documents()
    F["good.txt"] = data / "good.txt"
    F["good.txt"].write_text("\n\n".join(p for doc in docs[:3] for p in doc) + "\n")
    F["big.txt"] = data / "big.txt"  # about 4 MB: a prepare that lasts a few seconds
    F["big.txt"].write_text("\n\n".join(p for doc in docs for p in doc) + "\n")
    F["emptydir"] = data / "emptydir"
    F["emptydir"].mkdir()
    F["imagesdir"] = data / "imagesdir"
    F["imagesdir"].mkdir()
    (F["imagesdir"] / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    # a UniLMv2 checkpoint, the synthetic one of tests/test_unilmv2.py (official key names and shapes)
    sys.path.insert(0, str(ROOT / "tests"))
    from test_unilmv2 import CONFIG, V, synthetic_state
    u = root / "unilmv2"
    u.mkdir()
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(4)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{i}" for i in range(V - len(vocab))]
    (u / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (u / "vocab-short.txt").write_text("\n".join(vocab[:-5]) + "\n")
    (u / "config.json").write_text(json.dumps(CONFIG))
    (u / "config-partial.json").write_text(json.dumps({k: v for k, v in CONFIG.items() if k != "hidden_size"}))
    (u / "config-heads.json").write_text(json.dumps({**CONFIG, "num_attention_heads": 3}))
    (u / "config-garbage.json").write_text("{hidden_size: 16,")
    state = synthetic_state(False)
    torch.save(state, u / "unilm2.bin")
    torch.save({k: v.to(torch.int64) if k.endswith("word_embeddings.weight") else v for k, v in state.items()},
               u / "int64.bin")
    torch.save({k: v.fill_(float("nan")) if k.endswith("LayerNorm.bias") else v
                for k, v in synthetic_state(False).items()}, u / "nan.bin")
    torch.save([1, 2, 3], u / "list.bin")
    (u / "garbage.bin").write_bytes(b"not a checkpoint at all")
    (u / "pickle.bin").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run code
    for folder, names in (("unilmv2-dir", ("config.json", "vocab.txt")), ("unilmv2-novocab", ("config.json",))):
        (root / folder).mkdir()
        torch.save(state, root / folder / "pytorch_model.bin")
        for name in names:
            shutil.copy(u / name, root / folder / name)
        F[folder] = root / folder
    for name in ("vocab.txt", "vocab-short.txt", "config.json", "config-partial.json", "config-heads.json",
                 "config-garbage.json", "unilm2.bin", "int64.bin", "nan.bin", "list.bin", "garbage.bin",
                 "pickle.bin"):
        F[f"u:{name}"] = u / name
    # s2s-ft's JSON lines, good and bad; a UniLMv2 folder under the published names, and one without its vocabulary
    pair = lambda i: json.dumps({"src": f"thou shalt not go {i}", "tgt": f"you shall not go {i}"})  # noqa: E731
    lines = {"s2s-good.jsonl": "\n".join(pair(i) for i in range(40)) + "\n",
             "s2s-no-tgt.jsonl": pair(0) + "\n" + json.dumps({"src": "a source alone"}) + "\n",
             "s2s-empty-line.jsonl": pair(0) + "\n\n" + pair(1) + "\n",
             "s2s-bad-json.jsonl": pair(0) + "\n" + '{"src": "cut off' + "\n"}
    for name, text in lines.items():
        F[name] = data / name
        F[name].write_text(text)
    F["s2s-latin1.jsonl"] = data / "s2s-latin1.jsonl"
    F["s2s-latin1.jsonl"].write_bytes(pair(0).encode() + b'\n{"src": "caf\xe9", "tgt": "cafe"}\n')
    F["preds.txt"], F["gold.txt"], F["gold-short.txt"] = data / "preds.txt", data / "gold.txt", data / "gold-short.txt"
    F["preds.txt"].write_text("you shall not go\nthe light of the world\n")
    F["gold.txt"].write_text("you shall not go\nthe light of the earth\n")
    F["gold-short.txt"].write_text("you shall not go\n")
    F["preds-latin1.txt"] = data / "preds-latin1.txt"
    F["preds-latin1.txt"].write_bytes(b"caf\xe9\nthe light\n")
    # ablation results: whole records, then a torn last line; and damage in the middle
    records = (ROOT / "results" / "ablation-cpu.jsonl").read_text().splitlines()[:4]
    F["torn.jsonl"] = data / "torn.jsonl"
    F["torn.jsonl"].write_text("\n".join(records) + "\n" + records[4 % len(records)][:37])
    F["damaged.jsonl"] = data / "damaged.jsonl"
    F["damaged.jsonl"].write_text(records[0] + "\n" + records[1][:30] + "\n" + records[2] + "\n")


# ----------------------------------------------------------------------------- the disks

MOUNTS: list[Path] = []


def read_only_disk(d: Path) -> None:
    """``d/disk``: an empty tmpfs, mounted read-only."""
    mount_tmpfs(d / "disk")
    remount_ro(d / "disk")


def mount_tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    if ok:
        MOUNTS.append(path)
    return ok


def remount_ro(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True, timeout=30)


def unmount_all() -> None:
    while MOUNTS:
        path = MOUNTS.pop()
        for _ in range(20):  # a busy mount point gets a moment to let go
            if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
                break
            time.sleep(0.2)


def can_mount(work: Path) -> bool:
    probe = work / "mount-probe"
    ok = mount_tmpfs(probe)
    unmount_all()
    return ok


# --------------------------------------------------------------------------------- running

def run(cmd: list[str], *, stdin: bytes | None = None, timeout: float = 120, cwd: Path | None = None,
        env: dict | None = None) -> Result:
    """Run ``cmd`` in its own process group; on timeout the whole group is killed."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd or ROOT, env=env or ENV,
                            start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    return Result(rc, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - start)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def classify(case: Case, res: Result, d: Path) -> tuple[str, str]:
    """The outcome of one case, and a note saying why where it is not plain."""
    if res.rc is None:
        if case.expect == "error" and case.accepted_if and re.search(case.accepted_if, res.stderr):
            return "silent", f"accepted: a run started and was still going after {case.timeout:.0f} s"
        return "hung", f"still running after {case.timeout:.0f} s"
    if res.rc in (-9, 137) and case.runner is None:
        return "killed", "killed by SIGKILL (memory?)"
    if "Traceback (most recent call last)" in res.stderr:
        return "traceback", ""
    lost = case.after(d) if case.after else None
    if lost:
        return "lost", lost
    if case.expect == "ok" or (case.expect == "either" and res.rc == 0):
        problem = case.ok(res, d) if case.ok else (None if res.rc == 0 else f"exit {res.rc}")
        if problem is None:
            return "handled", res.note
        return ("silent" if res.rc == 0 else "refused"), problem
    if res.rc == 0:
        said = next((s for s in (last_line(res.stdout), last_line(res.stderr)) if len(s) > 3), "")
        return "silent", "exit 0 where an error was expected" + (f"; it said: {said[:100]}" if said else "")
    if not re.search(case.words, last_line(res.stderr), re.IGNORECASE):
        return "vague", f"the last line lacks /{case.words}/"
    return "clean", res.note


def run_case(case: Case, d: Path) -> Result:
    d.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(d)
    if case.runner:
        return case.runner(case, d)
    return run(case.cmd(d), stdin=case.stdin, timeout=case.timeout, env=case.env)


# ---------------------------------------------------------------------------- command lines

def train(*args: str, tokenizer: bool = True) -> list[str]:
    """A tiny training run: 3 steps of a 1-layer model on 8 documents, on one thread."""
    base = [PY, "-m", "pmlm.train", "--preset", "tiny", *SET, "--max-length", "32", "--steps", "3", "--batch-size",
            "4", "--eval-every", "0", "--save-every", "0", "--no-progress", "--threads", "1"]
    if "--data" not in args:  # a prepared directory brings its own documents and tokenizer
        base += ["--max-documents", "8"] + (["--tokenizer", str(F["tok"])] if tokenizer else ["--vocab-size", "500"])
    return base + list(args)


def finetune(task: str, *args: str) -> list[str]:
    limits = ["--max-steps", "2", "--train-limit", "64", "--eval-limit", "16"] if task == "classify" else \
        ["--max-steps", "1", "--train-limit", "32", "--eval-limit", "4"]  # one batch of the smoke preset
    return [PY, "-m", "pmlm.finetune", task, "--preset", "smoke", *limits, "--device", "cpu", "--threads", "1",
            *args]


def prepare(*args: str) -> list[str]:
    return [PY, "-m", "pmlm.prepare", *args, "--vocab-size", "300", "--max-length", "32", "--workers", "1",
            "--no-progress"]


def demo(d: Path, *args: str) -> list[str]:
    return [PY, "-m", "pmlm.demo", "--out-dir", str(d / "run"), "--figures", str(d / "fig"), *args]


def ablation(d: Path, *args: str) -> list[str]:
    return [PY, "-m", "pmlm.ablation", "--preset", "micro", "--out", str(d / "abl"), "--figure", "", *args]


WRAP = """
import sys
try:
{body}
except (ValueError, TypeError, OSError) as err:
    sys.exit(f"error: {{type(err).__name__}}: {{err}}")
"""


def script(body: str, *args) -> Callable[[Path], list[str]]:
    """A ``python -c`` command: ``body`` (``A`` = its arguments, ``D`` = the case's folder)."""
    code = WRAP.format(body=textwrap.indent("import sys, pmlm\nA = sys.argv[2:]\nD = sys.argv[1]\n"
                                            + textwrap.dedent(body).strip(), "    "))
    command = lambda d: [PY, "-c", code, str(d), *[str(a(d) if callable(a) else a) for a in args]]  # noqa: E731
    command.body = textwrap.dedent(body).strip()  # what the results file shows
    return command


def p(key: str) -> Callable[[Path], Path]:
    return lambda d: F[key]


# ------------------------------------------------------------------------- checks of results

def stdout_has(pattern: str) -> Callable[[Result, Path], str | None]:
    return lambda r, d: None if r.rc == 0 and re.search(pattern, r.stdout + r.stderr, re.I | re.M) else \
        f"exit {r.rc}, output lacks /{pattern}/"


def files_of(d: Path) -> dict[str, bytes]:
    return {str(q.relative_to(d)): q.read_bytes() for q in sorted(d.rglob("*")) if q.is_file()}


def snapshot_check(folder: Callable[[Path], Path]):
    """A setup that records ``folder``'s files, and an after-check that they are the same."""
    saved: dict[str, dict] = {}

    def setup(d: Path) -> None:
        saved[str(d)] = files_of(folder(d))

    def after(d: Path) -> str | None:
        now = files_of(folder(d))
        if now != saved[str(d)]:
            changed = sorted(set(now) ^ set(saved[str(d)]) | {k for k in now if now[k] != saved[str(d)].get(k)})
            return f"files changed: {changed[:4]}"
        return None
    return setup, after


def loads_whole(folder: Callable[[Path], Path], old: str | None = None) -> Callable[[Path], str | None]:
    """After-check: ``folder`` holds a whole fine-tuned model, the old one (fixture ``old``) or a new one."""
    def after(d: Path) -> str | None:
        code = (
            "import sys, json, torch\n"
            "from pmlm.finetune.saved import load_finetuned\n"
            "ft = load_finetuned(sys.argv[1])\n"
            "fp = lambda m: float(sum(p.double().sum() for p in m.state_dict().values()))\n"
            "print(json.dumps({'labels': ft.meta.get('labels'), 'backbone': fp(ft.model.backbone) "
            "if hasattr(ft.model, 'backbone') else fp(ft.model), 'head': fp(ft.model.head) "
            "if hasattr(ft.model, 'head') else None}))\n")
        res = run([PY, "-c", code, str(folder(d))], timeout=60)
        if res.rc != 0:
            return f"does not load: {last_line(res.stderr)[:160]}"
        if old is None:
            return None
        got, ref = json.loads(res.stdout.strip().splitlines()[-1]), json.loads(
            run([PY, "-c", code, str(F[old])], timeout=60).stdout.strip().splitlines()[-1])
        is_old = [got["labels"] == ref["labels"], got["backbone"] == ref["backbone"], got["head"] == ref["head"]]
        if any(is_old) and not all(is_old):
            return f"a mix of the old and the new model (labels, backbone, head old: {is_old})"
        return None
    return after


def no_tmp_left(folder: Callable[[Path], Path]) -> Callable[[Path], str | None]:
    def after(d: Path) -> str | None:
        left = [q.name for q in folder(d).rglob("*") if ".tmp" in q.name]
        return f"temporary files left: {left[:3]}" if left else None
    return after


def both(*checks):
    def after(d: Path) -> str | None:
        return next((m for m in (c(d) for c in checks if c) if m), None)
    return after


# --------------------------------------------------------------------------- multi-step cases

def kill_during_save(moment: str, delay: float) -> Callable[[Case, Path], Result]:
    """``finetune classify --save DIR`` over an earlier model, SIGKILLed at ``moment`` + ``delay`` s.

    ``moment``: "staging" (the first temporary entry beside or inside DIR), "metrics" (the metrics
    JSON printed, just before the save begins)."""
    def runner(case: Case, d: Path) -> Result:
        target = d / "ft"
        shutil.copytree(F["clf"], target)
        before = {q.name for q in d.iterdir()} | {q.name for q in target.iterdir()}
        start = time.monotonic()
        proc = subprocess.Popen(finetune("classify", "--save", str(target)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=ENV, cwd=ROOT, start_new_session=True)
        seen, note = False, ""
        try:
            if moment == "metrics":
                for line in proc.stdout:  # the metrics JSON ends with a line "}"
                    if line.strip() == b"}":
                        seen = True
                        break
            else:
                deadline = time.monotonic() + case.timeout
                while time.monotonic() < deadline and proc.poll() is None:
                    names = {q.name for q in d.iterdir()} | {q.name for q in target.iterdir()} \
                        if target.is_dir() else {q.name for q in d.iterdir()}
                    if names - before:
                        seen = True
                        break
                    time.sleep(0.0005)
            if seen:
                time.sleep(delay)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=case.timeout)
            err = proc.stderr.read().decode(errors="replace")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not seen:
            return Result(1, "", err, time.monotonic() - start, f"the moment never came (exit {proc.returncode})")
        note = ("killed mid-save" if proc.returncode == -signal.SIGKILL
                else f"the save ended first (exit {proc.returncode})")
        with contextlib.suppress(OSError, ValueError):
            labels = json.loads((target / "task.json").read_text())["labels"]
            note += ": the old model is there" if labels[0].startswith("old") else ": the new model is there"
        return Result(0, "", "", time.monotonic() - start, note)
    return runner


def two_trainings(case: Case, d: Path) -> Result:
    """A training run in the background; a second into its --out-dir once the first holds the lock."""
    from pmlm.locks import holder

    out = d / "run"
    first = subprocess.Popen(train("--out-dir", str(out), "--steps", "400", "--save-every", "100"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=ROOT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while holder(out / "run.lock") != first.pid and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        if holder(out / "run.lock") != first.pid:
            return Result(1, "", first.stderr.read().decode(errors="replace") if first.poll() is not None else "",
                          0, "the first run never took the lock")
        second = run(train("--out-dir", str(out), "--overwrite"), timeout=case.timeout)
        rc = first.wait(timeout=case.timeout)
        second.note = f"the first run ended with exit {rc}"
        if rc != 0:
            second.note += ": " + last_line(first.stderr.read().decode(errors="replace"))[:120]
        return second
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()


def run_whole(d: Path, steps: int) -> str | None:
    """None if ``d/run`` holds a loadable model and train metrics logged once per step, up to ``steps``."""
    res = run([PY, "-c", "import sys, pmlm; from pmlm.checkpoint import read_metrics; pmlm.load_model(sys.argv[1]); "
               "s = [r['step'] for r in read_metrics(sys.argv[1]) if r.get('split') == 'train']; "
               "assert s and s == sorted(set(s)) and s[-1] == int(sys.argv[2]), s[-5:]", str(d / "run"), str(steps)],
              timeout=60)
    return None if res.rc == 0 else f"the run's directory is not whole: {last_line(res.stderr)[:160]}"


def first_run_whole(d: Path) -> str | None:
    return run_whole(d, 400)


def two_prepares(case: Case, d: Path) -> Result:
    from pmlm.locks import holder

    out = d / "prep"
    first = subprocess.Popen(prepare(str(F["big.txt"]), "--out", str(out)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=ENV, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while holder(out / "prepare.lock") != first.pid and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        if holder(out / "prepare.lock") != first.pid:
            return Result(1, "", "", 0, f"the first prepare never took the lock (exit {first.poll()})")
        second = run(prepare(str(F["big.txt"]), "--out", str(out)), timeout=case.timeout)
        rc = first.wait(timeout=case.timeout)
        second.note = f"the first prepare ended with exit {rc}"
        return second
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()


def verify_prepared(d: Path) -> str | None:
    res = run([PY, "-m", "pmlm.prepare", "--out", str(d / "prep"), "--verify"], timeout=60)
    return None if res.rc == 0 else f"--verify fails: {last_line(res.stderr)[:160]}"


def kill_then_rerun(first_cmd: Callable[[Path], list[str]], ready: Callable[[Path], bool],
                    rerun: Callable[[Path], list[str]], *, delay: float = 0.0) -> Callable[[Case, Path], Result]:
    """Start ``first_cmd``, SIGKILL it once ``ready`` (+ ``delay`` s), then run ``rerun``."""
    def runner(case: Case, d: Path) -> Result:
        proc = subprocess.Popen(first_cmd(d), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                                cwd=ROOT, start_new_session=True)
        try:
            deadline = time.monotonic() + case.timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if ready(d):
                    break
                time.sleep(0.002)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        res = run(rerun(d), timeout=case.timeout)
        res.note = "killed, then run again" if proc.returncode == -signal.SIGKILL else \
            f"the first command ended before the kill (exit {proc.returncode})"
        return res
    return runner


# ------------------------------------------------------------------------------- the grader

HANGS = '''
def may_attend(q, k):
    while True:
        pass
'''


def hanging_copy(d: Path) -> None:
    """A student copy (the solution's pmlm/, without the grader) whose task-4 function never returns."""
    from pmlm.course.autograder import regions

    copy = d / "copy"
    shutil.copytree(ROOT / "pmlm", copy / "pmlm", ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "autograder", "checkpoints", "corpora"))
    path = copy / "pmlm" / "attention.py"
    path.write_text(regions.splice_function(path.read_text(), "may_attend", textwrap.dedent(HANGS).strip() + "\n"))
    (d / "tmp").mkdir()


def grade_hang(case: Case, d: Path) -> Result:
    env = {**ENV, "TMPDIR": str(d / "tmp")}
    return run([PY, "-m", "pmlm.course", "grade", str(d / "copy"), "--tasks", "4", "--timeout", "20"],
               timeout=case.timeout, env=env)


def hang_scored(r: Result, d: Path) -> str | None:
    text = r.stdout + r.stderr
    if r.rc != 1 or "timed out after 20 s" not in text:
        return f"exit {r.rc}; expected exit 1 and 'timed out after 20 s' in the report"
    left = list((d / "tmp").iterdir())
    return f"temporary folders left: {[q.name for q in left][:3]}" if left else None


# ----------------------------------------------------------------------------------- catalogue

def catalogue(mount_ok: bool) -> list[Case]:
    E, O, X = "error", "ok", "either"
    c: list[Case] = []

    def add(entry, name, cmd, expect, words="", **kw):
        c.append(Case(entry, name, cmd, expect, words, **kw))

    # --- pmlm.train: numbers refused when parsed
    for flags, words in [(["--lr", "inf"], "lr must be a finite"), (["--lr", "nan"], "lr must be a finite"),
                         (["--lr", "0"], "lr must be a finite"), (["--lr=-1e-3"], "lr must be"),
                         (["--grad-clip=-1"], "grad_clip"), (["--steps", "0"], "steps must be positive"),
                         (["--steps", "-5"], "steps"), (["--batch-size", "0"], "batch_size"),
                         (["--grad-accum", "0"], "grad_accum"), (["--threads", "0"], "threads"),
                         (["--time-budget", "inf"], "finite"), (["--time-budget", "0"], "time.budget"),
                         (["--device", "cuda"], "cuda"), (["--device", "tpu"], "device"),
                         (["--mask-ratio", "1.5"], "mask.ratio"), (["--val-fraction", "1.0"], "val.fraction"),
                         (["--warmup-fraction", "2"], "warmup"), (["--max-documents", "0"], "max.documents"),
                         (["--num-workers", "-1"], "num.workers"), (["--weight-decay", "nan"], "weight.decay"),
                         (["--eval-every", "-1"], "eval.every"), (["--max-length", "4"], "max.length"),
                         (["--logger", "nosuch"], "logger|nosuch"), (["--preset", "huge"], "invalid choice"),
                         (["--set", "num_layers=abc"], "num_layers"), (["--set", "num_experts=4"], "num_experts"),
                         (["--set", "hidden_size=31"], "hidden_size|num_heads|divisible")]:
        add("train", " ".join(flags), lambda d, f=flags: train("--out-dir", str(d / "run"), *f), E, words)
    add("train", "--lr 1e30 (diverges)", lambda d: train("--out-dir", str(d / "run"), "--lr", "1e30", "--steps", "20"),
        E, "diverged")
    add("train", "--vocab-size 5", lambda d: train("--out-dir", str(d / "run"), "--vocab-size", "5", tokenizer=False),
        E, "vocab")
    add("train", "--plan --device cuda without a GPU (prices it)",
        lambda d: [PY, "-m", "pmlm.train", "--preset", "tiny", "--plan", "--device", "cuda"], O,
        ok=stdout_has(r"flop|gpu"))
    # --- pmlm.train: data
    for key, words in [("latin1.txt", r"latin1.txt:3: byte 0xe9 is not UTF-8"), ("fake.txt.gz", r"fake.txt.gz.*gzip"),
                       ("empty.txt", r"empty.txt"), ("fake.parquet", r"fake.parquet.*parquet"),
                       ("binary.txt", r"binary.txt"), ("emptydir", r"emptydir"), ("imagesdir", r"imagesdir")]:
        add("train", f"--dataset {key}", lambda d, k=key: train("--out-dir", str(d / "run"), "--dataset", str(F[k])),
            E, words)
    add("train", "--dataset a missing path",
        lambda d: train("--out-dir", str(d / "run"), "--dataset", str(d / "nope.txt")),
        E, "nope.txt")
    add("train", "--data a folder prepare did not write", lambda d: train("--out-dir", str(d / "run"), "--data",
                                                                          str(F["model"])), E, "manifest", env=USER)
    add("train", "--tokenizer a missing file", lambda d: train("--out-dir", str(d / "run"), "--tokenizer",
                                                               str(d / "nope.json")), E, "nope.json")
    add("train", "--tokenizer not a tokenizer", lambda d: train("--out-dir", str(d / "run"), "--tokenizer",
                                                                str(F["garbage-tokenizer.json"])), E, "tokenizer")
    add("train", "--resume without a run", lambda d: train("--out-dir", str(d / "run"), "--resume"), E, "checkpoint")

    def corrupt_run(d: Path) -> None:
        shutil.copytree(F["model"], d / "run")
        (d / "run" / "checkpoint.pt").write_bytes(b"\x80\x02 cut off")
        (d / "run" / "metrics.jsonl").write_text('{"split": "train", "step": 1}\n')
    setup, after = snapshot_check(lambda d: d / "run")
    add("train", "--resume from a corrupt checkpoint.pt", lambda d: train("--out-dir", str(d / "run"), "--resume"), E,
        "checkpoint", setup=lambda d: (corrupt_run(d), setup(d)), after=after)
    setup2, after2 = snapshot_check(lambda d: d / "run")
    add("train", "an --out-dir that holds a run, no --overwrite", lambda d: train("--out-dir", str(d / "run")), E,
        "already holds a run", setup=lambda d: (corrupt_run(d), setup2(d)), after=after2)
    add("train", "--out-dir is a file", lambda d: train("--out-dir", str(F["good.csv"])), E, "good.csv|not a directory")
    add("train", "two runs into one --out-dir", None, E, r"in use by another training run.*pid", runner=two_trainings,
        how="pmlm.train --out-dir RUN --steps 400 in the background; once it holds RUN/run.lock, "
            "pmlm.train --out-dir RUN --overwrite; then RUN must hold the first run, whole",
        after=first_run_whole, timeout=180)
    add("train", "kill -9 after a checkpoint, then --resume",
        None, O, how="pmlm.train --out-dir RUN --steps 300 --save-every 20, kill -9 0.5 s after its first "
                     "checkpoint; then the same with --resume, which must finish all 300 steps",
        runner=kill_then_rerun(
            lambda d: train("--out-dir", str(d / "run"), "--steps", "300", "--save-every", "20"),
            lambda d: (d / "run" / "checkpoint.pt").is_file(),
            lambda d: train("--out-dir", str(d / "run"), "--steps", "300", "--save-every", "20", "--resume"),
            delay=0.5),
        ok=lambda r, d: run_whole(d, 300) if r.rc == 0 else f"exit {r.rc}: {last_line(r.stderr)[:120]}", timeout=180)
    if mount_ok:
        def full(d: Path) -> None:
            mount_tmpfs(d / "disk", size="1m")
        add("train", "read-only --out-dir", lambda d: train("--out-dir", str(d / "disk" / "run")), E,
            "read-only file system", setup=read_only_disk, needs_mount=True)
        add("train", "full disk (1 MiB) under --out-dir",
            lambda d: [PY, "-m", "pmlm.train", "--preset", "tiny", "--max-documents", "8", "--max-length", "32",
                       "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--no-progress", "--threads", "1",
                       "--tokenizer", str(F["tok"]), "--out-dir", str(d / "disk" / "run")], E, "no space left",
            setup=full, after=no_tmp_left(lambda d: d / "disk"), needs_mount=True)

    # --- pmlm.finetune: numbers
    for task in ("classify", "seq2seq"):
        for flags, words in [(["--batch-size", "0"], "batch_size"), (["--epochs", "0"], "epochs"),
                             (["--lr", "0"], "lr"), (["--lr", "inf"], "lr"), (["--max-steps=-1"], "max_steps"),
                             (["--train-limit", "0"], "train_limit"), (["--device", "cuda"], "cuda"),
                             (["--threads", "0"], "threads"), (["--preset", "huge"], "invalid choice"),
                             (["--size", "huge"], "huge|size")]:
            add(f"finetune {task}", " ".join(flags), lambda d, t=task, f=flags: finetune(t, *f), E, words)
    for flags, words in [(["--beam", "0"], "beam"), (["--length-penalty", "nan"], "length.penalty"),
                         (["--word-drop", "1.5"], "word.drop"), (["--min-length", "-1"], "min.length"),
                         (["--no-repeat-ngram", "-1"], "no.repeat")]:
        add("finetune seq2seq", " ".join(flags), lambda d, f=flags: finetune("seq2seq", *f), E, words)
    add("finetune seq2seq", "--beam 100000", lambda d: finetune("seq2seq", "--beam", "100000"), X,
        "beam of at most|beam", ok=stdout_has(r'"bleu"'), timeout=180)
    # --- pmlm.finetune: data and models
    for key, words in [("ragged.csv", r"ragged.csv:\d+: 1 field"), ("one-class.tsv", "at least two classes"),
                       ("latin1.csv", r"latin1.csv:3: byte 0xe9"), ("fake.csv.gz", r"fake.csv.gz.*gzip"),
                       ("nul.csv", r"nul.csv:2: a NUL byte"), ("bad.jsonl", r"bad.jsonl:2: not valid JSON"),
                       ("header-only.csv", "header-only.csv|no rows|too few rows|empty"), ("no-text.csv", "text"),
                       ("other-labels.csv", "not one of the classes")]:
        add("finetune classify", f"--data {key}", lambda d, k=key: finetune("classify", "--data", str(F[k])), E, words)
    add("finetune classify", "--data a missing file", lambda d: finetune("classify", "--data", str(d / "nope.csv")), E,
        "nope.csv")
    add("finetune classify", "--labels with one class", lambda d: finetune("classify", "--labels", "fresh"), E,
        "two classes")
    add("finetune classify", "--data a good CSV", lambda d: finetune("classify", "--data", str(F["good.csv"])), O,
        ok=stdout_has(r'"test_acc"'))
    for key, words in [("model-int64", r"not floating point.*int64"), ("model-bool", r"not floating point.*bool"),
                       ("model-nan", "NaN or infinite"), ("model-truncated", "model.safetensors"),
                       ("model-badconfig", "config.json")]:
        add("finetune classify", f"--pretrained {key}",
            lambda d, k=key: finetune("classify", "--pretrained", str(F[k])),
            E, words)
    add("finetune classify", "--pretrained a missing folder",
        lambda d: finetune("classify", "--pretrained", str(d / "nope")), E, "nope")
    add("finetune classify", "--save to a path that is a file",
        lambda d: finetune("classify", "--save", str(F["good.csv"])), E, "good.csv|not a directory")
    for moment, delay in [("metrics", 0.0), ("staging", 0.0), ("staging", 0.003), ("staging", 0.015),
                          ("staging", 0.05)]:
        add("finetune classify", f"kill -9 during --save over a model ({moment} +{delay * 1e3:.0f} ms)", None, O,
            runner=kill_during_save(moment, delay), ok=lambda r, d: None,
            how=f"pmlm.finetune classify --save DIR over a saved classifier, kill -9 {delay * 1e3:.0f} ms after "
                + ("it prints its metrics" if moment == "metrics" else "the save's first temporary file appears")
                + "; then DIR must load, all old or all new",
            after=both(loads_whole(lambda d: d / "ft", "clf"), no_tmp_left(lambda d: d / "ft")), timeout=120)

    def two_saves(case: Case, d: Path) -> Result:
        procs = [subprocess.Popen(finetune("classify", "--seed", str(i), "--save", str(d / "ft")),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=ROOT,
                                  start_new_session=True) for i in (1, 2)]
        start = time.monotonic()
        try:
            rcs = [q.wait(timeout=case.timeout) for q in procs]
        finally:
            for q in procs:
                if q.poll() is None:
                    os.killpg(q.pid, signal.SIGKILL)
                    q.wait()
        errs = [q.stderr.read().decode(errors="replace") for q in procs]
        bad = [i for i, rc in enumerate(rcs) if rc != 0]
        if bad:  # one refused (a lock) is fine too: the other's model is there
            return Result(0 if len(bad) == 1 else 1, "", errs[bad[0]], time.monotonic() - start,
                          f"exits {rcs}: {last_line(errs[bad[0]])[:100]}")
        return Result(0, "", "\n".join(errs), time.monotonic() - start, "both saved")
    add("finetune classify", "two --save into one folder at once", None, O, runner=two_saves,
        how="two pmlm.finetune classify --save DIR at once; then DIR must load whole",
        ok=lambda r, d: None if r.rc == 0 else r.note, after=loads_whole(lambda d: d / "ft"), timeout=180)
    if mount_ok:
        def ro_with_model(d: Path) -> None:
            mount_tmpfs(d / "disk", size="8m")
            shutil.copytree(F["clf"], d / "disk" / "ft")
            remount_ro(d / "disk")

        def full_with_model(d: Path) -> None:
            mount_tmpfs(d / "disk", size="1m")
            shutil.copytree(F["clf"], d / "disk" / "ft")
        add("finetune classify", "--save into a read-only folder (over a model)",
            lambda d: finetune("classify", "--size", "tiny", "--save", str(d / "disk" / "ft")), E,
            r"read-only file system.*metrics printed above", setup=ro_with_model,
            after=loads_whole(lambda d: d / "disk" / "ft", "clf"), needs_mount=True)
        add("finetune classify", "--save on a full disk (over a model)",
            lambda d: finetune("classify", "--size", "tiny", "--save", str(d / "disk" / "ft")), E,
            r"no space left.*metrics printed above", setup=full_with_model,
            after=both(loads_whole(lambda d: d / "disk" / "ft", "clf"), no_tmp_left(lambda d: d / "disk")),
            needs_mount=True)

    # --- pmlm.predict
    pc = lambda d: [PY, "-m", "pmlm.predict", "classify", "--model", str(F["clf"])]  # noqa: E731
    pg = lambda *a: (lambda d: [PY, "-m", "pmlm.predict", "generate", "--model", str(F["s2s"]), *a])  # noqa: E731
    add("predict classify", "binary bytes on stdin", pc, E, "binary data", stdin=b"a film\n\x00\x01\x02\xff\n")
    add("predict classify", "Latin-1 bytes on stdin", pc, E, "not UTF-8", stdin=b"a film\ncaf\xe9 cr\xe8me\n")
    add("predict classify", "empty stdin", pc, X, "no input|no text|empty", stdin=b"",
        ok=lambda r, d: None if r.stdout.strip() == "" else "printed something for no input")
    add("predict classify", "two texts on stdin", pc, O, stdin=b"a witty film\n\ndull and lifeless\n",
        ok=lambda r, d: None if r.rc == 0 and len(r.stdout.strip().splitlines()) == 2 and all(
            line.split("\t")[0] in ("old-neg", "old-pos") for line in r.stdout.strip().splitlines())
        else f"exit {r.rc}, output {r.stdout[:80]!r}")
    add("predict classify", "--file a Latin-1 file", lambda d: pc(d) + ["--file", str(F["latin1.csv"])], E,
        r"latin1.csv.*UTF-8")
    add("predict classify", "--file a missing file", lambda d: pc(d) + ["--file", str(d / "nope.txt")], E, "nope.txt")
    add("predict classify", "--model a folder that does not exist",
        lambda d: [PY, "-m", "pmlm.predict", "classify", "--model", str(d / "nope")], E, "nope", stdin=b"x\n")
    add("predict classify", "--model a pre-trained (not fine-tuned) model",
        lambda d: [PY, "-m", "pmlm.predict", "classify", "--model", str(F["model"])], E, "fine-tuned", stdin=b"x\n")
    add("predict classify", "--model a seq2seq model",
        lambda d: [PY, "-m", "pmlm.predict", "classify", "--model", str(F["s2s"])], E, "generate", stdin=b"x\n")
    add("predict classify", "--model with a broken task.json",
        lambda d: [PY, "-m", "pmlm.predict", "classify", "--model", str(F["clf-badtask"])], E, "task.json",
        stdin=b"x\n")
    add("predict generate", "--beam 100000", pg("--beam", "100000"), X, "beam of at most", stdin=b"a film\n",
        ok=lambda r, d: None if r.stdout.count("\n") == 1 else f"not one line of output: {r.stdout[:80]!r}",
        timeout=180)
    add("predict generate", "--beam 0", pg("--beam", "0"), E, "beam", stdin=b"a film\n")
    add("predict generate", "--max-length 0", pg("--max-length", "0"), E, "max.length", stdin=b"a film\n")
    add("predict generate", "--max-length -3", pg("--max-length", "-3"), E, "max.length", stdin=b"a film\n")
    long = b" ".join(b"word%d" % i for i in range(60)) + b"\n"
    add("predict generate", "a source longer than fine-tuned on", pg(), E, "--truncate", stdin=long)
    add("predict generate", "the same with --truncate", pg("--truncate"), O, stdin=long,
        ok=lambda r, d: None if r.rc == 0 and len(r.stdout.splitlines()) == 1 else f"exit {r.rc}")
    add("predict generate", "--model a classifier", lambda d: [PY, "-m", "pmlm.predict", "generate", "--model",
                                                               str(F["clf"])], E, "classify", stdin=b"x\n")
    add("predict generate", "binary bytes on stdin", pg(), E, "binary data", stdin=bytes(range(256)))

    add("predict generate", "--file a .jsonl, --out a file",
        lambda d: pg("--file", str(F["s2s-good.jsonl"]), "--out", str(d / "preds.txt"))(d), O,
        ok=lambda r, d: None if r.rc == 0 and len((d / "preds.txt").read_text().splitlines()) == 40
        else f"exit {r.rc}, not 40 lines")
    add("predict generate", "--file s2s-no-tgt.jsonl (decoding needs no target)",
        lambda d: pg("--file", str(F["s2s-no-tgt.jsonl"]))(d), O,
        ok=lambda r, d: None if r.rc == 0 and len(r.stdout.splitlines()) == 2 else f"exit {r.rc}")
    for key, words in [("s2s-bad-json.jsonl", r"s2s-bad-json.jsonl:2"), ("s2s-latin1.jsonl", r"s2s-latin1.jsonl.*UTF-8.*line 2"),
                       ("s2s-empty-line.jsonl", r"s2s-empty-line.jsonl:2|empty")]:
        add("predict generate", f"--file {key}", lambda d, k=key: pg("--file", str(F[k]))(d), E, words)
    add("predict generate", "--forbid-ignore-word without n-gram blocking", pg("--forbid-ignore-word", "."), E,
        "forbid", stdin=b"a film\n")
    add("predict generate", "--ngram-size without --forbid-duplicate-ngrams", pg("--ngram-size", "2"), E, "ngram",
        stdin=b"a film\n")
    add("predict generate", "--length-penalty nan", pg("--length-penalty", "nan"), E, "length.penalty",
        stdin=b"a film\n")
    # --- pmlm.evaluate
    ev = lambda *keys, extra=(): (lambda d: [PY, "-m", "pmlm.evaluate", "--pred", str(F[keys[0]]),  # noqa: E731
                                             "--gold", str(F[keys[1]]), *extra])
    add("evaluate", "ROUGE, BLEU and chrF of a good pair", ev("preds.txt", "gold.txt", extra=(
        "--metric", "rouge", "bleu", "chrf")), O, ok=stdout_has(r"(?i)rouge"))
    add("evaluate", "a gold file of another number of lines", ev("preds.txt", "gold-short.txt"), E, "line")
    add("evaluate", "a missing prediction file",
        lambda d: [PY, "-m", "pmlm.evaluate", "--pred", str(d / "nope.txt"), "--gold", str(F["gold.txt"])], E,
        "nope.txt")
    add("evaluate", "a Latin-1 prediction file", ev("preds-latin1.txt", "gold.txt"), E, r"preds-latin1.txt.*UTF-8")
    add("evaluate", "an unknown metric", ev("preds.txt", "gold.txt", extra=("--metric", "meteor")), E,
        "meteor|invalid choice")
    # --- pmlm.finetune seq2seq on a file, from a UniLMv2 folder
    for key, words in [("s2s-no-tgt.jsonl", r"s2s-no-tgt.jsonl:2.*tgt"), ("s2s-bad-json.jsonl", r"s2s-bad-json.jsonl:2"),
                       ("s2s-latin1.jsonl", r"s2s-latin1.jsonl:2.*UTF-8"),
                       ("s2s-empty-line.jsonl", r"s2s-empty-line.jsonl:2|empty")]:
        add("finetune seq2seq", f"--data {key}", lambda d, k=key: finetune("seq2seq", "--data", str(F[k])), E, words)
    add("finetune seq2seq", "--data a missing file", lambda d: finetune("seq2seq", "--data", str(d / "nope.jsonl")),
        E, "nope.jsonl")
    add("finetune seq2seq", "--pretrained a UniLMv2 folder, --data a .jsonl",
        lambda d: finetune("seq2seq", "--pretrained", str(F["unilmv2-dir"]), "--data", str(F["s2s-good.jsonl"]),
                           "--max-source-length", "24", "--max-target-length", "24"), O,
        ok=stdout_has(r'"n_train": 32'))  # --data alone: training only, nothing to decode
    add("finetune seq2seq", "--pretrained a UniLMv2 folder without vocab.txt",
        lambda d: finetune("seq2seq", "--pretrained", str(F["unilmv2-novocab"]), "--data", str(F["s2s-good.jsonl"])),
        E, "vocab.txt")

    # --- pmlm.prepare
    add("prepare", "an empty source", lambda d: prepare(str(F["empty.txt"]), "--out", str(d / "prep")), E, "empty")
    add("prepare", "a glob that matches nothing", lambda d: prepare(str(d / "*.nothing"), "--out", str(d / "prep")), E,
        r"\*\.nothing|matches no")
    add("prepare", "a fake .gz", lambda d: prepare(str(F["fake.txt.gz"]), "--out", str(d / "prep")), E, "gzip")
    add("prepare", "a Latin-1 .txt", lambda d: prepare(str(F["latin1.txt"]), "--out", str(d / "prep")), E,
        r"latin1.txt:3: byte 0xe9")
    add("prepare", "a folder of images", lambda d: prepare(str(F["imagesdir"]), "--out", str(d / "prep")), E,
        "imagesdir|photo.png")
    add("prepare", "--max-length 3", lambda d: [PY, "-m", "pmlm.prepare", str(F["good.txt"]), "--out", str(d / "prep"),
                                               "--max-length", "3", "--no-progress"], E, "max.length")
    add("prepare", "--vocab-size 0", lambda d: [PY, "-m", "pmlm.prepare", str(F["good.txt"]), "--out", str(d / "prep"),
                                               "--vocab-size", "0", "--no-progress"], E, "vocab")
    add("prepare", "--workers 0", lambda d: [PY, "-m", "pmlm.prepare", str(F["good.txt"]), "--out", str(d / "prep"),
                                            "--workers", "0", "--no-progress"], E, "workers")
    add("prepare", "--weights for two sources, one given",
        lambda d: prepare(str(F["good.txt"]), "--out", str(d / "prep"), "--weights", "1", "2"), E, "weight")
    add("prepare", "--val-fraction 1.5", lambda d: prepare(str(F["good.txt"]), "--out", str(d / "prep"),
                                                          "--val-fraction", "1.5"), E, "val.fraction")
    add("prepare", "--tokenizer not a tokenizer",
        lambda d: prepare(str(F["good.txt"]), "--out", str(d / "prep"), "--tokenizer",
                          str(F["garbage-tokenizer.json"])),
        E, "tokenizer")
    setup3, after3 = snapshot_check(lambda d: d / "mine")
    add("prepare", "--out a folder of a user's files",
        lambda d: prepare(str(F["good.txt"]), "--out", str(d / "mine")), E, "mine",
        setup=lambda d: ((d / "mine").mkdir(), (d / "mine" / "notes.txt").write_text("mine"), setup3(d)), after=after3)
    add("prepare", "a good text file, then --verify",
        lambda d: [PY, "-c", "import subprocess, sys; [subprocess.run(c, check=True) for c in "
                   "(sys.argv[1:-1], [sys.argv[1], '-m', 'pmlm.prepare', '--out', sys.argv[-1], '--verify'])]",
                   *prepare(str(F["good.txt"]), "--out", str(d / "prep")), str(d / "prep")], O,
        ok=lambda r, d: None if r.rc == 0 and verify_prepared(d) is None else f"exit {r.rc}")

    def truncated_shard(d: Path) -> None:
        subprocess.run(prepare(str(F["good.txt"]), "--out", str(d / "prep")), env=ENV, check=True, capture_output=True)
        shard = next((d / "prep").glob("train-*.bin"))
        shard.write_bytes(shard.read_bytes()[:-10])
    add("prepare", "--verify a truncated shard", lambda d: [PY, "-m", "pmlm.prepare", "--out", str(d / "prep"),
                                                           "--verify"], E, r"train-00000.bin", setup=truncated_shard)
    add("train", "--data on a truncated shard",
        lambda d: train("--out-dir", str(d / "run"), "--data", str(d / "prep")), E, r"train-00000",
        setup=truncated_shard, env=USER)

    def prepared(d: Path) -> None:
        subprocess.run(prepare(str(F["good.txt"]), "--out", str(d / "prep")), env=ENV, check=True, capture_output=True)
    for env, how in [(USER, ""), (ENV, " under PMLM_SMOKE=1")]:
        add("train", "--data a prepared folder" + how, lambda d: train("--out-dir", str(d / "run"), "--data",
                                                                     str(d / "prep")), O, setup=prepared, env=env,
            ok=lambda r, d: run_whole(d, 3) if r.rc == 0 else f"exit {r.rc}")
    add("prepare", "two prepares into one --out", None, E, r"pid \d+", runner=two_prepares, after=verify_prepared,
        how="pmlm.prepare BIG --out DIR in the background; once it holds DIR/prepare.lock, the same again; "
            "then DIR must pass --verify",
        timeout=180)
    add("prepare", "kill -9 mid-prepare, then run again", None, O,
        how="pmlm.prepare BIG --out DIR, kill -9 0.5 s after DIR holds 3 files; the same again, then --verify",
        runner=kill_then_rerun(
        lambda d: prepare(str(F["big.txt"]), "--out", str(d / "prep")),
        lambda d: (d / "prep").is_dir() and len(list((d / "prep").iterdir())) >= 3,
        lambda d: prepare(str(F["big.txt"]), "--out", str(d / "prep")), delay=0.5),
        ok=lambda r, d: (None if r.rc == 0 and verify_prepared(d) is None
                         else f"exit {r.rc}: {last_line(r.stderr)[:100]}"),
        timeout=180)
    if mount_ok:
        add("prepare", "read-only --out", lambda d: prepare(str(F["good.txt"]), "--out", str(d / "disk" / "prep")), E,
            "read-only file system", setup=read_only_disk, needs_mount=True)
        add("prepare", "full disk (64 KiB) under --out",
            lambda d: prepare(str(F["good.txt"]), "--out", str(d / "disk" / "prep")), E, "no space left",
            setup=lambda d: mount_tmpfs(d / "disk", size="64k"), needs_mount=True)

    # --- pmlm.course
    setup4, after4 = snapshot_check(lambda d: d / "out")
    add("course build", "into a folder of a teacher's files",
        lambda d: [PY, "-m", "pmlm.course", "build", str(d / "out"), "--tasks", "4"], E, "was not written by",
        setup=lambda d: ((d / "out" / "autograder").mkdir(parents=True),
                         (d / "out" / "autograder" / "my_tests.py").write_text("# mine\n"), setup4(d)), after=after4)
    add("course build", "--tasks 99", lambda d: [PY, "-m", "pmlm.course", "build", str(d / "out"), "--tasks", "99"], E,
        "99")
    add("course build", "--tasks abc", lambda d: [PY, "-m", "pmlm.course", "build", str(d / "out"), "--tasks", "abc"],
        E, "abc|task")
    add("course build", "twice without --force",
        lambda d: [PY, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                   "sys.exit(subprocess.run(sys.argv[1:]).returncode)",
                   PY, "-m", "pmlm.course", "build", str(d / "out"), "--tasks", "4"], E, "--force")
    if mount_ok:
        add("course build", "into a read-only folder",
            lambda d: [PY, "-m", "pmlm.course", "build", str(d / "disk" / "out"), "--tasks", "4"], E,
            "read-only file system", setup=read_only_disk, needs_mount=True)
    add("course grade", "a folder that does not exist",
        lambda d: [PY, "-m", "pmlm.course", "grade", str(d / "nope"), "--tasks", "4"], E, "nope")
    add("course grade", "a folder without pmlm/", lambda d: [PY, "-m", "pmlm.course", "grade", str(F["emptydir"]),
                                                            "--tasks", "4"], E, "pmlm")
    add("course grade", "--tasks 0", lambda d: [PY, "-m", "pmlm.course", "grade", str(ROOT), "--tasks", "0"], E,
        "0|task")
    add("course grade", "--timeout 0", lambda d: [PY, "-m", "pmlm.course", "grade", str(ROOT), "--tasks", "6",
                                                 "--timeout", "0"], E, "--timeout must be")
    add("course grade", "--timeout nan", lambda d: [PY, "-m", "pmlm.course", "grade", str(ROOT), "--tasks", "6",
                                                   "--timeout", "nan"], E, "timeout")
    add("course grade", "a task whose function runs `while True: pass`", None, O, setup=hanging_copy,
        runner=grade_hang, ok=hang_scored, timeout=180,
        how="pmlm.course grade COPY --tasks 4 --timeout 20, COPY's may_attend a `while True: pass`; the task must "
            "score 0 with 'timed out after 20 s', and no temporary folder stay")

    # --- pmlm.demo, as a user runs it (no PMLM_SMOKE, which keeps a handful of steps and ignores --minutes);
    # a bad value that is accepted starts a 5-minute run: seen in its progress bar at the time limit
    for flags, words in [(["--minutes", "0"], "minutes|time_budget"), (["--minutes", "-5"], "minutes|time_budget"),
                         (["--minutes", "nan"], "minutes|time_budget"), (["--minutes", "inf"], "minutes|time_budget"),
                         (["--steps", "0"], "steps"), (["--steps", "-1"], "steps"),
                         (["--examples", "-1", "--steps", "3"], "examples"),
                         (["--threads", "0", "--steps", "3"], "threads"),
                         (["--preset", "base"], "invalid choice")]:
        add("demo", " ".join(flags), lambda d, f=flags: demo(d, *f), E, words, env=USER, timeout=60,
            accepted_if="pre-training")
    add("demo", "--dataset a missing path", lambda d: demo(d, "--steps", "2", "--dataset", str(d / "nope.txt")), E,
        "nope.txt", env=USER, timeout=60, accepted_if="pre-training")

    # --- pmlm.ablation
    torn_setup = lambda d: shutil.copy(F["torn.jsonl"], d / "torn.jsonl")  # noqa: E731
    add("ablation", "a torn last line of the results file (--report-only)",
        lambda d: ablation(d, "--results", str(d / "torn.jsonl"), "--report-only"), O, setup=torn_setup,
        ok=lambda r, d: None if r.rc == 0 and "cut off" in r.stderr else f"exit {r.rc}, no warning")
    add("ablation", "damage in the middle of the results file",
        lambda d: ablation(d, "--results", str(F["damaged.jsonl"]), "--report-only"), E, r"damaged.jsonl:2")
    add("ablation", "--report-only without a results file",
        lambda d: ablation(d, "--results", str(d / "none.jsonl"), "--report-only"), X, r"none.jsonl|no results",
        ok=lambda r, d: None if "no results" in (r.stdout + r.stderr).lower() else "exit 0 without saying so")
    add("ablation", "--variants XYZ", lambda d: ablation(d, "--variants", "XYZ"), E, "invalid choice")
    add("ablation", "--seeds abc", lambda d: ablation(d, "--seeds", "abc"), E, "invalid int")

    # --- the Python entry points: load_model and its relatives
    load = "pmlm.load_model(A[0]); print('loaded')"
    for key, words in [("model-int64", r"not floating point.*int64"), ("model-bool", r"not floating point.*bool"),
                       ("model-nan", "NaN or infinite"), ("model-inf", "NaN or infinite"),
                       ("model-truncated", "model.safetensors"), ("model-badconfig", "config.json"),
                       ("model-unknownfield", "num_experts"), ("model-shape", "shape|intermediate|ffn"),
                       ("model-notok", "tokenizer.json"), ("model-othertok", "tokenizer|vocab"),
                       ("emptydir", "config.json"), ("good.csv", "not a directory")]:
        add("load_model", key, script(load, p(key)), E, words)
    add("load_model", "a missing folder", script(load, lambda d: d / "nope"), E, "nope")
    add("load_model", "a good model", script(load, p("model")), O, ok=stdout_has("^loaded"))
    add("import_hf", "a folder export_hf did not write", script("pmlm.import_hf(A[0])", p("model")), E,
        "export_hf|pmlm_config")
    # from_unilmv2
    u = lambda ckpt, cfg="config.json", vocab="vocab.txt": script(  # noqa: E731
        "pmlm.from_unilmv2(A[0], A[1], A[2]); print('loaded')", p(f"u:{ckpt}"), p(f"u:{cfg}"), p(f"u:{vocab}"))
    add("from_unilmv2", "a good synthetic checkpoint", u("unilm2.bin"), O, ok=stdout_has("^loaded"))
    for name, fn, words in [("int64 word embeddings", u("int64.bin"), r"not floating point|int64"),
                            ("NaN LayerNorm bias", u("nan.bin"), "NaN"),
                            ("a list, not a state dict", u("list.bin"), "holds a list"),
                            ("garbage bytes", u("garbage.bin"), "cannot be read"),
                            ("a pickle that runs code", u("pickle.bin"), "cannot be read"),
                            ("a config without hidden_size", u("unilm2.bin", "config-partial.json"), "hidden_size"),
                            ("a config of 3 heads for 16 dims", u("unilm2.bin", "config-heads.json"), "head"),
                            ("a config that is not JSON", u("unilm2.bin", "config-garbage.json"),
                             "config-garbage.json"),
                            ("a vocabulary of another size", u("unilm2.bin", vocab="vocab-short.txt"), "pieces")]:
        add("from_unilmv2", name, fn, E, words)
    add("from_unilmv2", "a missing checkpoint", script("pmlm.from_unilmv2(A[0], A[1], A[2])", lambda d: d / "nope.bin",
                                                       p("u:config.json"), p("u:vocab.txt")), E, "nope.bin")
    add("from_unilmv2", "a missing vocab.txt", script("pmlm.from_unilmv2(A[0], A[1], A[2])", p("u:unilm2.bin"),
                                                      p("u:config.json"), lambda d: d / "vocab.txt"), E, "vocab.txt")
    # export_hf and save_pretrained
    export = "m, t = pmlm.load_model(A[0]); pmlm.export_hf(m, t, A[1]); print('exported')"
    setup5, after5 = snapshot_check(lambda d: d / "theirs")
    add("export_hf", "into a folder with a user's config.json", script(export, p("model"), lambda d: d / "theirs"), E,
        "not written by export_hf", setup=lambda d: (
            (d / "theirs").mkdir(), (d / "theirs" / "config.json").write_text('{"model_type": "bert"}'), setup5(d)),
        after=after5)
    add("export_hf", "into a path that is a file", script(export, p("model"), p("good.csv")), E, "good.csv|directory")
    add("export_hf", "a new folder, then import_hf",
        script(export + "\nm2, _ = pmlm.import_hf(A[1]); import torch\n"
               "assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))\n"
               "print('same')", p("model"), lambda d: d / "hf"), O, ok=stdout_has("^same"))
    save = "m, t = pmlm.load_model(A[0]); m.save_pretrained(A[1], tokenizer=t, files={A[2]: 'x'}); print('saved')"
    for name, words in [("../x", "plain file name"), ("/tmp/fault-hunt-abs", "plain file name"),
                        ("a/b", "plain file name"), ("config.json", "save_pretrained itself"), ("", "plain file name")]:
        add("save_pretrained", f"files={{{name!r}: ...}}", script(save, p("model"), lambda d: d / "m", name), E, words,
            after=lambda d, n=name: "a file was written outside the folder" if (
                n.startswith("..") and (d / "x").exists()) or (n.startswith("/") and Path(n).exists()) else None)
    add("save_pretrained", "files={'notes.txt': ...} beside the model", script(save, p("model"), lambda d: d / "m",
                                                                              "notes.txt"), O,
        ok=lambda r, d: None if r.rc == 0 and (d / "m" / "notes.txt").read_text() == "x" else f"exit {r.rc}")
    if mount_ok:
        big = ("import torch; m, t = pmlm.load_model(A[0]); c = m.config.to_dict(); "
               "c.update(hidden_size=256, intermediate_size=1024, num_heads=4)\n"
               "pmlm.PMLMModel(pmlm.PMLMConfig.from_dict(c)).save_pretrained(A[1], tokenizer=t)")

        def small_model_on_full_disk(d: Path) -> None:
            mount_tmpfs(d / "disk", size="1m")
            shutil.copytree(F["model"], d / "disk" / "m")
        add("save_pretrained", "a model larger than the disk (1 MiB) over a saved one",
            script(big, p("model"), lambda d: d / "disk" / "m"), E, "no space left", setup=small_model_on_full_disk,
            after=both(no_tmp_left(lambda d: d / "disk"), lambda d: None if run(
                [PY, "-c", "import sys, pmlm; pmlm.load_model(sys.argv[1])", str(d / "disk" / "m")]).rc == 0
                else "the old model no longer loads"), needs_mount=True)
        add("export_hf", "into a read-only folder", script(export, p("model"), lambda d: d / "disk" / "hf"), E,
            "read-only file system", setup=read_only_disk,
            needs_mount=True)

    # --- the collator
    coll = ("K = dict(mask_id=4, pseudo_id=5, pad_id=0, vocab_size=50, eos_id=3)\nK.update(dict({kw}))\n"
            "C = pmlm.PMLMCollator(**K)\n"
            "b = C({batch}); print('collated', tuple(b['input_ids'].shape))")
    for name, kw, batch, words in [
            ("mask_id outside the vocabulary", "mask_id=50", "[[6, 7, 8]]", "mask_id"),
            ("pad_id -1", "pad_id=-1", "[[6, 7, 8]]", "pad_id"),
            ("mask_ratio 1.5", "mask_ratio=1.5", "[[6, 7, 8]]", "mask_ratio"),
            ("mask_ratio nan", "mask_ratio=float('nan')", "[[6, 7, 8]]", "mask_ratio"),
            ("block_len (6, 2)", "block_len=(6, 2)", "[[6, 7, 8]]", "block_len"),
            ("block_prob 2", "block_prob=2.0", "[[6, 7, 8]]", "block_prob"),
            ("replace_probs that do not sum to 1", "replace_probs=(0.5, 0.5, 0.5)", "[[6, 7, 8]]", "replace_probs"),
            ("factorization 'spans'", "factorization='spans'", "[[6, 7, 8]]", "factorization"),
            ("objective 'mlm'", "objective='mlm'", "[[6, 7, 8]]", "objective"),
            ("an empty batch", "", "[]", "empty"),
            ("an empty sequence", "", "[[]]", "empty"),
            ("an id outside the vocabulary", "", "[[6, 99999, 8]]", "99999|vocab"),
            ("a negative id", "", "[[6, -3, 8]]", "-3|vocab|negative"),
            ("float ids", "", "[[6.5, 7.0, 8.0]]", "int|float"),
            ("a string, not ids", "", "['hello world']", "token ids|string"),
            ("a sequence longer than max_length", "max_length=4", "[list(range(6, 16))]", "max_length")]:
        add("collator", name, script(coll.format(kw=kw, batch=batch)), E, words)
    add("collator", "a good batch of two lengths",
        script(coll.format(kw="", batch="[[6, 7, 8, 9, 10, 11, 12, 13], [6, 7]]")),
        O, ok=stdout_has(r"^collated \(2, \d+\)"))
    for case in c:
        case.slug = re.sub(r"[^a-z0-9]+", "-", f"{case.entry} {case.name}".lower()).strip("-")[:60]
    return c


# --------------------------------------------------------------------------------------- main

def shown(case: Case, d: Path, work: Path) -> str:
    """The case's command as a shell line (``$WORK`` = the work folder), or what it does in words."""
    if case.cmd is None:
        return case.how
    argv = case.cmd(d)
    if getattr(case.cmd, "body", None):  # the script without its error wrapper: it runs as shown
        code = "import sys, pmlm; A = sys.argv[1:]; " + case.cmd.body.replace("\n", "; ")
        line = f'python -c "{code}" ' + " ".join(shlex.quote(a) for a in argv[4:])
    else:
        line = " ".join(shlex.quote(a) for a in argv)
    return line.replace(PY, "python").replace(str(work), "$WORK")


def table(rows: list[dict]) -> str:
    counts = Counter(r["outcome"] for r in rows)
    lines = ["| outcome | cases |", "|---|---|"] + [f"| {o} | {counts[o]} |" for o in OUTCOMES if counts[o]]
    lines.append(f"| total | {len(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only the cases whose entry point or name matches this regex")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its path is printed)")
    parser.add_argument("--out", help="results file (default results/fault_hunt.json; with --only, none)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pmlm-fault-hunt-"))
    try:
        mount_ok = os.geteuid() == 0 and can_mount(work)
        cases = catalogue(mount_ok)
        if args.only:
            cases = [k for k in cases if re.search(args.only, f"{k.entry} {k.name}", re.I)]
        if args.list:
            for k in cases:
                print(f"{k.entry:20s} {k.name}  [{k.expect}]")
            return 0
        print(f"{len(cases)} cases; work folder {work}; tmpfs mounts {'available' if mount_ok else 'NOT available'}",
              flush=True)
        build_fixtures(work / "fixtures")
        rows = []
        start = time.monotonic()
        for i, case in enumerate(cases):
            d = work / "cases" / f"{i:03d}-{case.slug}"
            try:
                res = run_case(case, d)
                outcome, note = classify(case, res, d)
            except Exception as err:  # a mistake of the hunt itself: said, never hidden
                res, outcome = Result(None, "", "", 0.0), "skipped"
                note = f"the hunt failed: {type(err).__name__}: {err}"
            finally:
                unmount_all()
            row = {"entry": case.entry, "case": case.name, "command": shown(case, d, work),
                   "expected": case.expect + (f" /{case.words}/" if case.words else ""),
                   "outcome": outcome, "rc": res.rc, "seconds": round(res.seconds, 1),
                   "last_line": last_line(res.stderr)[:200].replace(str(work), "$WORK"),
                   "note": note.replace(str(work), "$WORK")}
            rows.append(row)
            print(f"[{i + 1:3d}/{len(cases)}] {outcome:9s} {res.seconds:5.1f}s  {case.entry}: {case.name}"
                  + (f"  -- {note}" if note and outcome not in GOOD else "")
                  + (f"\n            {row['last_line'][:150]}" if outcome not in GOOD else ""), flush=True)
        if not mount_ok:
            print("note: no tmpfs could be mounted (not root, or no mount): the read-only and full-disk cases were "
                  "left out", flush=True)
        print(f"\n{table(rows)}\n\n{len(rows)} cases in {time.monotonic() - start:.0f} s")
        bad = [r for r in rows if r["outcome"] not in GOOD]
        for r in bad:
            print(f"  {r['outcome']}: {r['entry']}: {r['case']} -- {r['note'] or r['last_line'][:120]}")
        if args.out or not args.only:
            from pmlm.machine import machine_info
            from pmlm.model_files import write_atomic

            result = {"date": datetime.date.today().isoformat(), "machine": machine_info(),
                      "mounts": mount_ok, "seconds": round(time.monotonic() - start),
                      "counts": {o: n for o, n in Counter(r["outcome"] for r in rows).items()}, "cases": rows}
            out = Path(args.out or RESULTS_JSON)
            write_atomic(out, json.dumps(result, indent=1) + "\n")
            print(f"wrote {out}")
        return 0
    finally:
        unmount_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
