"""save_pretrained / from_pretrained / load_model: the round trip (values, tied weights stored once,
float16 storage) and the clear error of each way a model directory can be wrong."""

import json

import pytest
import torch
from safetensors.torch import load_file

import pmlm
from pmlm.data import prepare_corpus
from pmlm.model_files import MissingModelFileError
from pmlm.tokenizer import make_collator


@pytest.fixture(scope="module")
def corpus():
    return prepare_corpus(None, max_documents=6, vocab_size=300, max_length=32)


@pytest.fixture(scope="module")
def model(corpus):
    torch.manual_seed(0)
    config = pmlm.PMLMConfig(vocab_size=corpus.tokenizer.get_vocab_size(), hidden_size=32, num_layers=2,
                             num_heads=2, intermediate_size=64, max_positions=32, norm="pre")
    return pmlm.PMLMModel(config).eval()


@pytest.fixture(scope="module")
def batch(corpus):
    collator = make_collator(corpus.tokenizer, max_length=32, generator=torch.Generator().manual_seed(0))
    return collator(corpus.validation.examples[:4])


def logits(model, batch):
    with torch.no_grad():
        return model(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])


def test_round_trip_gives_the_same_logits_and_stores_the_tied_matrix_once(tmp_path, model, corpus, batch):
    out = model.save_pretrained(tmp_path / "m", tokenizer=corpus.tokenizer, training={"seed": 0})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                     "training.json"]
    stored = load_file(out / "model.safetensors")
    assert "head.embedding.weight" not in stored and "token_embedding.weight" in stored
    again, tok = pmlm.load_model(out)
    assert not again.training and again.config == model.config
    assert again.head.embedding.weight.data_ptr() == again.token_embedding.weight.data_ptr()  # still tied
    assert torch.equal(logits(again, batch), logits(model, batch))
    assert tok.to_str() == corpus.tokenizer.to_str()
    assert pmlm.pretrained.training_info(out) == {"seed": 0}
    assert json.loads((out / "config.json").read_text())["model_type"] == "pmlm"


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path, model, batch):
    full = model.save_pretrained(tmp_path / "f32") / "model.safetensors"
    half = model.save_pretrained(tmp_path / "f16", dtype=torch.float16) / "model.safetensors"
    assert half.stat().st_size < 0.55 * full.stat().st_size
    again = pmlm.PMLMModel.from_pretrained(tmp_path / "f16")
    assert again.token_embedding.weight.dtype == torch.float32
    assert torch.allclose(logits(again, batch), logits(model, batch), atol=5e-2)


def test_bad_directories_give_clear_errors(tmp_path, model, corpus):
    good = model.save_pretrained(tmp_path / "good", tokenizer=corpus.tokenizer)
    with pytest.raises(MissingModelFileError, match="not a directory"):
        pmlm.load_model(tmp_path / "nowhere")

    def broken(name, edit):
        d = tmp_path / name
        model.save_pretrained(d, tokenizer=corpus.tokenizer)
        edit(d)
        return d

    cases = [
        (broken("no-config", lambda d: (d / "config.json").unlink()), "config.json is missing"),
        (broken("no-weights", lambda d: (d / "model.safetensors").unlink()), "holds no weights"),
        (broken("bad-json", lambda d: (d / "config.json").write_text("{ not json")), "not valid JSON"),
        (broken("garbage", lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 100)), "corrupt or truncated"),
        (broken("truncated", lambda d: (d / "model.safetensors").write_bytes(
            (good / "model.safetensors").read_bytes()[:1000])), "corrupt or truncated"),
        (broken("unknown-field", lambda d: (d / "config.json").write_text(json.dumps(
            {**json.loads((good / "config.json").read_text()), "colour": "red"}))), "unknown PMLMConfig fields"),
        (broken("other-size", lambda d: (d / "config.json").write_text(json.dumps(
            {**json.loads((good / "config.json").read_text()), "intermediate_size": 128}))),
         r"shapes that do not fit the config: layers\.0\.ffn\.0\.bias"),
        (broken("fewer-layers", lambda d: (d / "config.json").write_text(json.dumps(
            {**json.loads((good / "config.json").read_text()), "num_layers": 1}))), r"unexpected keys \['layers\.1"),
        (broken("no-tokenizer", lambda d: (d / "tokenizer.json").unlink()), "tokenizer.json is missing"),
    ]
    for directory, message in cases:
        with pytest.raises(ValueError, match=message):
            pmlm.load_model(directory)
    other = prepare_corpus(None, max_documents=6, vocab_size=200, max_length=32).tokenizer
    d = broken("other-vocab", lambda d: (d / "tokenizer.json").write_text(other.to_str()))
    with pytest.raises(ValueError, match="different models"):
        pmlm.load_model(d)
