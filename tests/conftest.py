"""Shared fixtures: a few real sentences with a word vocabulary, a collator, random models."""

import pytest
import torch

from sentences import SENTENCES, encode, word_vocab

import pmlm


@pytest.fixture(scope="session")
def vocab():
    return word_vocab()


@pytest.fixture(scope="session")
def real_ids(vocab):
    return [encode(s, vocab) for s in SENTENCES]


@pytest.fixture
def collator(vocab):
    return pmlm.PMLMCollator(mask_id=vocab["[MASK]"], pseudo_id=vocab["[P]"], pad_id=vocab["[PAD]"],
                             vocab_size=len(vocab), eos_id=vocab["[EOS]"],
                             special_ids=[vocab[s] for s in ("[PAD]", "[UNK]", "[SOS]", "[EOS]")],
                             generator=torch.Generator().manual_seed(0))


@pytest.fixture
def tiny_model(vocab):
    torch.manual_seed(0)
    config = pmlm.PMLMConfig(vocab_size=len(vocab), hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_positions=64, dropout=0.0, attention_dropout=0.0,
                             initializer_range=0.3)  # large weights: any real dependence shows
    return pmlm.PMLMModel(config).eval()


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory):
    """One tokenizer for the training tests' runs (WordPiece training is not bit-deterministic, and
    no run then trains its own); a module may define its own for another size."""
    from pmlm.data import prepare_corpus
    from pmlm.tokenizer import save_tokenizer

    corpus = prepare_corpus(None, max_documents=12, vocab_size=1000, max_length=48)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    save_tokenizer(corpus.tokenizer, path)
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run much faster on one thread when the CPU is shared (no OpenMP spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

