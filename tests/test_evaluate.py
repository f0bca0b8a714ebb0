"""Scoring (pmlm.evaluate): ROUGE and BLEU equal their definitions worked out by hand on tiny
cases, and the command line turns bad files into one line and exit status 2."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pmlm.evaluate import bleu, chrf, main, rouge, score, score_files

ROOT = Path(__file__).resolve().parents[1]


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r)


def test_rouge_by_hand():
    preds = ["the cat sat on the mat", "he ran to us"]
    golds = ["the cat is on the mat", "he ran far to us now"]
    # pair 1: 6 words each. Unigrams in common, clipped: the x2, cat, on, mat = 5 of 6 and 6.
    #   bigrams: "the cat", "on the", "the mat" = 3 of 5 and 5. LCS "the cat on the mat" = 5.
    # pair 2: 4 and 6 words. Unigrams: he, ran, to, us = 4: P 4/4, R 4/6.
    #   bigrams "he ran", "to us" = 2: P 2/3, R 2/5. LCS "he ran to us" = 4.
    r1 = (f1(5 / 6, 5 / 6) + f1(4 / 4, 4 / 6)) / 2
    r2 = (f1(3 / 5, 3 / 5) + f1(2 / 3, 2 / 5)) / 2
    rl = (f1(5 / 6, 5 / 6) + f1(4 / 4, 4 / 6)) / 2
    got = rouge(preds, golds)
    assert got == pytest.approx({"rouge1": 100 * r1, "rouge2": 100 * r2, "rougeL": 100 * rl})
    assert got["rouge2"] == pytest.approx(100 * (0.6 + 0.5) / 2)


def test_rouge_l_takes_order_into_account_and_rouge_1_does_not():
    got = rouge(["mat the on sat cat the"], ["the cat sat on the mat"])
    assert got["rouge1"] == pytest.approx(100)
    # the longest common subsequence has 3 words ("the cat the", "the sat the" or "the on the"): no
    # 4 words of the reference come in its order in the prediction
    assert got["rougeL"] == pytest.approx(100 * f1(3 / 6, 3 / 6))


def test_rouge_stems_and_lowercases_as_rouge_score_does():
    assert rouge(["Running dogs"], ["the dog runs"])["rouge1"] == pytest.approx(100 * f1(2 / 2, 2 / 3))
    assert rouge(["Running dogs"], ["the dog runs"], stemmer=False)["rouge1"] == 0.0


def test_bleu_by_hand():
    # one pair, 6 tokens each: clipped n-gram matches 5/6, 3/5, 2/4, 1/3; no brevity penalty
    assert bleu(["a b c d e f"], ["a b c d x f"]) == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    # a prediction of 4 against 6 reference tokens: every n-gram matches, brevity penalty exp(1 - 6/4)
    assert bleu(["a b c d"], ["a b c d e f"]) == pytest.approx(100 * math.exp(1 - 6 / 4))
    # the corpus score sums the counts over the pairs (it is not a mean of sentence scores)
    two = bleu(["a b c d e f", "a b c d"], ["a b c d x f", "a b c d e f"])
    p = (5 + 4) / (6 + 4), (3 + 3) / (5 + 3), (2 + 2) / (4 + 2), (1 + 1) / (3 + 1)
    assert two == pytest.approx(100 * math.prod(p) ** 0.25 * math.exp(1 - 12 / 10))


def test_chrf_bounds_and_score_keys():
    assert chrf(["the same words"], ["the same words"]) == pytest.approx(100)
    assert chrf(["xyz"], ["abc"]) == 0.0
    got = score(["a b c d e f"], ["a b c d x f"], ["bleu", "rouge"])
    assert list(got) == ["bleu", "rouge1", "rouge2", "rougeL"]


@pytest.mark.parametrize("preds, golds, message", [
    (["a", "b"], ["a"], "2 predictions but 1 references"),
    ([], [], "no examples"),
    ("a b", "a b", "a list of strings"),
    (["a", 3], ["a", "b"], "a list of strings"),
])
def test_bad_lists_are_a_value_error(preds, golds, message):
    for fn in (rouge, bleu, chrf):
        with pytest.raises(ValueError, match=message):
            fn(preds, golds)


def test_files_line_for_line(tmp_path, capsys):
    pred, gold = tmp_path / "pred.txt", tmp_path / "gold.txt"
    pred.write_text("a b c d e f\n\n")  # an empty prediction counts as a line
    gold.write_bytes(b"a b c d x f\r\nsomething\r\n")  # CRLF
    got = main(["--pred", str(pred), "--gold", str(gold), "--metric", "rouge", "--metric", "bleu"])
    out = capsys.readouterr().out
    assert "ROUGE-1" in out and "BLEU" in out and "chrF" not in out
    assert got == score(["a b c d e f", ""], ["a b c d x f", "something"], ["rouge", "bleu"])
    main(["--pred", str(pred), "--gold", str(gold), "--json"])
    assert set(json.loads(capsys.readouterr().out)) == {"rouge1", "rouge2", "rougeL", "bleu", "chrf"}
    weird = tmp_path / "weird.txt"  # a line separator inside a text does not start a new line
    weird.write_text("a b\u2028c d e f\nx\n")
    assert len(score_files(weird, gold, ["chrf"])) == 1


def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text("one\ntwo\n")
    short = tmp_path / "short.txt"
    short.write_text("one\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"one\ncaf\xe9\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"one\n\x00\x01\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [((good, short), f"{good} has 2 lines but {short} has 1: give one reference line per prediction line"),
             ((good, tmp_path / "nope.txt"), "no reference file at"),
             ((tmp_path / "nope.txt", good), "no prediction file at"),
             ((tmp_path, good), "is a folder"),
             ((good, latin1), "not UTF-8 text (byte 0xe9 on line 2): convert it"),
             ((binary, good), "binary data (a NUL byte on line 2)"),
             ((empty, empty), "are empty: nothing to score")]
    for (pred, gold), message in cases:
        with pytest.raises(SystemExit) as err:
            main(["--pred", str(pred), "--gold", str(gold)])
        assert err.value.code == 2
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and said.startswith("python -m pmlm.evaluate: error: ") and message in said, said
        with pytest.raises(ValueError, match="line|file|empty|folder"):
            score_files(pred, gold)  # the same from Python: a ValueError


@pytest.mark.slow
def test_the_command_runs_as_a_module(tmp_path):
    good, short = tmp_path / "good.txt", tmp_path / "short.txt"
    good.write_text("one two\nthree\n")
    short.write_text("one two\n")
    ok = subprocess.run([sys.executable, "-m", "pmlm.evaluate", "--pred", str(good), "--gold", str(good),
                         "--metric", "chrf"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0 and "chrF" in ok.stdout and "100.00" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "pmlm.evaluate", "--pred", str(good), "--gold", str(short)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
