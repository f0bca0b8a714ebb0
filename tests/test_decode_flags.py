"""The decoding flags (pmlm.finetune.decode_flags): each sets the DecodeConfig field it names, the
two names of a flag give one behaviour, the same flags serve predict and finetune, and a flag
combination that would do nothing, or something else than asked, is a clear error."""

import argparse

import pytest
from tokenizers import Tokenizer

from pmlm.finetune.decode_flags import add_decode_arguments, decode_config, decode_options, ignore_word_ids
from pmlm.finetune.decoding import DecodeConfig
from pmlm.pretrained import reference_dir


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_file(str(reference_dir() / "tokenizer.json"))


def parse(*argv: str, **kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_decode_arguments(p, **kw)
    return p.parse_args(list(argv))


def options(*argv: str, tok=None) -> dict:
    return decode_options(parse(*argv), tok)


def test_each_flag_sets_its_field():
    assert options() == {}  # nothing given: the saved or preset settings stay
    assert options("--beam", "5") == {"beam_size": 5}
    assert options("--greedy") == {"beam_size": 1}
    assert options("--length-penalty", "0.9") == {"length_penalty": 0.9}
    assert options("--min-length", "2") == {"min_length": 2}
    assert options("--max-target-length", "48") == {"max_length": 48}
    assert options("--batch-size", "8") == {"batch_size": 8}
    assert options("--forbid-duplicate-ngrams") == {"no_repeat_ngram_size": 3}  # s2s-ft's --ngram_size default
    assert options("--forbid-duplicate-ngrams", "--ngram-size", "2") == {"no_repeat_ngram_size": 2}
    assert options("--forbid-duplicate-ngrams", "0") == {"no_repeat_ngram_size": 0}  # off


@pytest.mark.parametrize("one, other", [
    (["--beam", "4"], ["--beam-size", "4"]),
    (["--max-length", "20"], ["--max-target-length", "20"]),
    (["--no-repeat-ngram", "3"], ["--forbid-duplicate-ngrams"]),
    (["--no-repeat-ngram", "2"], ["--forbid-duplicate-ngrams", "--ngram-size", "2"]),
    (["--no-repeat-ngram", "4"], ["--forbid-duplicate-ngrams", "4"]),
    (["--no-repeat-ngram", "0"], ["--forbid-duplicate-ngrams", "0"]),
])
def test_both_names_of_a_flag_behave_alike(one, other):
    assert options(*one) == options(*other)


def test_ignored_words_become_token_ids(tok):
    dot, comma = tok.token_to_id("."), tok.token_to_id(",")
    assert ignore_word_ids(tok, ".") == (dot,)
    assert ignore_word_ids(tok, ".|,") == (dot, comma)
    assert ignore_word_ids(tok, "[eos]") == (tok.token_to_id("[EOS]"),)  # s2s-ft upper-cases a [NAME]
    got = options("--forbid-duplicate-ngrams", "--forbid-ignore-word", ".", tok=tok)
    assert got == {"no_repeat_ngram_size": 3, "forbid_ignore_ids": (dot,)}
    assert "forbid_ignore_ids" not in options("--forbid-ignore-word", ".")  # no tokenizer yet: later
    base = DecodeConfig(no_repeat_ngram_size=3)  # a model saved with trigram blocking
    assert decode_config(base, parse("--forbid-ignore-word", "."), tok).forbid_ignore_ids == (dot,)


@pytest.mark.parametrize("argv, message", [
    (["--ngram-size", "2"], "--ngram-size sets the n of --forbid-duplicate-ngrams: add that flag"),
    (["--forbid-duplicate-ngrams", "2", "--ngram-size", "3"], "disagree"),
    (["--forbid-duplicate-ngrams", "-2"], "at least 1"),
    (["--no-repeat-ngram", "-1"], r"--forbid-duplicate-ngrams \(--no-repeat-ngram\) takes"),  # -1 was once the flag alone
    (["--length-penalty", "nan"], "--length-penalty must be a finite number, got nan"),
    (["--length-penalty", "inf"], "--length-penalty must be a finite number"),
    (["--forbid-duplicate-ngrams", "--ngram-size", "0"], "--ngram-size must be at least 1"),
    (["--forbid-duplicate-ngrams", "--forbid-ignore-word", "qqqzzz"], "'qqqzzz' is not a token of the model"),
    (["--forbid-duplicate-ngrams", "--forbid-ignore-word", ".||,"], "an empty word"),
    (["--forbid-ignore-word", "."], "--forbid-ignore-word acts only on n-gram blocking, which is off"),
    (["--beam", "0"], "beam_size"),
    (["--max-length", "0"], "max_length must be at least 1"),
])
def test_bad_flag_combinations_are_one_clear_error(tok, argv, message):
    with pytest.raises(ValueError, match=message if "\\(" in message else message.replace("(", r"\(")):
        decode_config(DecodeConfig(), parse(*argv), tok)


def test_greedy_and_beam_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--greedy", "--beam", "3")
    assert "not allowed with argument" in capsys.readouterr().err


def test_finetune_seq2seq_takes_the_same_flags_and_keeps_its_batch_size():
    from pmlm.finetune.__main__ import parse_args

    one = parse_args(["seq2seq", "--no-repeat-ngram", "3", "--beam", "5", "--batch-size", "16"])
    other = parse_args(["seq2seq", "--forbid-duplicate-ngrams", "--beam-size", "5", "--batch-size", "16"])
    assert decode_options(one) == decode_options(other) == {"beam_size": 5, "no_repeat_ngram_size": 3}
    assert one.batch_size == 16  # fine-tuning's batch, not the decoder's
    cfg = decode_config(DecodeConfig(beam_size=4, length_penalty=1.0), parse_args(
        ["seq2seq", "--min-length", "2", "--length-penalty", "0.6"]))
    assert (cfg.beam_size, cfg.min_length, cfg.length_penalty) == (4, 2, 0.6)  # the others stay the preset's


def test_saved_ignore_ids_survive_json():
    """task.json stores the config as JSON: a list comes back, and becomes the tuple again."""
    import json
    from dataclasses import asdict

    cfg = DecodeConfig(no_repeat_ngram_size=3, forbid_ignore_ids=(19, 17))
    assert DecodeConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg


def test_finetune_seq2seq_turns_the_ignored_words_into_ids_of_its_tokenizer(monkeypatch):
    """The words become ids once the fine-tuning tokenizer is loaded, and the test decoding gets them."""
    import pmlm.finetune.__main__ as cli

    seen = {}
    monkeypatch.setattr(cli, "finetune_seq2seq", lambda model, tok, splits, cfg, **kw: seen.update(
        decode=cfg.decode, dot=tok.token_to_id(".")) or {})
    cli.main(["seq2seq", "--preset", "smoke", "--pretrained", "reference", "--forbid-duplicate-ngrams",
              "--forbid-ignore-word", ".", "--beam", "2"])
    assert seen["decode"].forbid_ignore_ids == (seen["dot"],) and seen["decode"].no_repeat_ngram_size == 3
    assert seen["decode"].beam_size == 2
