"""Fine-tuned models are saved and used afterwards: finetune --save, load_finetuned, pmlm.predict
(its functions and its command line), and the one-line errors of bad input."""

import json

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


# ------------------------------------------------------------------ generate: files, flags, batches, bad input

VERSES = ["and god said , let there be light", "in the beginning god created the heaven and the earth",
          "and the evening and the morning were the first day", "light"]


def test_generate_reads_jsonl_and_writes_one_line_per_source_in_input_order(translator, tmp_path, capsys):
    ft = load_finetuned(translator)
    from pmlm.predict import encode_sources
    tokens = ["and", "god", "said"]  # s2s-ft's pre-tokenized input: a list of vocabulary tokens
    assert encode_sources(ft, [tokens]) == encode_sources(ft, ["and god said"])
    sources = [*VERSES, tokens]
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps({"src": s, "tgt": "ignored"}) + "\n" for s in sources))
    out = tmp_path / "preds.txt"
    capsys.readouterr()
    predict_main(["generate", "--model", str(translator), "--file", str(src), "--out", str(out), "--beam", "2",
                  "--max-length", "6", "--batch-size", "2"])
    said = capsys.readouterr()
    alone = [generate_texts(ft, [s], beam_size=2, max_length=6, batch_size=1)[0] for s in sources]
    assert out.read_text().split("\n") == [*alone, ""]  # one line per source, input order, batched = alone
    assert said.out == "" and "5 sources decoded" in said.err and f"written to {out}" in said.err
    assert "decoding" in said.err  # the progress bar
    txt = tmp_path / "src.txt"
    txt.write_text("\n".join(VERSES) + "\n")
    predict_main(["generate", "--model", str(translator), "--file", str(txt), "--beam", "2", "--max-length", "6"])
    assert capsys.readouterr().out.splitlines() == alone[:4]


def test_decoding_flags_change_the_output_as_specified(translator, tmp_path, monkeypatch, capsys):
    """The flags, end to end through the command line, on a decoder whose probabilities are scripted
    (tests/scripted_decoder.py) in the model's own tokens: god . god . light [EOS]."""
    from scripted_decoder import by_position, scripted

    from pmlm.finetune import decoding
    ft = load_finetuned(translator)
    tok = ft.tokenizer
    g, dot, light, other, eos = (tok.token_to_id(w) for w in ("god", ".", "light", "earth", "[EOS]"))
    steps = [{w: 0.6, other: 0.35 if t == 4 else 0.2} for t, w in enumerate([g, dot, g, dot, light, eos], start=1)]
    monkeypatch.setattr(decoding, "CachedStepper", scripted(by_position(steps), ft.model.config.vocab_size))
    src = tmp_path / "one.txt"
    src.write_text("and god said\n")

    def run(*flags):
        capsys.readouterr()
        predict_main(["generate", "--model", str(translator), "--file", str(src), "--max-length", "20", *flags])
        return capsys.readouterr().out.rstrip("\n")

    text = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    assert run("--greedy") == text([g, dot, g, dot, light])
    # bigram blocking: "god ." is not repeated, the 4th token falls back to "earth"
    assert run("--greedy", "--forbid-duplicate-ngrams", "--ngram-size", "2") == text([g, dot, g, other, light])
    assert run("--greedy", "--no-repeat-ngram", "2") == text([g, dot, g, other, light])
    assert run("--beam", "3", "--no-repeat-ngram", "2") == text([g, dot, g, other, light])
    # ... unless "." is an ignored word
    assert run("--greedy", "--forbid-duplicate-ngrams", "2", "--forbid-ignore-word", ".") == text([g, dot, g, dot,
                                                                                                   light])
    # [EOS] forbidden at steps 1..7: two more tokens (the fallback) before it
    assert run("--greedy", "--min-length", "7") == text([g, dot, g, dot, light, other, other])
    assert run("--greedy", "--max-target-length", "3") == text([g, dot, g])
    # the length penalty: [] (p 0.5) against [god] (0.45 x 0.9); alpha 2 favours the longer one
    script = lambda prefix: {eos: 0.5, g: 0.45} if not prefix else {eos: 0.9, g: 0.05}  # noqa: E731
    monkeypatch.setattr(decoding, "CachedStepper", scripted(script, ft.model.config.vocab_size))
    assert run("--beam", "2", "--length-penalty", "0") == ""
    assert run("--beam", "2", "--length-penalty", "2") == text([g])


def test_generate_bad_input_gives_one_error_line(translator, tmp_path):
    def file(name: str, data: bytes):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    out = tmp_path / "preds.txt"
    cases = [
        (file("nosrc.jsonl", b'{"src": "light"}\n{"tgt": "x"}\n'), [], 'nosrc.jsonl:2: no "src" field (its keys: tgt)'),
        (file("blank.jsonl", b'{"src": "light"}\n\n{"src": "day"}\n'), [], "blank.jsonl:2: an empty line"),
        (file("latin1.jsonl", b'{"src": "light"}\n{"src": "caf\xe9"}\n'), [], "not UTF-8 text (byte 0xe9 on line 2)"),
        (file("badjson.jsonl", b'{"src": "light"\n'), [], "badjson.jsonl:1: not valid JSON"),
        (file("list.jsonl", b'["light"]\n'), [], "list.jsonl:1: a JSON list, not an object with a src field"),
        (file("number.jsonl", b'{"src": 7}\n'), [], "number.jsonl:1: src is a JSON int"),
        (file("emptysrc.jsonl", b'{"src": " "}\n'), [], "emptysrc.jsonl:1: src is empty"),
        (file("blank.txt", b"light\n\nday\n"), [], "blank.txt:2: an empty line: every line is a source"),
        (file("empty.txt", b""), [], "no input"),
        (file("ok.txt", b"light\n"), ["--out", str(tmp_path / "nowhere" / "p.txt")], "there is no folder"),
        (file("ok.txt", b"light\n"), ["--out", str(tmp_path)], "is a folder"),
        (file("ok.txt", b"light\n"), ["--ngram-size", "2"], "--ngram-size sets the n of --forbid-duplicate-ngrams"),
        (file("ok.txt", b"light\n"), ["--forbid-duplicate-ngrams", "--forbid-ignore-word", "qqqzzz"],
         "'qqqzzz' is not a token"),
    ]
    for path, flags, message in cases:
        argv = ["generate", "--model", str(translator), "--file", str(path), *flags]
        with pytest.raises(SystemExit) as err:
            predict_main(argv if "--out" in flags else [*argv, "--out", str(out)])
        assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert not out.exists()  # nothing written for a run that failed
