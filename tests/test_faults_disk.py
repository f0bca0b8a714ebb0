"""Faults on disk: whole-or-nothing model directories, one run per folder, full and read-only disks.

* kill -9 at every moment of a save (each rename, unlink, mkdir, fsync and the directory exchange
  of :mod:`pmlm.model_files`, counted in a forked child that SIGKILLs itself at the k-th one):
  ``save_pretrained``, a classifier (backbone and head), ``export_hf`` and a save in place beside a
  run's files leave the old model or the new one, never a mix (in place: no model, never a mix);
* two training runs into one ``--out-dir``: the second is refused with one line naming the first,
  touching nothing; a killed ``--overwrite`` run leaves no old model beside its new tokenizer;
* a full disk (a 1 MiB tmpfs) and a read-only one (a tmpfs remounted ``ro``): one error, the old
  model intact, no temporary files left, and ``finetune --save`` prints its metrics first. Without
  ``mount`` (not root, no tmpfs) the same faults come from a patched writer;
* ``files=`` names stay inside the folder; ``export_hf`` refuses a folder it did not write.
"""

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pmlm
from pmlm import model_files
from pmlm.checkpoint import CheckpointWriteError, save_checkpoint
from pmlm.finetune.heads import PMLMClassifier
from pmlm.finetune.saved import load_finetuned, save_classifier, save_seq2seq
from pmlm.finetune.decoding import DecodeConfig
from pmlm.locks import hold, holder
from pmlm.model_files import ModelWriteError
from pmlm.tokenizer import load_tokenizer, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SMALL = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=32)


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    from pmlm.data import prepare_corpus

    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    save_tokenizer(prepare_corpus(None, max_documents=6, vocab_size=300, max_length=32).tokenizer, path)
    return path


def small_model(tok, seed: int, **kw) -> pmlm.PMLMModel:
    torch.manual_seed(seed)
    # initializer_range differs by seed, so config.json too tells an old save from a new one
    return pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), initializer_range=0.01 * seed,
                                          **{**SMALL, **kw})).eval()


def fingerprint(model: torch.nn.Module) -> float:
    return float(sum(p.double().sum() for p in model.state_dict().values()))


# ------------------------------------------------------------------ kill -9 at every moment of a save

CHILD = r'''
import json, os, shutil, signal, sys
import torch
torch.set_num_threads(1)
import pmlm
from pmlm import model_files
from pmlm.finetune.heads import PMLMClassifier
from pmlm.finetune.saved import save_classifier
from pmlm.tokenizer import load_tokenizer

spec = json.loads(sys.argv[1])
tok = load_tokenizer(spec["tokenizer"])
torch.manual_seed(2)
model = pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), initializer_range=0.02,
                                       **spec["model"])).eval()
clf = PMLMClassifier(model, 2)

def act(target):
    if spec["action"] == "classify":
        save_classifier(clf, tok, target, labels=["bad", "good"], max_length=16, metrics={"v": "new"})
    elif spec["action"] == "export":
        pmlm.export_hf(model, tok, target)
    else:  # save_pretrained, in a model directory or beside a run's files
        model.save_pretrained(target, tokenizer=tok, training={"v": "new"})

MOMENTS = [(os, "replace"), (os, "rename"), (os, "unlink"), (os, "mkdir"), (os, "rmdir"), (os, "fsync"),
           (model_files, "_exchange")]

def arm(kill_at):
    count = [0]
    for module, name in MOMENTS:
        def counted(*a, _fn=getattr(module, name), **k):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, like a lost machine
            return _fn(*a, **k)
        setattr(module, name, counted)
    return count

def run(k, target):
    pid = os.fork()
    if pid == 0:
        count = arm(k)
        try:
            act(target)
        except BaseException:
            os._exit(250)
        os._exit(min(count[0], 249))
    return os.waitpid(pid, 0)[1]

def fresh(k):
    target = os.path.join(spec["work"], str(k), "model")
    shutil.copytree(spec["old"], target, symlinks=True)
    return target

status = run(0, fresh(0))  # no kill: how many moments a save has
moments = os.waitstatus_to_exitcode(status)
assert 0 < moments < 200, moments
results = {0: status}
for k in range(1, moments + 1):
    results[k] = run(k, fresh(k))
print(json.dumps({"moments": moments, "status": {k: os.waitstatus_to_exitcode(s) for k, s in results.items()}}))
'''


def kill_at_every_moment(tmp_path, tok_path, action: str, old: Path) -> tuple[int, Path]:
    """Run the save ``action`` over copies of ``old``, killed at its 1st, 2nd, ... moment."""
    spec = {"tokenizer": str(tok_path), "model": SMALL, "action": action, "old": str(old),
            "work": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    moments, status = report["moments"], {int(k): v for k, v in report["status"].items()}
    assert status[0] == moments and all(status[k] == -signal.SIGKILL for k in range(1, moments + 1)), status
    return moments, tmp_path / "work"


def old_model_dir(tmp_path, tok, *, beside_a_run=False) -> Path:
    old = tmp_path / "old"
    small_model(tok, 1).save_pretrained(old, tokenizer=tok, training={"v": "old"})
    if beside_a_run:  # files no save wrote: a run's checkpoint and a user's notes
        (old / "checkpoint.pt").write_bytes(b"a run's checkpoint")
        (old / "notes.txt").write_text("mine")
    return old


def which(directory: Path, old_print: float, new_print: float) -> str:
    """'old' or 'new' if every file of the loaded model comes from that save; fails on a mix."""
    model, tok = pmlm.load_model(directory)
    weights = {old_print: "old", new_print: "new"}.get(fingerprint(model), "neither")
    config = {0.01: "old", 0.02: "new"}.get(model.config.initializer_range, "neither")
    record = pmlm.pretrained.training_info(directory)["v"]
    assert weights == config == record, f"{directory}: weights {weights}, config {config}, training.json {record}"
    return weights


def test_a_killed_save_pretrained_leaves_the_old_model_or_the_new_one(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    old = old_model_dir(tmp_path, tok)
    moments, work = kill_at_every_moment(tmp_path, tok_path, "save_pretrained", old)
    old_print, new_print = fingerprint(small_model(tok, 1)), fingerprint(small_model(tok, 2))
    seen = [which(work / str(k) / "model", old_print, new_print) for k in range(0, moments + 1)]
    assert seen[0] == "new" and seen[1] == "old" and "new" in seen[1:], seen  # the kills hit both sides
    for k in range(moments + 1):
        assert sorted(p.name for p in (work / str(k) / "model").iterdir()) == [
            "config.json", "model.safetensors", "tokenizer.json", "training.json"]
    # a later save clears what killed saves left beside the folder (their process is gone)
    for k in range(moments + 1):
        small_model(tok, 3).save_pretrained(work / str(k) / "model", tokenizer=tok, training={"v": "later"})
        assert [p.name for p in (work / str(k)).iterdir()] == ["model"], k


def test_a_killed_classifier_save_never_pairs_the_new_backbone_with_the_old_head(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    old = tmp_path / "old"
    torch.manual_seed(5)
    old_clf = PMLMClassifier(small_model(tok, 1), 2)
    save_classifier(old_clf, tok, old, labels=["neg", "pos"], max_length=16, metrics={"v": "old"})
    old_head = fingerprint(old_clf.head)
    moments, work = kill_at_every_moment(tmp_path, tok_path, "classify", old)
    seen = []
    for k in range(moments + 1):
        ft = load_finetuned(work / str(k) / "model")  # never raises: always a whole model
        labels = {("neg", "pos"): "old", ("bad", "good"): "new"}[tuple(ft.meta["labels"])]
        head = "old" if fingerprint(ft.model.head) == old_head else "new"
        backbone = {0.01: "old", 0.02: "new"}[ft.model.backbone.config.initializer_range]
        assert labels == head == backbone == ft.meta["metrics"]["v"], (k, labels, head, backbone)
        seen.append(labels)
    assert seen[1] == "old" and seen[0] == seen[-1] == "new", seen


def test_a_killed_export_leaves_the_old_export_or_the_new_one(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    old_model = small_model(tok, 1)
    old = pmlm.export_hf(old_model, tok, tmp_path / "old")
    moments, work = kill_at_every_moment(tmp_path, tok_path, "export", old)
    new_print = fingerprint(small_model(tok, 2))
    seen = []
    for k in range(moments + 1):
        model, _ = pmlm.import_hf(work / str(k) / "model")
        seen.append({fingerprint(old_model): "old", new_print: "new"}[fingerprint(model)])
        config = json.loads((work / str(k) / "model" / "config.json").read_text())["pmlm_config"]
        assert {0.01: "old", 0.02: "new"}[config["initializer_range"]] == seen[-1], k
    assert seen[1] == "old" and seen[0] == seen[-1] == "new", seen


def test_a_killed_save_beside_a_runs_files_leaves_no_mix_and_touches_nothing_else(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    old = old_model_dir(tmp_path, tok, beside_a_run=True)
    moments, work = kill_at_every_moment(tmp_path, tok_path, "in_place", old)
    old_print, new_print = fingerprint(small_model(tok, 1)), fingerprint(small_model(tok, 2))
    seen = []
    for k in range(moments + 1):
        d = work / str(k) / "model"
        assert (d / "checkpoint.pt").read_bytes() == b"a run's checkpoint" and (d / "notes.txt").read_text() == "mine"
        try:
            seen.append(which(d, old_print, new_print))
        except ValueError as err:  # between the removal of the old weights and the rename of the new
            assert "holds no weights" in str(err) and "load_pretrained" in str(err), str(err)
            seen.append("none")
    assert seen[0] == "new" and seen[1] == "old" and "none" in seen, seen
    for k in range(moments + 1):  # a later save clears the .tmp files killed saves left, and only them
        d = work / str(k) / "model"
        small_model(tok, 3).save_pretrained(d, tokenizer=tok, training={"v": "later"})
        assert sorted(p.name for p in d.iterdir()) == ["checkpoint.pt", "config.json", "model.safetensors",
                                                      "notes.txt", "tokenizer.json", "training.json"], k


# ------------------------------------------------------------------------- one run per folder

RUN = r'''
import json, os, sys, time
from pathlib import Path
from pmlm.train import TrainConfig, pretrain
cfg = TrainConfig(**json.loads(sys.argv[1]))
signal_dir = Path(sys.argv[2])
def on_step(step, model, record):
    if step == 1:
        (signal_dir / "paused").write_text(str(os.getpid()))
        deadline = time.time() + 120
        while not (signal_dir / "go").exists() and time.time() < deadline:  # bounded: at most 120 s
            time.sleep(0.1)
pretrain(cfg, on_step=on_step)
'''


def wait_for(path: Path, proc: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    for _ in range(int(seconds * 10)):  # bounded in count and in time
        if path.exists() or proc.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.1)
    assert path.exists(), f"the run never reached step 1 (rc {proc.poll()}): {log.read_text()[-3000:]}"


def snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def test_a_second_run_into_a_folder_is_refused_and_a_killed_overwrite_leaves_no_mix(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    out = tmp_path / "run"
    small_model(tok, 1).save_pretrained(out, tokenizer=tok, training={"v": "old"})  # an earlier run's model
    (out / "checkpoint.pt").write_bytes(b"old checkpoint")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "notes.txt").write_text("mine")
    cfg = dict(model="tiny", model_overrides={**SMALL, "max_positions": 64}, max_documents=6, max_length=32,
               steps=50, batch_size=2, warmup_steps=1, log_every=1, eval_every=0, save_every=0,
               out_dir=str(out), progress=False, tokenizer=str(tok_path), overwrite=True)
    log = tmp_path / "run1.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", RUN, json.dumps(cfg), str(tmp_path)], env=ENV,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(tmp_path / "paused", proc, log)
        assert holder(out / "run.lock") == proc.pid
        # --overwrite removed the earlier run first: no old model beside the new tokenizer, notes kept
        with pytest.raises(ValueError, match="config.json is missing"):
            pmlm.load_model(out)
        assert not (out / "model.safetensors").exists() and (out / "tokenizer.json").is_file()
        assert not (out / "checkpoint.pt").exists() and (out / "notes.txt").read_text() == "mine"
        before = snapshot(out)
        from pmlm.train import main
        with pytest.raises(SystemExit) as err:  # the command line: one line that names the running process
            main(["--preset", "tiny", "--out-dir", str(out), "--overwrite", "--steps", "1", "--no-progress"])
        message = str(err.value)
        assert f"pid {proc.pid}" in message and "in use by another training run" in message and "\n" not in message
        assert snapshot(out) == before  # refused before it touched anything
        proc.kill()  # kill -9 in the middle of the run
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert holder(out / "run.lock") is None  # the kernel let go of the killed run's lock
    with pytest.raises(ValueError, match="config.json is missing"):
        pmlm.load_model(out)
    with hold(out / "run.lock", "training run"):  # the next run simply takes it
        pass


# ------------------------------------------------------------------- full and read-only disks

@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m"):
    """A small tmpfs at ``path`` (root and ``mount`` needed); yields False where there is none."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    try:
        yield ok
    finally:
        if ok:
            for _ in range(20):  # bounded: a busy mount point gets a moment to let go
                if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
                    break
                time.sleep(0.2)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True, timeout=30)


def failing_writes(monkeypatch, code: int) -> None:
    """Where no tmpfs can be mounted: every new file fails the way the disk would."""
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(model_files, "_write_synced", refuse)
    monkeypatch.setattr(model_files.os, "mkdir", refuse)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.rglob("*") if ".tmp" in p.name)


def test_a_full_disk_is_one_error_and_the_old_model_is_untouched(tmp_path, tok_path, monkeypatch):
    tok = load_tokenizer(tok_path)
    with tmpfs(tmp_path / "disk") as mounted:
        target = tmp_path / "disk" / "m"
        old = small_model(tok, 1)
        old.save_pretrained(target, tokenizer=tok)  # about 60 KB: fits
        before = snapshot(target)
        big = small_model(tok, 2, hidden_size=256, intermediate_size=1024, num_heads=4)  # over 2 MB: does not
        if not mounted:
            failing_writes(monkeypatch, errno.ENOSPC)
        with pytest.raises(ModelWriteError, match="No space left on device.*nothing there was changed") as err:
            big.save_pretrained(target, tokenizer=tok)
        assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
        assert snapshot(target) == before and leftovers(tmp_path / "disk") == []
        assert fingerprint(pmlm.load_model(target)[0]) == fingerprint(old)
        if mounted:  # a checkpoint that does not fit: one error, no partial file
            with pytest.raises(CheckpointWriteError, match="No space left on device"):
                save_checkpoint({"model": big.state_dict()}, tmp_path / "disk" / "checkpoint.pt")
            assert leftovers(tmp_path / "disk") == [] and not (tmp_path / "disk" / "checkpoint.pt").exists()


def test_a_read_only_folder_is_one_error_and_finetune_prints_its_metrics_first(tmp_path, tok_path,
                                                                                monkeypatch, capsys):
    tok = load_tokenizer(tok_path)
    with tmpfs(tmp_path / "disk", size="8m") as mounted:
        target = tmp_path / "disk" / "m"
        small_model(tok, 1).save_pretrained(target, tokenizer=tok)
        before = snapshot(target)
        if mounted:
            remount_read_only(tmp_path / "disk")
        else:
            failing_writes(monkeypatch, errno.EROFS)
        with pytest.raises(ModelWriteError, match="Read-only file system"):
            small_model(tok, 2).save_pretrained(target, tokenizer=tok)
        from pmlm.finetune.__main__ import main as finetune_main
        with pytest.raises(SystemExit) as err:
            finetune_main(["classify", "--preset", "smoke", "--max-steps", "2", "--train-limit", "64",
                           "--eval-limit", "16", "--device", "cpu", "--save", str(target)])
        message = str(err.value)
        assert "Read-only file system" in message and "metrics printed above" in message and "\n" not in message
        printed = json.loads(capsys.readouterr().out)  # the metrics came out before the write was tried
        assert {"test_acc", "val_acc", "steps"} <= set(printed) and printed["steps"] == 2
        assert snapshot(target) == before
        if mounted:
            from pmlm.train import TrainConfig, pretrain
            with pytest.raises(ValueError, match="cannot write to out_dir .*Read-only file system"):
                pretrain(TrainConfig(out_dir=str(tmp_path / "disk" / "run"), progress=False))


# ------------------------------------------------------------------- names, exports, stale files

@pytest.mark.parametrize("name", ["../escaped", "/tmp/escaped", "a/b", ".hidden", "", "..", "x\\y", "config.json"])
def test_files_stay_inside_the_folder(tmp_path, tok_path, name):
    tok = load_tokenizer(tok_path)
    with pytest.raises(ValueError, match="plain file name|written by save_pretrained itself"):
        small_model(tok, 1).save_pretrained(tmp_path / "m", tokenizer=tok, files={name: "x"})
    assert list(tmp_path.iterdir()) == []  # nothing written, inside or out


def test_export_hf_refuses_a_folder_it_did_not_write(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    model = small_model(tok, 1)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="not written by export_hf.*config.json.*force=True"):
        pmlm.export_hf(model, tok, theirs)
    assert (theirs / "config.json").read_text() == '{"model_type": "bert"}'
    run = old_model_dir(tmp_path, tok, beside_a_run=True)  # a run directory's model files
    before = snapshot(run)
    with pytest.raises(ValueError, match="not written by export_hf"):
        pmlm.export_hf(model, tok, run)
    assert snapshot(run) == before
    # force: the export's own files, and only them; every other file stays
    pmlm.export_hf(model, tok, run, force=True)
    assert (run / "notes.txt").read_text() == "mine" and (run / "training.json").is_file()
    assert fingerprint(pmlm.import_hf(run)[0]) == fingerprint(model)
    # an earlier export is replaced without force; a file the user put beside it stays
    out = pmlm.export_hf(model, tok, tmp_path / "hf")
    (out / "README.md").write_text("model card")
    newer = small_model(tok, 2)
    pmlm.export_hf(newer, tok, out)
    assert (out / "README.md").read_text() == "model card"
    assert fingerprint(pmlm.import_hf(out)[0]) == fingerprint(newer)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("beside", [False, True])
def test_a_later_save_removes_its_earlier_files_and_only_them(tmp_path, tok_path, beside):
    tok = load_tokenizer(tok_path)
    d = tmp_path / "ft"
    if beside:
        d.mkdir()
        (d / "notes.txt").write_text("mine")
    save_classifier(PMLMClassifier(small_model(tok, 1), 2), tok, d, labels=["a", "b"], max_length=16)
    assert (d / "head.safetensors").is_file()
    save_seq2seq(small_model(tok, 2), tok, d, max_source_len=8, max_target_len=8, decode=DecodeConfig())
    assert not (d / "head.safetensors").exists() and load_finetuned(d).task == "seq2seq"
    assert (d / "notes.txt").exists() == beside
    assert json.loads(load_file_metadata(d)["pmlm_files"]) == sorted(
        ["config.json", "model.safetensors", "task.json", "tokenizer.json"])


def load_file_metadata(d: Path) -> dict:
    from safetensors import safe_open

    with safe_open(d / "model.safetensors", "pt") as f:
        return f.metadata()


def test_weights_load_as_before(tmp_path, tok_path):
    tok = load_tokenizer(tok_path)
    model = small_model(tok, 1)
    out = model.save_pretrained(tmp_path / "m", tokenizer=tok)
    stored = load_file(out / "model.safetensors")
    assert set(stored) == {k for k in model.state_dict() if k not in model_files.TIED}


def test_without_an_atomic_exchange_two_renames_still_give_the_new_model_and_no_leftovers(tmp_path, tok_path,
                                                                                          monkeypatch):
    tok = load_tokenizer(tok_path)
    small_model(tok, 1).save_pretrained(tmp_path / "m", tokenizer=tok)
    monkeypatch.setattr(model_files, "_exchange", lambda a, b: False)  # e.g. not Linux, or no renameat2
    newer = small_model(tok, 2)
    newer.save_pretrained(tmp_path / "m", tokenizer=tok)
    assert fingerprint(pmlm.load_model(tmp_path / "m")[0]) == fingerprint(newer)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_an_export_by_an_older_pmlm_is_still_its_own_folder(tmp_path, tok_path):
    from safetensors.torch import save

    tok = load_tokenizer(tok_path)
    out = pmlm.export_hf(small_model(tok, 1), tok, tmp_path / "hf")
    tensors = load_file(out / "model.safetensors")
    (out / "model.safetensors").write_bytes(save(tensors, metadata={"format": "pt", "model_type": "pmlm"}))
    newer = small_model(tok, 2)
    pmlm.export_hf(newer, tok, out)  # no force needed: its config.json says export_hf wrote it
    assert fingerprint(pmlm.import_hf(out)[0]) == fingerprint(newer)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_prepare_and_course_build_on_a_bad_disk_end_with_one_line(tmp_path, fault):
    """``pmlm.prepare`` and ``course build`` on a read-only or a full tmpfs: exit with one line
    naming the fault and what to do, no traceback (a real mount only: their writes go through many
    files, numpy and nbformat, which no single patched writer stands in for)."""
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(f"Sentence number {i} of the corpus, with some words in it." for i in range(400)))
    with tmpfs(tmp_path / "disk", size="64k") as mounted:
        if not mounted:
            pytest.skip("needs root and mount for a tmpfs (the in-process cases above cover the writers)")
        if fault == "read-only":
            remount_read_only(tmp_path / "disk")
        want = "Read-only file system" if fault == "read-only" else "No space left on device"
        commands = {
            "pmlm.prepare": [str(text), "--out", str(tmp_path / "disk" / "prep"), "--vocab-size", "300",
                             "--max-length", "32", "--workers", "1", "--no-progress"],
            "pmlm.course": ["build", str(tmp_path / "disk" / "course"), "--tasks", "4"]}
        for module, argv in commands.items():
            done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True,
                                  timeout=120, cwd=ROOT)
            lines = done.stderr.strip().splitlines()
            assert done.returncode != 0 and "Traceback" not in done.stderr, (module, done.stderr[-2000:])
            assert want in lines[-1] and "error:" in lines[-1], (module, lines[-1])
