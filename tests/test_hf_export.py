"""export_hf: transformers loads the directory offline (AutoModelForMaskedLM with trust_remote_code,
AutoTokenizer), gives pmlm's logits on the same input, runs the fill-mask pipeline, and the
directory loads back into pmlm. Skipped, with a message, where transformers is not installed."""

import os

import pytest
import torch

import pmlm
from pmlm.data import prepare_corpus
from pmlm.tokenizer import make_collator

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory: transformers must never try the network
transformers = pytest.importorskip("transformers", reason="transformers is an optional extra (pip install transformers)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    corpus = prepare_corpus(None, max_documents=6, vocab_size=300, max_length=32)
    torch.manual_seed(0)
    config = pmlm.PMLMConfig(vocab_size=corpus.tokenizer.get_vocab_size(), hidden_size=32, num_layers=2,
                             num_heads=2, intermediate_size=64, max_positions=64, initializer_range=0.2)
    model = pmlm.PMLMModel(config).eval()
    out = pmlm.export_hf(model, corpus.tokenizer, tmp_path_factory.mktemp("hf") / "pmlm-tiny")
    return model, corpus, out


def test_transformers_loads_it_and_gives_the_same_logits(exported):
    model, corpus, out = exported
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out)
    enc = tok(["it is a truth universally acknowledged", "she was"], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        ids, valid = enc["input_ids"], enc["attention_mask"].bool()
        mask = pmlm.pmlm_attention_mask(torch.zeros_like(ids), valid)
        ours = model(ids, torch.arange(ids.shape[1]).expand_as(ids), mask)
    assert torch.allclose(theirs[valid], ours[valid], atol=1e-5)
    # a pseudo-masked batch: the (B, L, L) mask, reused positions and segments go in as they are
    batch = make_collator(corpus.tokenizer, max_length=32, generator=torch.Generator().manual_seed(0))(
        corpus.validation.examples[:3])
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], token_type_ids=batch["segment_ids"]).logits
        ours = model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    assert torch.allclose(theirs[batch["valid"]], ours[batch["valid"]], atol=1e-5)


def test_a_pre_ln_model_exports_with_the_same_logits(exported, tmp_path):
    _, corpus, _ = exported
    torch.manual_seed(1)
    config = pmlm.PMLMConfig(vocab_size=corpus.tokenizer.get_vocab_size(), hidden_size=32, num_layers=2,
                             num_heads=2, intermediate_size=64, max_positions=64, norm="pre", initializer_range=0.2)
    model = pmlm.PMLMModel(config).eval()
    out = pmlm.export_hf(model, corpus.tokenizer, tmp_path / "pre")
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True).eval()
    ids = torch.tensor([corpus.validation.examples[0][:20]])
    with torch.no_grad():
        theirs = hf(input_ids=ids).logits
        ours = model(ids, torch.arange(20).unsqueeze(0), torch.ones(1, 20, 20, dtype=torch.bool))
    assert torch.allclose(theirs, ours, atol=1e-5)
    with pytest.raises(ValueError, match="load it with pmlm.import_hf"):
        pmlm.load_model(out)


def test_fill_mask_pipeline_and_the_way_back(exported):
    model, corpus, out = exported
    fill = transformers.pipeline("fill-mask", model=str(out), tokenizer=str(out), trust_remote_code=True)
    guesses = fill("it is a [MASK] universally acknowledged", top_k=3)
    assert len(guesses) == 3 and all(0 <= g["score"] <= 1 for g in guesses)
    back, tok = pmlm.import_hf(out)
    assert back.config == model.config and tok.to_str() == corpus.tokenizer.to_str()
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="not written by pmlm.export_hf"):
        pmlm.import_hf(pmlm.model_files.save_model_files(model, out.parent / "plain"))
