"""The shipped reference model: it loads, fits the size limit, and re-evaluates a fixed validation
sample to the numbers recorded when it was exported (scripts/reference_model.py export)."""

import json

import pytest

import pmlm
from pmlm.data import prepare_corpus, unigram_log_probs
from pmlm.pretrained import reference_dir, training_info
from pmlm.train.evaluation import score_examples


def test_reference_model_reproduces_its_recorded_validation_numbers():
    model, tok = pmlm.load_reference()
    directory = reference_dir()
    size = sum(p.stat().st_size for p in directory.iterdir())
    assert size < 12e6, f"the shipped checkpoint is {size / 1e6:.1f} MB; the repository allows 12 MB in all"
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
    # the model is past the plateau: several times the unigram baseline on the same tokens
    assert got["val_par_m_acc"] > 2 * got["unigram_m_acc"]
