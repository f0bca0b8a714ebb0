"""pmlm.tokenizer: an uncased WordPiece with the PMLM special tokens, saved and reloaded."""

import pytest
import torch
from tokenizers import Tokenizer, models

from pmlm.tokenizer import (SPECIAL_TOKENS, canonical_vocabulary, load_tokenizer, make_collator,
                            save_tokenizer, special_ids, train_tokenizer)


@pytest.fixture(scope="module")
def paragraphs():
    from pmlm.corpora import austen_paragraphs

    rows = [r["text"] for r in austen_paragraphs()]
    return rows[:3000], rows[3000:3200]  # training text, held-out text


@pytest.fixture(scope="module")
def tok(paragraphs):
    return train_tokenizer(paragraphs[0], vocab_size=3000)


def test_special_tokens_have_fixed_ids(tok):
    assert special_ids(tok) == {"pad": 0, "unk": 1, "sos": 2, "eos": 3, "mask": 4, "pseudo": 5}
    assert [tok.id_to_token(i) for i in range(6)] == SPECIAL_TOKENS


def test_vocabulary_size_and_frequent_words(tok):
    assert 1000 < tok.get_vocab_size() <= 3000
    for word in ("the", "elizabeth", "she", "mr"):  # frequent words are single pieces
        assert tok.encode(word, add_special_tokens=False).tokens == [word]


def test_uncased_bert_pre_tokenization(tok):
    a = tok.encode("Mr. DARCY looked at Élizabeth!", add_special_tokens=False).tokens
    b = tok.encode("mr. darcy looked at elizabeth!", add_special_tokens=False).tokens
    assert a == b and a[:2] == ["mr", "."] and a[-1] == "!"  # lowercased, accents stripped, punctuation split


def test_encode_adds_sos_eos_and_segments(tok):
    single = tok.encode("It is a truth.")
    assert single.tokens[0] == "[SOS]" and single.tokens[-1] == "[EOS]"
    pair = tok.encode("It is a truth.", "She smiled.")
    assert pair.tokens.count("[EOS]") == 2
    first_eos = pair.tokens.index("[EOS]")
    assert set(pair.type_ids[:first_eos + 1]) == {0} and set(pair.type_ids[first_eos + 1:]) == {1}


def test_save_and_reload_round_trip(tmp_path, tok, paragraphs):
    save_tokenizer(tok, tmp_path / "tokenizer.json")
    assert not list(tmp_path.glob("*.tmp"))
    for again in (load_tokenizer(tmp_path / "tokenizer.json"), load_tokenizer(tmp_path)):
        assert again.get_vocab() == tok.get_vocab()
        for text in paragraphs[1][:50]:  # held-out text encodes identically
            assert again.encode(text).ids == tok.encode(text).ids
    unknown = tok.encode("\u6f22\u5b57", add_special_tokens=False).tokens
    assert set(unknown) == {"[UNK]"}


def test_collator_is_wired_to_the_special_ids(tok, paragraphs):
    ids = special_ids(tok)
    texts = paragraphs[1][:16]
    seqs = [tok.encode(t).ids[:64] for t in texts]
    collator = make_collator(tok, generator=torch.Generator().manual_seed(0))
    assert collator.vocab_size == tok.get_vocab_size()
    batch = collator(seqs)
    masked = batch["ae_labels"] != -100
    assert masked.any()
    specials = torch.tensor(sorted(ids.values()))
    assert not torch.isin(batch["ae_labels"][masked], specials).any()  # specials are never masked
    assert (batch["input_ids"][batch["par_labels"] != -100] == ids["pseudo"]).all()
    assert (batch["input_ids"][masked] == ids["mask"]).float().mean() > 0.6  # mostly [M] (80%)


@pytest.mark.parametrize("texts, vocab, match", [
    (["", "   "], 100, "empty"),
    (["It is a truth."], 4, "no room"),
])
def test_bad_training_input_fails_clearly(texts, vocab, match):
    with pytest.raises(ValueError, match=match):
        train_tokenizer(texts, vocab_size=vocab)


def test_bad_files_fail_clearly(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ValueError, match="corrupt"):
        load_tokenizer(tmp_path)
    plain = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    plain.save(str(tmp_path / "plain.json"))
    with pytest.raises(ValueError, match=r"no \[PAD\] token"):
        load_tokenizer(tmp_path / "plain.json")


def test_the_same_pieces_always_get_the_same_ids(tok):
    import random

    vocab = tok.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert sorted(vocab.values()) == list(range(len(vocab)))
    for seed in range(3):  # however the trainer numbered them, the canonical ids are the same
        pieces = list(vocab)
        random.Random(seed).shuffle(pieces)
        assert canonical_vocabulary({p: i for i, p in enumerate(pieces)}) == vocab
    assert canonical_vocabulary(vocab) == vocab


def test_renumbering_changes_no_segmentation(paragraphs, tok):
    import random

    pieces = list(tok.get_vocab())
    random.Random(0).shuffle(pieces)
    shuffled = Tokenizer.from_str(tok.to_str())
    shuffled.model = models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]",
                                      continuing_subword_prefix="##")
    for text in paragraphs[1][:100]:
        assert shuffled.encode(text).tokens == tok.encode(text).tokens
