"""The ablation runner: aggregation over seeds, the report files, and one end-to-end micro run."""

import csv
import json
import math
import random

import pytest
import torch

from pmlm import ablation


def fake_rows():
    rows = []
    for variant, base in (("AE", 0.60), ("AE+PAR", 0.70), ("none", 0.50)):
        for seed, delta in ((0, -0.01), (1, 0.01)):
            rows.append({"variant": variant, "seed": seed, "objective": "x", "factorization": "y",
                         "test_acc": base + delta, "bleu": 100 * base + seed, "chrf": 50.0, "copy_bleu": 20.0,
                         "val_ae_loss": 5.0, "val_par_loss": None, "pretrain_s": 1.0})
    return rows


def test_summary_is_mean_and_sample_std_over_seeds():
    summary = {e["variant"]: e for e in ablation.summarize(fake_rows())}
    assert list(summary) == ["AE", "AE+PAR", "none"]  # Table 6 order, control last
    e = summary["AE+PAR"]
    assert e["seeds"] == 2 and math.isclose(e["test_acc_mean"], 0.70)
    assert math.isclose(e["test_acc_std"], math.sqrt(2 * 0.01 ** 2))  # sample std: n - 1
    assert math.isclose(e["bleu_mean"], 70.5) and math.isnan(e["val_par_loss_mean"])
    assert summary["none"]["table6_row"] == "control"


def test_report_writes_table_csv_and_figure(tmp_path):
    with open(tmp_path / "results.jsonl", "w") as f:
        for r in fake_rows():
            f.write(json.dumps(r) + "\n")
    table = ablation.report(tmp_path, "cpu", tmp_path / "fig.png")
    assert "| AE+PAR |" in table and "70.0 ± 1.4" in table
    assert "Ordering by sentiment acc (%) (best first): AE+PAR > AE > none." in table
    assert (tmp_path / "ablation.md").read_text() == table
    with open(tmp_path / "ablation.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert (tmp_path / "fig.png").stat().st_size > 10_000


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown ablation preset"):
        ablation.run("huge")
    with pytest.raises(ValueError, match="unknown variants"):
        ablation.run("micro", variants=["XLNet"])


@pytest.mark.slow
def test_micro_run_end_to_end(tmp_path, monkeypatch):
    """Two variants and the control, one seed, on toy task data: every file appears, reruns skip."""
    rng = random.Random(0)
    words = "the lord said unto him thou shalt go and see".split()

    def toy_bible():
        split = {}
        for name, n in (("train", 80), ("validation", 8), ("test", 8)):
            split[name] = []
            for i in range(n):
                s = " ".join(rng.choice(words) for _ in range(6))
                split[name].append({"source": s, "target": s.replace("thou shalt", "you shall"),
                                    "ref": f"Book {i % 3 + 1}:{i}"})
        return split

    def toy_sentiment():
        return {name: [{"text": f"a {'good' if i % 2 else 'bad'} film {i}", "label": i % 2} for i in range(n)]
                for name, n in (("train", 80), ("validation", 16), ("test", 16))}

    monkeypatch.setattr(ablation.runs, "bible_splits", toy_bible)
    monkeypatch.setattr(ablation.runs, "sentiment_splits", toy_sentiment)
    logs = []
    table = ablation.run("micro", tmp_path / "abl", variants=["AE", "AE+PAR"], figure=tmp_path / "fig.png",
                         log=logs.append)
    rows = ablation.read_results(tmp_path / "abl" / "results.jsonl")
    assert [(r["variant"], r["seed"]) for r in rows] == [("AE", 0), ("AE+PAR", 0), ("none", 0)]
    assert all(0 <= r["test_acc"] <= 1 and 0 <= r["bleu"] <= 100 for r in rows)
    assert rows[0]["val_ae_loss"] is not None and rows[2]["pretrain_s"] == 0.0
    assert "| AE+PAR | ae+par | block | 1-2 | 1 |" in table
    assert (tmp_path / "fig.png").is_file() and (tmp_path / "abl" / "ablation.csv").is_file()
    logs.clear()
    ablation.run("micro", tmp_path / "abl", variants=["AE", "AE+PAR"], figure=None, log=logs.append)
    assert sum("skipped" in line for line in logs) == 3  # an interrupted run resumes, finished runs are kept
    with pytest.raises(ValueError, match="other settings"):
        ablation.run("micro", tmp_path / "abl", variants=["AE"], rel_pos=False, figure=None, log=logs.append)


def test_ordering_marks_ties():
    summary = [{"variant": "AE", "test_acc_mean": 0.5833}, {"variant": "PAR", "test_acc_mean": 0.58330000001},
               {"variant": "none", "test_acc_mean": 0.62}, {"variant": "AR", "test_acc_mean": math.nan}]
    assert ablation.ordering(summary, "test_acc") == "none > AE = PAR"
    assert ablation.ordering(summary, "test_acc", higher=False) == "AE = PAR > none"


def test_report_only_without_results_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no results at"):
        ablation.main(["--preset", "cpu", "--report-only", "--results", str(tmp_path / "none.jsonl"),
                       "--out", str(tmp_path / "out")])


def test_the_committed_cpu_results_render():
    from pmlm.reports import RESULTS, ablation_block, read_jsonl
    rows = read_jsonl(RESULTS / "ablation-cpu.jsonl")
    if not rows:
        pytest.skip("no committed cpu ablation yet")
    assert all(r["preset"] == "cpu" for r in rows)
    assert "runs recorded" in ablation_block()
