"""Fine-tuned models are saved and used afterwards: finetune --save, load_finetuned, pmlm.predict
(its functions and its command line), and the one-line errors of bad input."""

import pytest

from pmlm.finetune.__main__ import main as finetune_main
from pmlm.finetune.saved import load_finetuned
from pmlm.predict import classify_texts, generate_texts
from pmlm.predict import main as predict_main


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "sentiment"
    metrics = finetune_main(["classify", "--preset", "smoke", "--max-steps", "5", "--train-limit", "200",
                             "--eval-limit", "50", "--save", str(out)])
    assert metrics["saved"] == str(out)
    return out, metrics


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "verses"
    finetune_main(["seq2seq", "--preset", "smoke", "--max-steps", "3", "--train-limit", "64",
                   "--eval-limit", "8", "--save", str(out)])
    return out


def test_saved_classifier_predicts_what_it_predicted_in_training(classifier, tmp_path, capsys):
    out, metrics = classifier
    ft = load_finetuned(out)
    assert ft.task == "classify" and ft.meta["labels"] == ["rotten", "fresh"]
    assert ft.meta["metrics"]["test_acc"] == metrics["test_acc"]
    got = classify_texts(ft, ["a gorgeous , witty film", "dull and lifeless"])
    assert [label in ("rotten", "fresh") and 0.5 <= p <= 1.0 for label, p in got] == [True, True]
    # the saved model scores the fine-tuning run's test sample exactly as the run did
    from pmlm.finetune.data import SENTIMENT_LABELS, sentiment_splits, subsample
    test = subsample(sentiment_splits()["test"], 50, 0)
    labels = [label for label, _ in classify_texts(ft, [r["text"] for r in test])]
    acc = sum(label == SENTIMENT_LABELS[r["label"]] for label, r in zip(labels, test)) / len(test)
    assert acc == pytest.approx(metrics["test_acc"])
    path = tmp_path / "in.txt"
    path.write_text("a gorgeous , witty film\n\ndull and lifeless\n")
    capsys.readouterr()
    predict_main(["classify", "--model", str(out), "--file", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [label for label, _ in got]


def test_saved_seq2seq_model_generates_with_its_saved_and_overridden_settings(translator, tmp_path, capsys):
    ft = load_finetuned(translator)
    assert ft.task == "seq2seq" and ft.meta["decode"].max_length >= 1
    greedy = generate_texts(ft, ["and god said , let there be light"], beam_size=1, max_length=5)
    assert len(greedy) == 1 and len(greedy[0].split()) <= 5
    path = tmp_path / "kjv.txt"
    path.write_text("and god said , let there be light\n")
    capsys.readouterr()
    predict_main(["generate", "--model", str(translator), "--file", str(path), "--greedy", "--max-length", "5"])
    assert capsys.readouterr().out.splitlines() == greedy


def test_bad_input_gives_one_error_line(classifier, translator, tmp_path):
    out, _ = classifier
    long = tmp_path / "long.txt"
    long.write_text(" ".join(["and"] * 100) + "\n")
    cases = [(["classify", "--model", str(tmp_path / "none")], "not a directory"),
             (["generate", "--model", str(translator), "--file", str(long)], "fine-tuned on sources of at most"),
             (["generate", "--model", str(translator), "--file", str(long), "--beam", "0", "--truncate"], "beam_size"),
             (["generate", "--model", str(out), "--file", __file__], "fine-tuned for 'classify'"),
             (["classify", "--model", str(out), "--file", str(tmp_path / "missing.txt")], "no input file")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases.append((["classify", "--model", str(out), "--file", str(empty)], "no input"))
    (tmp_path / "broken").mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / "broken" / f).write_bytes((translator / f).read_bytes())
    cases.append((["generate", "--model", str(tmp_path / "broken")], "not a fine-tuned model"))
    for argv, message in cases:
        with pytest.raises(SystemExit) as err:
            predict_main(argv)
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(SystemExit) as err:
        finetune_main(["classify", "--preset", "smoke", "--pretrained", str(tmp_path / "nowhere")])
    assert "error:" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(SystemExit, match="cannot be read"):
        finetune_main(["classify", "--preset", "smoke", "--pretrained", str(tmp_path / "corrupt")])
    from pmlm.data import prepare_corpus
    from pmlm.tokenizer import save_tokenizer
    other = save_tokenizer(prepare_corpus(None, max_documents=4, vocab_size=150, max_length=32).tokenizer,
                           tmp_path / "other.json")
    with pytest.raises(SystemExit, match="error: the tokenizer has .* entries but the checkpoint's vocabulary"):
        finetune_main(["classify", "--preset", "smoke", "--pretrained", str(out), "--tokenizer", str(other)])


def test_classify_reads_standard_input(classifier, monkeypatch, capsys):
    import io

    out, _ = classifier
    monkeypatch.setattr("sys.stdin", io.StringIO("a gorgeous , witty film\ndull and lifeless\n"))
    capsys.readouterr()
    predict_main(["classify", "--model", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in ("rotten", "fresh") for line in lines)
