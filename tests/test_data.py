"""pmlm.data: loading through `datasets`, the split by document, and the [SOS] S1 [EOS] S2 [EOS] packing."""

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmlm.data import (contiguous_chunks, load_documents, pack_document, pack_documents,
                       prepare_corpus, split_documents, unigram_baseline)
from pmlm.tokenizer import special_ids, train_tokenizer

SOS, EOS = 2, 3


@pytest.fixture(scope="module")
def austen_docs():
    docs, desc = load_documents()  # the bundled corpus, through datasets
    return docs


@pytest.fixture(scope="module")
def small_tok(austen_docs):
    return train_tokenizer((p for d in austen_docs[:30] for p in d), vocab_size=2000)


# ------------------------------------------------------------------------------------- loading

def test_bundled_corpus_loads_as_chapters(austen_docs):
    from pmlm.corpora import austen_paragraphs

    rows = list(austen_paragraphs())
    assert sum(len(d) for d in austen_docs) == sum(1 for r in rows if str(r["text"]).strip())
    chapters = {(r["book"], r["chapter"]) for r in rows}
    assert len(austen_docs) == len(chapters)  # one document per chapter, contiguous rows
    assert any("truth universally acknowledged" in p for d in austen_docs for p in d)


def test_local_text_files_are_one_document_each(tmp_path, austen_docs):
    for i, doc in enumerate(austen_docs[:3]):
        (tmp_path / f"chapter{i}.txt").write_text("\n\n".join(doc) + "\n")
    docs, desc = load_documents(str(tmp_path))
    assert len(docs) == 3 and "3 local file" in desc
    assert docs == [[" ".join(p.split()) for p in d] for d in austen_docs[:3]]


def test_jsonl_gz_with_text_and_doc_columns(tmp_path, austen_docs):
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, doc in enumerate(austen_docs[:4]):
            for p in doc:
                f.write(json.dumps({"body": p, "doc": f"d{i}"}) + "\n")
    docs, _ = load_documents(str(path), text_column="body", doc_column="doc")
    assert [len(d) for d in docs] == [len(d) for d in austen_docs[:4]]
    with pytest.raises(ValueError, match="no column 'text'.*body"):
        load_documents(str(path))


def test_tsv_rows_without_documents_become_contiguous_chunks(tmp_path, austen_docs):
    paragraphs = [p for d in austen_docs[:6] for p in d]
    path = tmp_path / "rows.tsv"
    path.write_text("text\n" + "".join(p.replace("\t", " ").replace('"', "'") + "\n" for p in paragraphs))
    docs, _ = load_documents(str(path))
    assert [p for d in docs for p in d] == [" ".join(p.replace('"', "'").split()) for p in paragraphs]
    assert len(docs) > 1  # chunks of about CHUNK_CHARS characters


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.txt", "no such file"),
    (lambda d: d / "nothing-*.txt", "no file matches"),
])
def test_missing_files_fail_clearly(tmp_path, make, match):
    with pytest.raises(FileNotFoundError, match=match):
        load_documents(str(make(tmp_path)))


def test_empty_and_blank_files_fail_clearly(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_documents(str(empty))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n")
    with pytest.raises(ValueError, match="no text"):
        load_documents(str(blank))


def test_text_shorter_than_one_example_fails_clearly(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("It is a truth universally acknowledged.\n")
    with pytest.raises(ValueError, match="shorter than one example"):
        prepare_corpus(str(path), vocab_size=200, max_length=64)


# ----------------------------------------------------------------------------------- splitting

def test_split_keeps_documents_whole_and_disjoint(austen_docs):
    train, val = split_documents(austen_docs, val_fraction=0.05, seed=0)
    assert len(train) + len(val) == len(austen_docs)
    as_keys = lambda ds: {tuple(d) for d in ds}  # noqa: E731
    assert as_keys(train) | as_keys(val) == as_keys(austen_docs)
    assert not {p for d in train for p in d} & {p for d in val for p in d} - {p for d in train for p in d}
    val_paragraphs = {p for d in val for p in d}
    shared = val_paragraphs & {p for d in train for p in d}
    assert all(len(p) < 40 for p in shared)  # only short repeated lines ("Chapter 1" ...) can recur
    share = sum(len(p) for d in val for p in d) / sum(len(p) for d in austen_docs for p in d)
    assert 0.05 <= share < 0.08


def test_split_is_seeded(austen_docs):
    assert split_documents(austen_docs, 0.05, seed=1) == split_documents(austen_docs, 0.05, seed=1)
    assert split_documents(austen_docs, 0.05, seed=1)[1] != split_documents(austen_docs, 0.05, seed=2)[1]


def test_a_single_document_is_split_into_contiguous_chunks(austen_docs):
    doc = [p for d in austen_docs[:5] for p in d]
    train, val = split_documents([doc], val_fraction=0.1, seed=0)
    assert train and val
    joined = "\n".join(doc)
    for chunk in val:  # each held-out piece is a contiguous run of the original paragraphs
        assert "\n".join(chunk) in joined
    assert sorted(p for d in train + val for p in d) == sorted(doc)


def test_one_long_paragraph_is_split_by_words():
    words = ("It is a truth universally acknowledged that a single man in possession of a good "
             "fortune must be in want of a wife").split()
    chunks = contiguous_chunks([" ".join(words)], 4)
    assert " ".join(c[0] for c in chunks).split() == words and len(chunks) == 4


# ------------------------------------------------------------------------------------- packing

def test_the_docstring_walk_through():
    a, b, dot, c, d, e, f, g, h = range(10, 19)
    ids = [a, b, dot, c, d, e, dot, f, g, h]
    out = pack_document([ids], max_length=10, sos_id=SOS, eos_id=EOS, ends={dot})
    assert out == [[SOS, a, b, dot, EOS, c, d, e, dot, EOS]]


@settings(max_examples=60, deadline=None)
@given(paragraphs=st.lists(st.lists(st.integers(6, 40), min_size=1, max_size=60), min_size=1, max_size=6),
       max_length=st.integers(5, 40))
def test_packing_is_contiguous_bounded_and_well_formed(paragraphs, max_length):
    ends, continuations = {6, 7}, {30, 31, 32}
    out = pack_document(paragraphs, max_length=max_length, sos_id=SOS, eos_id=EOS, ends=ends,
                        continuations=continuations, min_tokens=3)
    text = [t for p in paragraphs for t in p]
    rebuilt = []
    for ex in out:
        assert len(ex) <= max_length
        assert ex[0] == SOS and ex[-1] == EOS and ex.count(EOS) == 2 and ex.count(SOS) == 1
        cut = ex.index(EOS)
        s1, s2 = ex[1:cut], ex[cut + 1:-1]
        assert s1 and s2  # both segments hold text
        rebuilt += s1 + s2
    # S1 S2 of consecutive examples re-read the document in order; only a short tail is dropped
    assert rebuilt == text[:len(rebuilt)]
    assert len(text) - len(rebuilt) < 3


def test_real_examples_split_at_sentence_ends(austen_docs, small_tok):
    data = pack_documents(austen_docs[:20], small_tok, max_length=128)
    ids = special_ids(small_tok)
    ends = {small_tok.token_to_id(t) for t in ".!?\"'"}
    s1_ends = [ex[ex.index(ids["eos"]) - 1] for ex in data.examples]
    assert sum(t in ends for t in s1_ends) / len(s1_ends) > 0.8
    assert all(len(ex) <= 128 for ex in data.examples)
    assert sum(len(ex) for ex in data.examples) / len(data.examples) > 100  # packed close to full


def test_prepare_corpus_trains_the_tokenizer_on_the_training_split_only(tmp_path, austen_docs,
                                                                          monkeypatch):
    import pmlm.data

    seen = []

    def spy(texts, vocab_size):
        texts = list(texts)
        seen.extend(texts)
        return train_tokenizer(texts, vocab_size)

    monkeypatch.setattr(pmlm.data.corpus, "train_tokenizer", spy)
    for i, doc in enumerate(austen_docs[:8]):
        (tmp_path / f"c{i}.txt").write_text("\n\n".join(doc))
    corpus = prepare_corpus(str(tmp_path), val_fraction=0.2, vocab_size=3000, max_length=64)
    assert seen == [p for d in corpus.train_documents for p in d]  # never a validation paragraph
    assert corpus.tokenizer.get_vocab_size() <= 3000
    assert len(corpus.train) and len(corpus.validation)
    base = unigram_baseline(corpus)
    assert 0.0 < base["unigram_val_acc"] < 0.15 and base["unigram_val_loss"] > 4.0


def test_task_training_text_holds_no_validation_or_test_sentence():
    from pmlm.corpora.splits import bible_splits, sentiment_splits
    from pmlm.data import task_training_documents

    text = {p for d in task_training_documents() for p in d}
    sentiment, verses = sentiment_splits(), bible_splits()
    for split in ("validation", "test"):
        held_sentences = {r["text"] for r in sentiment[split]}
        held_verses = {r["source"] for r in verses[split]} | {r["target"] for r in verses[split]}
        train_text = ({r["text"] for r in sentiment["train"]} | {r["source"] for r in verses["train"]}
                      | {r["target"] for r in verses["train"]})
        assert not (text & (held_sentences - train_text))  # a sentence in two splits is in train too
        assert not (text & (held_verses - train_text))
    assert {r["text"] for r in sentiment["train"]} <= text


def test_extra_text_goes_to_training_only():
    from pmlm.data import prepare_corpus

    plain = prepare_corpus(None, max_documents=10, vocab_size=500, max_length=48)
    more = prepare_corpus(None, max_documents=10, max_length=48, tokenizer=plain.tokenizer, extra_text="tasks")
    assert more.validation.examples == plain.validation.examples
    assert len(more.train) > 10 * len(plain.train) and "training only" in more.description
    with pytest.raises(ValueError, match="extra_text"):
        prepare_corpus(None, max_documents=10, extra_text="wikipedia")
