"""pmlm.train.loggers (--logger tensorboard, --logger wandb): the records of metrics.jsonl, the same in every
sink, a resumed run that reads as the uninterrupted one, and a bad --logger that fails in one line."""

import json
import re
import sys
import types
from pathlib import Path

import pytest

from pmlm.checkpoint import read_metrics
from pmlm.train import TrainConfig, main, parse_args, pretrain
from pmlm.train.loggers import WANDB_ID_FILE, scalars

from tiny import MODEL



def tiny(out, tokenizer_path, **kw) -> TrainConfig:
    """Two steps of a one-layer model on 12 documents: every kind of record in a few seconds."""
    base = dict(steps=2, model_overrides=MODEL, max_documents=12, vocab_size=1000, max_length=48,
                batch_size=4, warmup_steps=1, log_every=1, eval_every=2, eval_examples=8, save_every=2,
                out_dir=str(out), progress=False, tokenizer=tokenizer_path)
    return TrainConfig.preset("tiny", **{**base, **kw})


def expected_scalars(run) -> dict[str, dict[int, float]]:
    """metrics.jsonl as tag -> {step: value}, the way every sink should have received it."""
    out: dict[str, dict[int, float]] = {}
    for record in read_metrics(run):
        for tag, value in scalars(record).items():
            assert record["step"] not in out.setdefault(tag, {}), f"{tag} logged twice at one step"
            out[tag][record["step"]] = value
    return out


def tensorboard_scalars(run) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run) / "tensorboard"), size_guidance={"scalars": 0})  # 0: keep all
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_same(tb: dict[str, list[tuple[int, float]]], expected: dict[str, dict[int, float]]) -> None:
    assert set(tb) == set(expected)
    for tag, events in tb.items():
        steps = [step for step, _ in events]
        assert steps == sorted(expected[tag]), tag  # each step once: nothing stale, nothing missing
        assert [v for _, v in events] == pytest.approx([expected[tag][s] for s in steps], rel=1e-6), tag


# ------------------------------------------------------------------------------ names, packages

def test_log_names_are_repeatable_or_comma_separated():
    assert parse_args([]).loggers == ()  # default: metrics.jsonl alone
    argv = ["--logger", "tensorboard,wandb", "--logger", "tensorboard"]
    assert parse_args(argv).loggers == ("tensorboard", "wandb")
    assert TrainConfig(loggers="wandb").loggers == ("wandb",)


def test_every_flag_passes_through_torchrun_untouched(capsys):
    """torchrun's parser reads the arguments after ``-m pmlm.train`` too: a flag of ours that
    abbreviates one of its own (``--log`` of ``--log-dir``) would stop it or be taken by it."""
    from torch.distributed.run import get_args_parser

    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]  # "usage: pmlm-train [-h] [--preset ...] ..."
    flags = sorted(set(re.findall(r"(?<![\w-])--[a-z][\w-]*", usage)))
    assert {"--logger", "--resume", "--steps"} <= set(flags)
    for flag in flags:
        argv = ["--nproc-per-node", "2", "-m", "pmlm.train", flag, "x"]
        assert get_args_parser().parse_args(argv).training_script_args == [flag, "x"], flag


def test_an_unknown_logger_is_refused_with_the_names_to_choose_from(tmp_path):
    refused = r"unknown logger 'tensorbored' in --logger; choose from \['tensorboard', 'wandb'\]"
    with pytest.raises(ValueError, match=refused):
        TrainConfig(loggers=("tensorbored",)).validate()
    with pytest.raises(SystemExit) as exc:
        main(["--logger", "tensorbored", "--out-dir", str(tmp_path / "run")])
    assert isinstance(exc.value.code, str) and "unknown logger 'tensorbored'" in exc.value.code
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_missing_package_is_one_line_saying_what_to_install(name, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    with pytest.raises(SystemExit) as exc:
        main(["--logger", name, "--out-dir", str(tmp_path / "run")])
    message = exc.value.code
    assert isinstance(message, str) and "\n" not in message
    assert f"--logger {name} needs the {name} package: pip install 'pmlm[{name}]'" in message
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- sinks

@pytest.mark.slow
def test_tensorboard_holds_the_metrics_jsonl_values_also_after_a_killed_run_resumes(tmp_path, tokenizer_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    pretrain(tiny(run, tokenizer_path, loggers=("tensorboard",)))
    expected = expected_scalars(run)
    assert {"train/loss", "train/ae_loss", "train/par_loss", "train/lr", "train/tokens_per_s",
            "val/val_ae_loss", "start/parameters", "end/elapsed_s"} <= set(expected)
    assert expected["train/loss"].keys() == {1, 2} and expected["val/val_ae_loss"].keys() == {0, 2}
    assert_same(tensorboard_scalars(run), expected)

    # killed after logging step 3, its last checkpoint at step 2: the resumed run's own step 3
    # replaces the killed run's, in TensorBoard (purge_step) as in metrics.jsonl
    class Killed(Exception):
        pass

    def kill(step, model, record):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        pretrain(tiny(run, tokenizer_path, steps=4, resume=True, loggers=("tensorboard",)), on_step=kill)
    pretrain(tiny(run, tokenizer_path, steps=4, resume=True, loggers=("tensorboard",)))
    expected = expected_scalars(run)
    assert expected["train/loss"].keys() == {1, 2, 3, 4}
    assert_same(tensorboard_scalars(run), expected)


class FakeWandb(types.ModuleType):
    """What WandbSink calls of `wandb`: init(**kwargs) -> a run with define_metric, log, finish."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.runs: list[types.SimpleNamespace] = []

    def init(self, **kwargs):
        run = types.SimpleNamespace(kwargs=kwargs, logged=[], axes={}, finished=False)
        run.define_metric = lambda name, step_metric=None: run.axes.__setitem__(name, step_metric)
        run.log = lambda data: run.logged.append(json.loads(json.dumps(data)))
        run.finish = lambda: setattr(run, "finished", True)
        self.runs.append(run)
        return run


@pytest.mark.slow
def test_wandb_receives_the_same_records_and_a_resume_continues_the_same_run(tmp_path, tokenizer_path,
                                                                             monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    run = tmp_path / "run"
    first = tiny(run, tokenizer_path, loggers=("wandb",))
    pretrain(first)
    resumed = tiny(run, tokenizer_path, steps=3, resume=True, loggers=("wandb",))
    pretrain(resumed)

    a, b = fake.runs
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    assert a.kwargs == {"project": "pmlm", "name": "run", "dir": str(run), "config": first.to_dict(),
                        "resume": "allow", "id": run_id}
    assert b.kwargs["id"] == run_id and b.kwargs["config"] == resumed.to_dict()  # the same W&B run
    assert a.finished and b.finished
    assert a.axes["train/*"] == a.axes["val/*"] == "step"  # plotted against our step, not W&B's counter
    records = [r for r in read_metrics(run) if scalars(r)]
    assert a.logged + b.logged == [{"step": r["step"], **scalars(r)} for r in records]
    assert [r["step"] for r in b.logged] == [3, 3, 3]  # the resumed run: train, val, end at step 3

    pretrain(tiny(run, tokenizer_path, overwrite=True, loggers=("wandb",)))  # a fresh run: a new W&B run
    assert fake.runs[-1].kwargs["id"] != run_id == a.kwargs["id"]
