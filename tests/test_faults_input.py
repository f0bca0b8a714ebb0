"""Bad input fails at once, with one line that names what is wrong; a busy machine is seen and said.

Numbers: flags that cannot train are refused when parsed (``--lr inf``, ``--grad-clip=-1``,
``--batch-size 0``, ``--device cuda`` without one, a beam that does not fit in memory); a loss or
gradient that stops being finite stops the run at that step, naming the last good checkpoint;
weights of an integer, bool or non-finite dtype are refused on load. Data: a ragged row, a bad
JSON line, bytes that are not UTF-8 and a fake ``.gz``/``.parquet`` name the file and line;
one-class data and binary standard input are refused; a torn last line of a results file is
skipped with a warning. A busy machine: the thread choice from free cores, and the end of a run in
words (steps made against expected, the unigram plateau, its likely cause).
"""

import gzip
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pmlm import machine
from pmlm.checkpoint import read_checkpoint
from pmlm.config import PMLMConfig
from pmlm.data import prepare_corpus
from pmlm.finetune.__main__ import main as finetune_main, read_rows
from pmlm.model import PMLMModel
from pmlm.tokenizer import save_tokenizer, train_tokenizer
from pmlm.train import TrainConfig, main as train_main, pretrain

ROOT = Path(__file__).resolve().parents[1]
from tiny import MODEL
WORDS = ["a gorgeous , witty film", "dull and lifeless", "the best film of the year", "a waste of time",
         "witty and warm", "lifeless and dull , a bore"]
TEXTS = [f"{WORDS[i % 6]} number {i}" for i in range(60)]  # unique: the split hashes the text


def one_line_exit(fn, argv) -> str:
    """Run a command line's ``main`` in-process: it must end with one error line, never a traceback."""
    with pytest.raises(SystemExit) as exc:
        fn(argv)
    message = exc.value.code
    assert isinstance(message, str), f"exit {message!r}: expected a message"  # the interpreter prints it, rc 1
    assert "\n" not in message and "error:" in message, message
    return message


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory):
    corpus = prepare_corpus(None, max_documents=8, vocab_size=500, max_length=32)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    save_tokenizer(corpus.tokenizer, path)
    return str(path)


def small_cfg(out, tokenizer_path, **kw) -> TrainConfig:
    base = dict(model="tiny", model_overrides=MODEL, max_documents=8, vocab_size=500, max_length=32, steps=6,
                batch_size=4, warmup_steps=1, log_every=1, eval_every=3, eval_examples=8, save_every=2,
                out_dir=str(out), progress=False, tokenizer=tokenizer_path)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------------- numbers: parse time

@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "lr must be a finite number > 0, got inf"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--lr", "0"], "lr must be a finite number > 0"),
    (["--grad-clip=-1"], "grad_clip is the largest gradient norm and must be >= 0 (0 = no clipping)"),
    (["--steps", "0"], "steps must be positive"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--grad-accum", "0"], "grad_accum must be positive"),
    (["--threads", "0"], "threads must be at least 1"),
    (["--time-budget", "inf"], "must be finite"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "asked for but"),
    (["--device", "tpu"], "device"),
])
def test_train_flags_that_cannot_train_are_refused_when_parsed(argv, message, tmp_path):
    got = one_line_exit(train_main, argv + ["--out-dir", str(tmp_path / "run")])
    assert message in got and got.startswith("pmlm-train: error:")
    assert not (tmp_path / "run").exists()  # refused before any work


def test_max_documents_zero_is_refused_by_its_name(tmp_path):
    got = one_line_exit(train_main, ["--max-documents", "0", "--out-dir", str(tmp_path / "run")])
    assert "--max-documents must be at least 1" in got


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1, got 0"),  # 0 once meant "use --minutes"
    (["--examples", "-1"], "--examples must be >= 0, got -1"),
    (["--minutes", "nan"], "--minutes must be positive"),
])
def test_demo_flags_that_cannot_run_are_refused_before_any_work(argv, message, tmp_path, capsys):
    from pmlm.demo import main as demo_main

    with pytest.raises(SystemExit) as exc:
        demo_main(argv + ["--out-dir", str(tmp_path / "run"), "--figures", str(tmp_path / "fig")])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "fig").exists()


def test_grad_clip_zero_is_off_and_plan_may_name_a_gpu(tmp_path):
    from pmlm.train import parse_args

    assert parse_args(["--grad-clip", "0"]).grad_clip == 0.0
    assert parse_args(["--device", "cuda", "--plan"]).device == "cuda"  # --plan prices a GPU run anywhere


def test_a_bad_flag_exits_nonzero_with_one_stderr_line_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pmlm.train", "--lr", "inf", "--out-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "lr must be a finite number" in proc.stderr, proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "batch_size (--batch-size) must be at least 1, got 0"),
    (["--epochs", "0"], "epochs (--epochs) must be at least 1, got 0"),
    (["--lr", "0"], "lr (--lr) must be a finite number > 0, got 0.0"),
    (["--lr", "inf"], "lr (--lr) must be a finite number > 0, got inf"),
    (["--max-steps=-1"], "max_steps (--max-steps) must be at least 1"),
    (["--train-limit", "0"], "train_limit (--train-limit) must be at least 1"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "asked for but"),
])
@pytest.mark.parametrize("task", ["classify", "seq2seq"])
def test_finetune_flags_that_cannot_train_are_refused_before_any_data(task, argv, message):
    got = one_line_exit(finetune_main, [task, "--preset", "smoke"] + argv)
    assert message in got and got.startswith(f"python -m pmlm.finetune {task}: error:")


def test_a_beam_that_cannot_fit_in_memory_is_refused_naming_the_widest_that_fits(monkeypatch):
    from pmlm.finetune.decoding import DecodeConfig, check_decode_memory, decode_bytes, generate

    tok = train_tokenizer(TEXTS, 200)
    model = PMLMModel(PMLMConfig(vocab_size=tok.get_vocab_size(), **MODEL)).eval()
    cfg = DecodeConfig(beam_size=100_000, max_length=8)
    with pytest.raises(ValueError, match=r"beam 100000 would need about .* more than the 1.0 GiB free on "
                                         r"cpu: use a beam of at most \d+"):
        check_decode_memory(model, cfg, 32, 20, free=2**30)
    widest = int(0.8 * 2**30) // (decode_bytes(model, cfg, 32, 20) // cfg.beam_size)
    check_decode_memory(model, DecodeConfig(beam_size=widest, max_length=8), 32, 20, free=2**30)  # fits
    ids = {k: tok.token_to_id(v) for k, v in (("pad", "[PAD]"), ("sos", "[SOS]"), ("eos", "[EOS]"),
                                               ("mask", "[MASK]"), ("pseudo", "[P]"))}
    monkeypatch.setattr(machine, "available_memory", lambda device="cpu": 2**30)
    with pytest.raises(ValueError, match="use a beam of at most"):  # before any allocation
        generate(model, [[7, 8, 9]], ids, beam_size=10**7, max_length=8)
    assert len(generate(model, [[7, 8, 9]], ids, beam_size=2, max_length=3)) == 1  # a beam that fits runs


# ----------------------------------------------------------------------- numbers: a diverged run

@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_a_loss_that_is_not_finite_stops_the_run_naming_the_step_and_last_checkpoint(
        tokenizer_path, tmp_path, monkeypatch, grad_clip):
    from pmlm.train.loop import LossModule

    calls = {"n": 0}
    forward = LossModule.forward

    def nan_at_step_4(self, batch):
        result = forward(self, batch)
        calls["n"] += 1
        if calls["n"] == 4:
            result = {**result, "loss": result["loss"] * float("nan")}
        return result

    monkeypatch.setattr(LossModule, "forward", nan_at_step_4)
    out = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        pretrain(small_cfg(out, tokenizer_path, grad_clip=grad_clip, save_every=2))
    message = str(err.value)
    assert "training diverged at step 4" in message and "nan" in message
    assert f"the last good checkpoint is {out / 'checkpoint.pt'} (step 2)" in message and "\n" not in message
    state = read_checkpoint(out, map_location="cpu")
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out / "model.safetensors").exists()  # no model files of a diverged run


def test_a_huge_learning_rate_stops_with_one_line_and_no_checkpoint_named(tokenizer_path, tmp_path):
    with pytest.raises(ValueError, match=r"training diverged at step \d+: .* no checkpoint was written before it"):
        pretrain(small_cfg(tmp_path / "run", tokenizer_path, lr=1e30, save_every=0, steps=20))


def test_finetuning_that_diverges_stops_with_one_line(tmp_path, monkeypatch):
    import torch.nn.functional as F

    from pmlm.finetune import classify

    cross_entropy = F.cross_entropy
    monkeypatch.setattr(classify.F, "cross_entropy", lambda *a, **k: cross_entropy(*a, **k) * float("inf"))
    data = tmp_path / "rows.tsv"
    data.write_text("label\ttext\n" + "".join(f"{'fresh' if i % 2 else 'rotten'}\t{t}\n" for i, t in enumerate(TEXTS)))
    got = one_line_exit(finetune_main, ["classify", "--preset", "smoke", "--data", str(data), "--max-steps", "3",
                                        "--size", "tiny"])
    assert "classify fine-tuning diverged at step 1: the loss is inf" in got and "Lower --lr" in got


# ---------------------------------------------------------------------- numbers: weights on load

@pytest.mark.parametrize("bad, message", [
    (lambda t: t.to(torch.int64), r"not floating point: .*\(int64\)"),
    (lambda t: t > 0, r"not floating point: .*\(bool\)"),
    (lambda t: t.clone().fill_(float("nan")), "hold NaN or infinite values"),
    (lambda t: t.clone().fill_(float("inf")), "hold NaN or infinite values"),
])
def test_weights_of_an_integer_bool_or_non_finite_dtype_are_refused(tmp_path, bad, message):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model = PMLMModel(PMLMConfig(vocab_size=100, **MODEL))
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    tensors = load_file(path)
    key = sorted(tensors)[0]
    tensors[key] = bad(tensors[key]).contiguous()
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(ValueError, match=message):
        PMLMModel.from_pretrained(tmp_path / "m")


# ------------------------------------------------------------------------------------------ data

def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" and not data.startswith(b"FAKE") else data)
    return path


@pytest.mark.parametrize("name, data, message", [
    ("ragged.csv", b"label,text\nfresh,a witty film\nrotten\n", r"ragged.csv:3: 1 field where the header has 2"),
    ("ragged.tsv", b"label\ttext\nfresh\ta\twitty\n", r"ragged.tsv:2: 3 fields where the header has 2"),
    ("bad.jsonl", b'{"label": "fresh", "text": "ok"}\n{"label": "fresh", "text": \n', r"bad.jsonl:2: not valid JSON"),
    ("list.jsonl", b'{"label": "fresh", "text": "ok"}\n[1, 2]\n', r"list.jsonl:2: a JSON list"),
    ("latin.csv", b"label,text\nfresh,ok\nrotten,caf\xe9 cr\xe8me\n", r"latin.csv:3: byte 0xe9 is not UTF-8"),
    ("latin.csv.gz", b"label,text\nfresh,ok\nrotten,caf\xe9\n", r"latin.csv.gz:3: byte 0xe9 is not UTF-8"),
    ("fake.tsv.gz", b"FAKE label\ttext\n", r"fake.tsv.gz cannot be read as gzip"),
    ("binary.csv", b"label,text\n\x00\x01\x02\n", r"binary.csv:2: a NUL byte"),
])
def test_finetuning_data_errors_name_the_file_and_line(tmp_path, name, data, message):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=message):
        read_rows(path)
    got = one_line_exit(finetune_main, ["classify", "--preset", "smoke", "--data", str(path)])
    assert str(path) in got


def test_a_ragged_row_never_becomes_the_text_none(tmp_path):
    rows = read_rows(write(tmp_path / "ok.csv", b'label,text\nfresh,"a film, witty"\n\nrotten,dull\n'))
    assert rows == [{"label": "fresh", "text": "a film, witty"}, {"label": "rotten", "text": "dull"}]


def test_one_class_data_is_refused(tmp_path):
    path = write(tmp_path / "fresh.tsv", b"label\ttext\n" + b"".join(b"fresh\t%s\n" % t.encode() for t in TEXTS))
    got = one_line_exit(finetune_main, ["classify", "--preset", "smoke", "--data", str(path)])
    assert f"{path}: every row has label 'fresh'" in got and "at least two classes" in got
    from pmlm.finetune.classify import ClassifyConfig, finetune_classify

    tok = train_tokenizer(TEXTS, 200)
    model = PMLMModel(PMLMConfig(vocab_size=tok.get_vocab_size(), **MODEL))
    splits = {"train": [{"text": t, "label": 1} for t in TEXTS], "test": [{"text": "ok", "label": 0}]}
    with pytest.raises(ValueError, match=r"the training data holds one class only \('fresh', 60 rows\)"):
        finetune_classify(model, tok, splits, ClassifyConfig(max_steps=1), num_classes=2,
                          class_names=["rotten", "fresh"], log=lambda line: None)


@pytest.mark.parametrize("name, data, message", [
    ("bad.jsonl", b'{"text": "one"}\n{"text": "two"\n{"text": "three"}\n', r"bad.jsonl:2: not valid JSON"),
    ("ragged.csv", b"text,doc\nhello world,1\nsome,more,fields\n", r"ragged.csv:3: 3 fields where the header has 2"),
    ("latin.csv", b"text\nhello\ncaf\xe9 au lait\n", r"latin.csv:3: byte 0xe9 is not UTF-8"),
    ("latin.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"latin.jsonl:2: byte 0xe9 is not UTF-8"),
    ("latin.txt", b"hello\n\ncaf\xe9\n", r"latin.txt:3: byte 0xe9 is not UTF-8"),
    ("fake.jsonl.gz", b"FAKE not gzip\n", r"fake.jsonl.gz cannot be read as .jsonl.gz"),
    ("fake.parquet", b"FAKE not parquet\n", r"fake.parquet is not a Parquet file"),
])
def test_pretraining_source_errors_name_the_file_and_line(tmp_path, name, data, message, capfd):
    from pmlm.data.sources import load_documents

    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=message):
        load_documents(str(path))
    assert "Failed to" not in capfd.readouterr().err  # datasets' own log line is not printed beside it


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    from pmlm.finetune.heads import PMLMClassifier
    from pmlm.finetune.saved import save_classifier

    tok = train_tokenizer(TEXTS, 200)
    clf = PMLMClassifier(PMLMModel(PMLMConfig(vocab_size=tok.get_vocab_size(), **MODEL)), 2)
    return save_classifier(clf, tok, tmp_path_factory.mktemp("ft") / "clf", labels=["rotten", "fresh"], max_length=32)


@pytest.mark.parametrize("stdin, message", [
    (b"a witty film\n\x00\x01\x02\x03\xff\n", "standard input holds binary data (a NUL byte on line 2)"),
    (b"a witty film\ncaf\xe9 cr\xe8me\n", "standard input is not UTF-8 text (byte 0xe9 on line 2)"),
])
def test_binary_or_latin1_standard_input_is_refused_with_one_line(saved_classifier, stdin, message):
    proc = subprocess.run([sys.executable, "-m", "pmlm.predict", "classify", "--model", str(saved_classifier)],
                          input=stdin, capture_output=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "LC_ALL": "C"})  # whatever the locale
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert message in err


def test_utf8_standard_input_is_read_whatever_the_locale(saved_classifier, monkeypatch, capsys):
    from pmlm.predict import main as predict_main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("crème brûlée\n".encode()), encoding="ascii"))
    predict_main(["classify", "--model", str(saved_classifier)])
    assert capsys.readouterr().out.split("\t")[0] in ("rotten", "fresh")


# ---------------------------------------------------------------------------------- results files

def test_a_torn_last_line_of_a_results_file_is_skipped_with_a_warning(tmp_path):
    from pmlm.ablation import append_result, read_results
    from pmlm.reports import read_jsonl

    path = tmp_path / "results.jsonl"
    path.write_text('{"variant": "A", "seed": 0}\n{"variant": "B", "seed": 0}\n{"variant": "C", "se')
    with pytest.warns(UserWarning, match=r"results.jsonl:3: the last line is cut off .* 2 records read"):
        assert [r["variant"] for r in read_jsonl(path)] == ["A", "B"]
    with pytest.warns(UserWarning, match="removed from the file"):
        assert len(read_results(path, repair=True)) == 2  # the ablation cuts it before appending
    append_result(path, {"variant": "C", "seed": 0})
    assert [r["variant"] for r in read_jsonl(path)] == ["A", "B", "C"]
    path.write_text('{"variant": "A"}')  # a whole record without its newline: the next one starts a line
    append_result(path, {"variant": "B"})
    assert [r["variant"] for r in read_jsonl(path)] == ["A", "B"]
    path.write_text('{"variant": "A"}\n{"vari\n{"variant": "C"}\n')  # damage before the end is an error
    with pytest.raises(ValueError, match=r"results.jsonl:2: not a JSON record"):
        read_jsonl(path)


@pytest.mark.parametrize("seq, message", [
    ([6.5, 7.0, 8.0], "holds the float 6.5, not a token id"),  # int() would have made it 6, silently
    ([True, 7], "holds the bool True"),
    ("hello world", "is a string ('hello world'), not token ids: encode it with the tokenizer first"),
    (torch.tensor([6.0, 7.0]), "holds float32 values, not token ids"),
])
def test_the_collator_refuses_what_only_looks_like_token_ids(seq, message):
    import numpy as np
    from pmlm.collator import PMLMCollator

    collate = PMLMCollator(mask_id=4, pseudo_id=5, pad_id=0, vocab_size=50, eos_id=3)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        collate([[6, 7, 8], seq])
    ids = collate([[6, 7, 8], np.array([6, 7]), torch.tensor([9, 10]), [np.int64(7)]])["input_ids"]
    assert ids.shape[0] == 4  # integers of every kind still pass


def test_a_report_of_a_results_file_damaged_in_the_middle_is_one_line(tmp_path):
    from pmlm.ablation import main as ablation_main

    path = tmp_path / "damaged.jsonl"
    path.write_text('{"variant": "A", "seed": 0}\n{"vari\n{"variant": "C", "seed": 0}\n')
    got = one_line_exit(ablation_main, ["--preset", "micro", "--out", str(tmp_path / "abl"), "--figure", "",
                                        "--results", str(path), "--report-only"])
    assert "damaged.jsonl:2: not a JSON record" in got


# ------------------------------------------------------------------------------ a busy machine

@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    for name in machine.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(machine, "torch_default_threads", lambda: {torch.get_num_threads()})


@pytest.mark.parametrize("busy, threads", [(0.0, 2), (0.2, 2), (0.5, 1), (1.0, 1), (1.9, 1), (2.0, 1)])
def test_threads_follow_the_free_cores(two_cores, monkeypatch, busy, threads):
    monkeypatch.setattr(machine, "busy_cores", lambda sample_s=machine.SAMPLE_S: busy)
    assert machine.free_cores() == threads
    got, why = machine.choose_threads()
    assert got == threads and why == f"{threads} of 2 cores free at the start"
    assert machine.choose_threads(processes=2)[0] == 1  # two processes of one run share them


def test_a_thread_count_the_user_chose_is_kept(two_cores, monkeypatch):
    monkeypatch.setattr(machine, "busy_cores", lambda sample_s=0: 1.0)
    assert machine.choose_threads(3) == (3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert machine.choose_threads() == (torch.get_num_threads(), "OMP_NUM_THREADS=2")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(machine, "torch_default_threads", lambda: {torch.get_num_threads() + 1})
    assert machine.choose_threads() == (torch.get_num_threads(), "torch.set_num_threads")
    with pytest.raises(ValueError, match="at least 1"):
        machine.choose_threads(0)


def test_busy_cores_counts_other_processes_over_a_sample_of_proc_stat(monkeypatch):
    hz = os.sysconf("SC_CLK_TCK")
    samples = iter([{0: (0, 0), 1: (0, 0), 2: (0, 0)},
                    {0: (hz, hz), 1: (0, hz), 2: (hz, hz)}])  # cpu 0 spins a whole second, cpu 1 idles
    monkeypatch.setattr(machine, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # cpu 2 is not ours
    monkeypatch.setattr(machine.time, "sleep", lambda s: None)
    assert machine.busy_cores() == pytest.approx(1.0, abs=0.05)


def test_a_run_takes_the_chosen_threads_records_them_and_gives_them_back(tokenizer_path, tmp_path, monkeypatch):
    from pmlm.checkpoint import read_metrics

    before = torch.get_num_threads()
    seen = []
    run = pretrain(small_cfg(tmp_path / "run", tokenizer_path, steps=2, threads=2, eval_every=0),
                   on_step=lambda step, model, record: seen.append(torch.get_num_threads()))
    end = next(r for r in read_metrics(run) if r.get("event") == "end")
    assert seen == [2, 2] and (end["threads"], end["threads_chosen_by"]) == (2, "--threads")
    assert torch.get_num_threads() == before


def test_the_machine_module_reads_affinity_and_memory():
    assert 1 <= machine.free_cores() <= machine.usable_cores() <= (os.cpu_count() or 1)
    assert machine.available_memory() is None or machine.available_memory() > 0
    assert machine.check_device("cpu").type == "cpu" and machine.check_device("auto").type in ("cpu", "cuda")


# --------------------------------------------------------------------------- the end of a run, in words

def fake_run(tmp_path: Path, steps: int, par: float, minutes: float = 5.0,
             threads=(1, "1 of 2 cores free at the start")) -> Path:
    """A run directory whose metrics say: ``steps`` steps in ``minutes``, PAR [M] accuracy ``par``."""
    run = tmp_path / "run"
    run.mkdir()
    records = [{"event": "start", "step": 0, "device": "cpu", "time_budget": minutes},
               {"split": "val", "step": steps, "val_ae_m_acc": par * 0.95, "val_par_m_acc": par,
                "unigram_m_acc": 0.078},
               {"event": "end", "step": steps, "elapsed_s": 60 * minutes, "threads": threads[0],
                "threads_chosen_by": threads[1]}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


REFERENCE = {"preset": "tiny", "steps": 3858, "time_budget_min": 5.0, "machine": {"cpu": "AMD EPYC", "cores": "2"}}


def test_a_busy_run_on_the_plateau_says_so_with_the_cause_and_a_command(tmp_path, monkeypatch):
    from pmlm.train.cli import run_verdict

    monkeypatch.delenv("PMLM_SMOKE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    cfg = TrainConfig.preset("tiny", time_budget=5.0, out_dir=str(tmp_path / "run"))
    lines = run_verdict(fake_run(tmp_path, 188, 0.079), cfg, "python -m pmlm.demo", budget_flag="--minutes",
                        reference=REFERENCE)
    text = "\n".join(lines)
    assert lines[0].startswith("steps: 188 in 5.0 minutes, about 3,858 expected (the tiny preset made 3,858")
    assert "the model did not leave the unigram plateau: [M] accuracy 1.0x the unigram baseline's" in text
    assert "likely cause: the machine was busy: 188 of about 3,858 steps, on 1 torch thread" in text
    assert "python -m pmlm.demo --minutes 103" in text


def test_the_end_of_a_run_says_too_few_steps_or_that_it_left_the_plateau(tmp_path, monkeypatch):
    from pmlm.train.cli import run_verdict

    monkeypatch.delenv("PMLM_SMOKE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    cfg = TrainConfig.preset("tiny", steps=200, out_dir=str(tmp_path / "run"))
    few = run_verdict(fake_run(tmp_path, 200, 0.08), cfg, "python -m pmlm.train --steps 200", reference=REFERENCE)
    assert few[0].startswith("steps: 200 of 200, in 5.0 minutes")
    assert few[-1].startswith("likely cause: too few steps: 200") and few[-1].endswith(
        "python -m pmlm.train --overwrite --steps 1500")
    (tmp_path / "run" / "metrics.jsonl").unlink()
    (tmp_path / "run").rmdir()
    good = run_verdict(fake_run(tmp_path, 3858, 0.219), TrainConfig.preset("tiny", time_budget=5.0),
                       reference=REFERENCE)
    assert good[-1] == ("the model left the unigram plateau: [M] accuracy 2.8x the unigram baseline's "
                        "(AE 0.208, PAR 0.219, unigram 0.078)")
    assert math.isclose(3858, int(good[0].split("about ")[1].split()[0].replace(",", "")))


def test_the_busy_machine_benchmark_scores_the_default_against_the_better_fixed_count():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import busy_machine

    run = lambda steps, threads=1: {"steps": steps, "threads": threads, "chosen_by": "x"}  # noqa: E731
    summary = busy_machine.summarize(
        {"busy": [{"default": run(140), "1 thread": run(151), "2 threads": run(72, 2)}],
         "idle": [{"default": run(239, 2), "1 thread": run(151), "2 threads": run(239, 2)}]})
    assert summary["busy"]["ratio"] == pytest.approx(140 / 151, abs=1e-3) and summary["busy"]["met"]
    assert summary["idle"]["ratio"] == 1.0 and summary["idle"]["met"]
    assert any("meets the target 0.9" in line for line in busy_machine.words(summary))
