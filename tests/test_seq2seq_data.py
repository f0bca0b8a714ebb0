"""Your own pairs: ``python -m pmlm.finetune seq2seq --data FILE`` (pmlm.finetune.pairs), and bad input.

The formats are s2s-ft's JSON lines (texts or lists of word pieces, told apart per line as
``s2s_ft/utils.py`` ``load_and_cache_examples`` does) and TSV. The bundled verses written into such
a file give the very pairs the bundled path gives; every bad file is one line naming file and line,
and leaves what was fine-tuned before as it was.
"""

import gzip
import json

import pytest
import torch

from test_unilmv2 import files, synthetic_state  # noqa: F401  (files: a fixture)

from pmlm.finetune.__main__ import main
from pmlm.finetune.data import bible_splits
from pmlm.finetune.pairs import read_pairs
from pmlm.finetune.seq2seq import Seq2SeqConfig, encode_pairs
from pmlm.pretrained import load_reference


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_json_lines_of_texts_and_of_word_pieces(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [
        json.dumps({"src": "Messages posted on social media", "tgt": "Threats to kill pupils", "id": 7}),
        json.dumps({"src": ["media", "play", "##back"], "tgt": ["a", "slide"]})])
    rows = read_pairs(path)
    assert rows[0] == {"source": "Messages posted on social media", "target": "Threats to kill pupils",
                       "ref": "train.jsonl:1"}
    assert rows[1]["source"] == ["media", "play", "##back"] and rows[1]["target"] == ["a", "slide"]


def test_word_pieces_are_looked_up_as_they_are(files):
    """s2s-ft's convert_tokens_to_ids: a piece the vocabulary lacks is [UNK], no lower-casing."""
    from pmlm.unilmv2 import bert_tokenizer

    tok = bert_tokenizer(files / "vocab.txt")
    rows = [{"source": ["the", "she", "##a", "The"], "target": ["was"]}, {"source": "The she", "target": "was"}]
    pairs, _, _ = encode_pairs(tok, rows, Seq2SeqConfig(max_source_len=16, max_target_len=8))
    unk, the, she, a = (tok.token_to_id(p) for p in ("[UNK]", "the", "she", "##a"))
    assert pairs[0] == ([the, she, a, unk], [tok.token_to_id("was")])
    assert pairs[1] == ([the, she], [tok.token_to_id("was")])  # a text goes through the tokenizer


def test_tsv_with_and_without_a_header(tmp_path):
    plain = write_lines(tmp_path / "a.tsv", ["in the beginning\tat first", "and god said\tgod said"])
    headed = write_lines(tmp_path / "b.tsv", ["src\ttgt", "in the beginning\tat first", "and god said\tgod said"])
    strip = lambda rows: [(r["source"], r["target"]) for r in rows]  # noqa: E731
    assert strip(read_pairs(plain)) == strip(read_pairs(headed)) == [("in the beginning", "at first"),
                                                                      ("and god said", "god said")]
    assert read_pairs(headed)[0]["ref"] == "b.tsv:2"


def test_a_line_separator_inside_a_text_is_not_the_end_of_a_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"src": "one\u2028two", "tgt": "x\x0cy"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_pairs(path)[0]["source"] == "one\u2028two"


def encode_pairs_before(tok, rows, cfg):
    """encode_pairs as it was before --data (pmlm/finetune/seq2seq.py): the pairs that fit, left out otherwise."""
    from pmlm.finetune.common import encode_texts

    src = encode_texts(tok, [r["source"] for r in rows])
    tgt = encode_texts(tok, [r["target"] for r in rows])
    return [(s, t) for s, t in zip(src, tgt) if t and len(s) + 2 <= cfg.max_source_len and len(t) + 1 <= cfg.max_target_len]


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv.gz"])
def test_the_bundled_verses_give_the_same_pairs_through_a_file(tmp_path, suffix):
    _, tok = load_reference()
    splits = bible_splits()
    rows = splits["test"][:600] + splits["train"][:600]
    path = tmp_path / f"verses{suffix}"
    if suffix == ".jsonl":
        write_lines(path, [json.dumps({"src": r["source"], "tgt": r["target"]}) for r in rows])
    else:
        path.write_bytes(gzip.compress("".join(f"{r['source']}\t{r['target']}\n" for r in rows).encode()))
    for preset in ("smoke", "tiny"):
        cfg = Seq2SeqConfig.preset(preset)
        bundled, _, left = encode_pairs(tok, rows, cfg)
        assert bundled == encode_pairs_before(tok, rows, cfg) and left > 0  # the verses: too long is left out
        assert encode_pairs(tok, read_pairs(path), cfg)[0] == bundled


# ---- bad input: one line, and nothing fine-tuned before is lost -------------------------------------

BAD_JSONL = [
    ('{"src": "the she"}', r"bad.jsonl:2: no 'tgt' key"),
    ('{"tgt": "the she"}', r"bad.jsonl:2: no 'src' key"),
    ("", r"bad.jsonl:2: an empty line; every line must hold one pair: remove it"),
    ('{"src": "the she", "tgt": "  "}', r"bad.jsonl:2: the target is empty"),
    ('{"src": ["the"], "tgt": "she"}', r"bad.jsonl:2: \"src\" is a list of word pieces but \"tgt\" a text"),
    ('{"src": "the", "tgt": 3}', r"bad.jsonl:2: 'tgt' is a JSON int"),
    ('["the", "she"]', r"bad.jsonl:2: a JSON list, not an object"),
    ('{"src": "the" "tgt": "she"}', r"bad.jsonl:2: not valid JSON"),
]


@pytest.mark.parametrize("line,message", BAD_JSONL)
def test_a_bad_json_line_is_named_by_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "bad.jsonl", ['{"src": "a", "tgt": "b"}', line, '{"src": "c", "tgt": "d"}'])
    with pytest.raises(ValueError, match=message):
        read_pairs(path)


def test_other_bad_files(tmp_path):
    latin = tmp_path / "bad.jsonl"
    latin.write_bytes(b'{"src": "a", "tgt": "b"}\n{"src": "caf\xe9", "tgt": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: byte 0xe9 is not UTF-8 text: convert the file"):
        read_pairs(latin)
    tabs = write_lines(tmp_path / "bad.tsv", ["a\tb", "a\tb\tc"])
    with pytest.raises(ValueError, match=r"bad.tsv:2: 3 tab-separated fields, expected source<TAB>target"):
        read_pairs(tabs)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="holds no pairs"):
        read_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="expected a .jsonl, .json, .tsv file"):
        read_pairs(write_lines(tmp_path / "pairs.csv", ["a,b"]))


@pytest.fixture
def unilm(files):
    """A synthetic UniLMv2 directory (pytorch_model.bin, config.json, vocab.txt) and a good data file."""
    config = json.loads((files / "config.json").read_text())
    (files / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0}))
    torch.save(synthetic_state(True), files / "pytorch_model.bin")
    words = "the , . and of to a in was her it she not be he".split()
    write_lines(files / "train.jsonl", [json.dumps({"src": " ".join(words[i:i + 6]),
                                                    "tgt": " ".join(words[i:i + 1 + i % 3])}) for i in range(10)])
    return files


def cli(unilm, *extra):
    return ["seq2seq", "--pretrained", str(unilm), "--data", str(unilm / "train.jsonl"), "--preset", "smoke",
            "--steps", "2", "--batch-size", "4", "--max-source-length", "16", "--device", "cpu", "--threads", "1",
            *(extra if "--max-target-length" in extra else ["--max-target-length", "8", *extra])]


def snapshot(*folders):
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_input_is_one_line_and_loses_nothing_fine_tuned(unilm, tmp_path):
    saved, run = tmp_path / "model", tmp_path / "run"
    main(cli(unilm, "--save", str(saved), "--out-dir", str(run), "--save-every", "1"))
    before = snapshot(saved, run)
    assert (saved / "model.safetensors").is_file() and (run / "checkpoint.pt").is_file()
    bad = write_lines(tmp_path / "bad.jsonl", ['{"src": "the she"}'])
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"src": "caf\xe9", "tgt": "the"}\n')
    empty = write_lines(tmp_path / "empty.jsonl", ['{"src": "the", "tgt": "she"}', ""])
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "vocab.txt"):
        (broken / name).write_bytes((unilm / name).read_bytes())
    cases = [(["--data", str(bad)], "bad.jsonl:1: no 'tgt' key"),
             (["--data", str(latin)], "latin.jsonl:1: byte 0xe9 is not UTF-8"),
             (["--data", str(empty)], "empty.jsonl:2: an empty line"),
             (["--pretrained", str(broken)], "holds no pytorch_model.bin, the UniLMv2 weights: download "
                                             "https://unilm.blob.core.windows.net/ckpt/unilm2-base-uncased.bin"),
             (["--validation", str(bad)], "bad.jsonl:1: no 'tgt' key")]
    for args, message in cases:
        with pytest.raises(SystemExit) as err:
            main(cli(unilm, "--save", str(saved), "--out-dir", str(run), "--overwrite", *args))
        text = str(err.value)
        assert text.startswith("python -m pmlm.finetune seq2seq: error: ") and message in text, text
        assert "\n" not in text
        assert snapshot(saved, run) == before  # the model and the run fine-tuned before are untouched
    with pytest.raises(SystemExit) as err:  # refused with the other settings, before any data is read
        main(cli(unilm, "--length-penalty", "nan", "--data", str(bad)))
    assert str(err.value) == "python -m pmlm.finetune seq2seq: error: --length-penalty must be a finite number, got nan"


def test_a_target_longer_than_the_limit_is_cut_as_s2s_ft_and_said(unilm, capsys):
    metrics = main(cli(unilm, "--max-target-length", "3"))
    err = capsys.readouterr().err
    assert "3 of 10 training targets were longer than --max-target-length 3" in err  # 3 words + [EOS] > 3
    assert "cut to fit, as s2s-ft cuts them" in err
    assert metrics["cut_train_targets"] == 3 and metrics["n_train"] == 10 and metrics["steps"] == 2
