"""The shipped reference model and its AE-only twin: they load, fit the size limit, re-evaluate a fixed
validation sample to the numbers recorded when they were exported (scripts/reference_model.py
export [--twin]), and the twin differs from the reference in its objective alone."""

import json

import pytest

import pmlm
from pmlm.data import prepare_corpus, unigram_log_probs
from pmlm.pretrained import REFERENCE, REFERENCE_AE, CHECKPOINTS_DIR, reference_dir, training_info
from pmlm.train.evaluation import score_examples


def test_the_shipped_checkpoints_fit_the_repository_limit():
    size = sum(p.stat().st_size for p in CHECKPOINTS_DIR.rglob("*") if p.is_file())
    assert size < 12e6, f"the shipped checkpoints are {size / 1e6:.1f} MB; the repository allows 12 MB in all"


def test_the_twin_differs_from_the_reference_in_its_objective_only():
    ref, twin = training_info(reference_dir(REFERENCE)), training_info(reference_dir(REFERENCE_AE))
    assert ref["train_config"]["objective"] == "ae+par" and twin["train_config"]["objective"] == "ae"
    assert twin["steps"] == ref["steps"] and twin["seed"] == ref["seed"] and twin["data"] == ref["data"]
    for key in ("model", "model_overrides", "max_length", "batch_size", "lr", "mask_ratio", "extra_text",
                "val_fraction", "rel_pos", "factorization"):
        assert twin["train_config"][key] == ref["train_config"][key], key
    assert ((reference_dir(REFERENCE) / "tokenizer.json").read_text()
            == (reference_dir(REFERENCE_AE) / "tokenizer.json").read_text())
    assert ((reference_dir(REFERENCE) / "config.json").read_text()
            == (reference_dir(REFERENCE_AE) / "config.json").read_text())


@pytest.mark.parametrize("name", [REFERENCE, REFERENCE_AE])
def test_reference_model_reproduces_its_recorded_validation_numbers(name):
    model, tok = pmlm.load_reference(name)
    directory = reference_dir(name)
    recorded = json.loads((directory / "evaluation.json").read_text())
    cfg = training_info(directory)["train_config"]
    corpus = prepare_corpus(cfg["dataset"], val_fraction=cfg["val_fraction"], seed=cfg["seed"],
                            max_length=cfg["max_length"], tokenizer=tok, extra_text=cfg.get("extra_text"))
    sample = recorded["sample"]
    got = score_examples(model, tok, corpus.validation.examples[:sample["examples"]],
                         unigram=unigram_log_probs(corpus))
    # float arithmetic may differ between machines and thread counts: bits per character to 1e-3, and
    # accuracy to a few flipped guesses of the sample's masked tokens
    for key in ("val_ae_m_bpc", "val_par_m_bpc", "unigram_m_bpc"):
        assert got[key] == pytest.approx(sample[key], abs=1e-3), key
    for key in ("val_ae_m_acc", "val_par_m_acc", "unigram_m_acc"):
        assert got[key] == pytest.approx(sample[key], abs=3 / got["val_m_tokens"]), key
    assert got["val_m_word_tokens"] == sample["val_m_word_tokens"]
    for key in ("val_ae_m_word_acc", "val_par_m_word_acc", "unigram_m_word_acc"):
        assert got[key] == pytest.approx(sample[key], abs=3 / got["val_m_word_tokens"]), key
    # the model is past the plateau: several times the unigram baseline on the same tokens
    assert got["val_ae_m_acc"] > 2 * got["unigram_m_acc"]
    if name == REFERENCE:
        assert got["val_par_m_acc"] > 2 * got["unigram_m_acc"]
