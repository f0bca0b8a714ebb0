"""pmlm.train.budget: the schedule on the elapsed fraction of a time budget (Cramming), the batch
ramp, a budgeted run that ends inside its budget, and a budgeted run resumed where it stopped."""

import pytest

from pmlm.checkpoint import read_checkpoint, read_metrics
from pmlm.train import TrainConfig, parse_args, pretrain
from pmlm.train import budget as budget_module
from pmlm.train.budget import Budget, accumulation, schedule_factor
from test_train import cfg


def test_schedule_warms_up_then_decays_to_zero_on_the_fraction():
    assert schedule_factor(0.0, 0.1) == pytest.approx(1e-3)
    assert schedule_factor(0.05, 0.1) == pytest.approx(0.5)
    assert schedule_factor(0.1, 0.1) == pytest.approx(1.0)
    assert schedule_factor(0.55, 0.1) == pytest.approx(0.5)
    assert schedule_factor(1.0, 0.1) == 0.0
    xs = [schedule_factor(i / 100, 0.06) for i in range(101)]
    top = xs.index(max(xs))
    assert all(a <= b for a, b in zip(xs[:top], xs[1:top + 1]))  # rises ...
    assert all(a >= b for a, b in zip(xs[top:], xs[top + 1:]))  # ... then falls


def test_batch_ramp_grows_accumulation_from_one_to_grad_accum():
    assert [accumulation(f, 4, 0.5) for f in (0.0, 0.2, 0.4, 0.5, 0.9)] == [1, 2, 4, 4, 4]
    assert accumulation(0.0, 4, 0.0) == 4  # no ramp
    assert accumulation(0.3, 1, 0.5) == 1


def test_fraction_counts_loop_time_after_setup_and_reserve(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(budget_module.time, "time", lambda: now[0])
    b = Budget(1.0, steps=10, t_start=90.0)  # 60 s budget, called at t = 90
    b.start()  # setup took 10 s
    b.reserve(10.0)  # final evaluation + checkpoint: 10 s
    now[0] = 120.0
    assert b.fraction(0) == pytest.approx(20 / 40) and not b.done(0)
    assert b.left_s() == pytest.approx(20.0)
    now[0] = 140.0
    assert b.done(5)  # 40 s of loop: the rest of the budget is the reserve
    saved = b.state()
    again = Budget(1.0, steps=10, t_start=500.0, saved=saved)  # resumed in a new process
    now[0] = 510.0
    again.start()
    assert again.setup_s == 10.0 and again.loop_s() == pytest.approx(40.0)
    assert Budget(None, steps=10, t_start=0.0).fraction(5) == 0.5


def test_budgeted_run_ends_by_time_and_resumes_its_budget(tmp_path, tokenizer_path):  # noqa: F811
    c = cfg(tmp_path / "b", tokenizer_path, time_budget=0.1, steps=3, eval_every=20, save_every=0,
            log_every=5)
    run = pretrain(c)
    records = read_metrics(run)
    end = next(r for r in records if r.get("event") == "end")
    assert end["step"] > 3  # steps does not end a budgeted run
    assert end["elapsed_s"] <= 6.0 * 1.5  # the budget, with room for a loaded CI machine
    lrs = [r["lr"] for r in records if r.get("split") == "train"]
    assert max(lrs) == pytest.approx(c.lr, rel=0.2) and lrs[-1] < 0.2 * c.lr  # warmed up, decayed
    import pmlm
    model, _ = pmlm.load_model(run)  # every run ends with its model files
    info = pmlm.pretrained.training_info(run)
    assert info["steps"] == end["step"] and info["final_validation"]["step"] == end["step"]
    assert info["processes"][0]["cpu_s"] > 0 and info["train_config"]["time_budget"] == 0.1
    state = read_checkpoint(run)
    assert state["budget"]["loop_s"] > 0 and state["micro_step"] == state["step"]
    steps_before = state["step"]
    pretrain(cfg(tmp_path / "b", tokenizer_path, time_budget=0.1, steps=3, eval_every=20,
                 save_every=0, log_every=5, resume=True))
    assert read_checkpoint(run)["step"] <= steps_before + 2  # the budget was spent already


def test_time_budget_flag_and_bad_values():
    assert parse_args(["--time-budget", "5"]).time_budget == 5.0
    with pytest.raises(ValueError, match="time_budget"):
        TrainConfig(time_budget=0).validate()
    with pytest.raises(ValueError, match="batch_ramp"):
        TrainConfig(batch_ramp=1.5).validate()
