"""Classification fine-tuning and the task data: the [SOS] classifier, fixed splits, clear errors."""

import random

import pytest
import torch

import pmlm
from pmlm.finetune.classify import ClassifyConfig, PMLMClassifier, encode_sentences, finetune_classify
from pmlm.finetune.common import check_vocab, load_backbone, pad_ids
from pmlm.finetune.data import bible_splits, hash_split, sentiment_splits, subsample
from pmlm.tokenizer import train_tokenizer

GOOD = "a warm funny moving delight wonderful".split()
BAD = "a dull tedious boring mess awful".split()
FILLER = "the film story cast plot director scenes minutes".split()


def toy_reviews(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["fresh", "rotten"])
        words = rng.sample(FILLER, 4) + [rng.choice(GOOD if label == "fresh" else BAD)]
        rng.shuffle(words)
        rows.append({"label": label, "text": " ".join(words) + f" {i}"})
    return rows


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([r["text"] for r in toy_reviews(300)], vocab_size=300)


def tiny(tok, **kw):
    torch.manual_seed(0)
    return pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=2,
                                          num_heads=2, intermediate_size=64, max_positions=32, **kw))


def test_classifier_reads_the_sos_state_and_ignores_padding(tok):
    clf = PMLMClassifier(tiny(tok, dropout=0.0, attention_dropout=0.0), num_classes=2).eval()
    seqs = encode_sentences(tok, ["a dull film", "the story of a warm and funny cast of a film"], 64, 32)
    alone = clf(*pad_ids(seqs[:1], 0))
    batched = clf(*pad_ids(seqs, 0))
    torch.testing.assert_close(batched[:1], alone)  # padding changes nothing
    assert batched.shape == (2, 2)
    seen = {}
    clf.head.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    input_ids, valid = pad_ids(seqs, 0)
    hidden = clf.backbone.encode(input_ids, torch.arange(input_ids.shape[1]).expand_as(input_ids),
                                 pmlm.pmlm_attention_mask(torch.zeros_like(input_ids), valid))
    clf(input_ids, valid)
    torch.testing.assert_close(seen["x"], hidden[:, 0])  # the head gets the top [SOS] state


def test_long_texts_are_truncated_to_the_positions(tok):
    seqs = encode_sentences(tok, [" ".join(FILLER * 20)], max_length=64, max_positions=32)
    assert len(seqs[0]) == 32 and seqs[0][-1] == pmlm.tokenizer.special_ids(tok)["eos"]


def test_finetune_classify_learns_a_separable_toy_task(tok):
    rows = toy_reviews(600, seed=1)
    splits = sentiment_splits(rows)
    cfg = ClassifyConfig(lr=3e-3, batch_size=16, epochs=4, max_length=16, seed=0)
    logs = []
    out = finetune_classify(tiny(tok, dropout=0.0), tok, splits, cfg, log=logs.append)
    assert out["test_acc"] > 0.8, (out, logs)  # chance is ~0.5
    assert out["n_test"] == len(splits["test"]) and len(logs) == 5  # an epoch a line, then test


def test_fixed_splits_are_stable_and_disjoint():
    rows = toy_reviews(2000)
    a, b = sentiment_splits(rows), sentiment_splits(list(reversed(rows)))
    for name in ("train", "validation", "test"):
        assert sorted(r["text"] for r in a[name]) == sorted(r["text"] for r in b[name])  # order-free
    assert 0.07 < len(a["test"]) / 2000 < 0.13 and 0.07 < len(a["validation"]) / 2000 < 0.13
    texts = [set(r["text"] for r in a[s]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert hash_split("same sentence") == hash_split("same sentence")
    assert subsample(rows, 10, seed=3) == subsample(rows, 10, seed=3) != subsample(rows, 10, seed=4)


def test_unknown_label_is_a_clear_error(tok):
    rows = toy_reviews(50) + [{"label": "plot", "text": "a man walks into a bar"}]
    with pytest.raises(ValueError, match=r"row 50 has label 'plot'.*not one of the classes"):
        sentiment_splits(rows)
    with pytest.raises(ValueError, match="no 'label' column"):
        sentiment_splits([{"text": "x"}])
    splits = {"train": [{"text": "a dull film", "label": 5}], "test": [{"text": "a warm film", "label": 0}]}
    with pytest.raises(ValueError, match="outside the 2 classes"):
        finetune_classify(tiny(tok), tok, splits, ClassifyConfig(), num_classes=2)


def test_checkpoint_with_another_vocabulary_is_refused(tok):
    other = train_tokenizer(["completely different words here"] * 5, vocab_size=100)
    assert other.get_vocab_size() != tok.get_vocab_size()
    with pytest.raises(ValueError, match="tokenizer has .* entries but the checkpoint's vocabulary has"):
        check_vocab(tiny(tok), other)
    with pytest.raises(ValueError, match="tokenizer has"):
        finetune_classify(tiny(tok), other, sentiment_splits(toy_reviews(100)), ClassifyConfig())


def test_control_backbone_from_scratch():
    model, tok = load_backbone(None, texts=[r["text"] for r in toy_reviews(200)], size="tiny", vocab_size=200)
    assert model.config.vocab_size == tok.get_vocab_size() and model.config.hidden_size == 128
    with pytest.raises(ValueError, match="training texts"):
        load_backbone(None)


def test_bible_split_holds_out_whole_books():
    rows = [{"book": b, "chapter": 1, "verse": v, "kjv": f"{b} saith {v}", "web": f"{b} says {v}"}
            for b in ("Genesis", "Ruth", "Esther", "Mark") for v in range(1, 4)]
    rows.append({"book": "Genesis", "chapter": 2, "verse": 1, "kjv": "", "web": "missing in KJV"})
    splits = bible_splits(rows, test_books=("Ruth", "Mark"), validation_books=("Esther",))
    assert {r["ref"].split()[0] for r in splits["test"]} == {"Ruth", "Mark"}
    assert {r["ref"].split()[0] for r in splits["validation"]} == {"Esther"}
    assert len(splits["train"]) == 3  # the empty verse is skipped
    with pytest.raises(ValueError, match="not in the corpus"):
        bible_splits(rows, test_books=("Ruth", "Tobit"), validation_books=())


def test_command_line_reads_a_labelled_file_and_refuses_unknown_classes(tmp_path, capsys):
    from pmlm.finetune.__main__ import main

    path = tmp_path / "reviews.tsv"
    rows = toy_reviews(200)
    path.write_text("label\ttext\n" + "".join(f"{r['label']}\t{r['text']}\n" for r in rows))
    metrics = main(["classify", "--data", str(path), "--preset", "smoke", "--max-steps", "3",
                    "--size", "tiny", "--out", str(tmp_path / "m.json"), "--device", "cpu"])
    assert metrics["steps"] == 3 and (tmp_path / "m.json").is_file()
    assert '"test_acc"' in capsys.readouterr().out
    with open(path, "a") as f:
        f.write("plot\ta man walks into a bar\n")
    with pytest.raises(SystemExit, match="error: row 200 has label 'plot'"):  # one line, no traceback
        main(["classify", "--data", str(path), "--preset", "smoke", "--max-steps", "1"])


def test_mean_pooling_reads_the_mean_of_the_real_tokens(tok):
    clf = PMLMClassifier(tiny(tok, dropout=0.0, attention_dropout=0.0), num_classes=2, pooling="mean").eval()
    seqs = encode_sentences(tok, ["a dull film", "the story of a warm and funny cast of a film"], 64, 32)
    input_ids, valid = pad_ids(seqs, 0)
    seen = {}
    clf.head.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    hidden = clf.backbone.encode(input_ids, torch.arange(input_ids.shape[1]).expand_as(input_ids),
                                 pmlm.pmlm_attention_mask(torch.zeros_like(input_ids), valid))
    clf(input_ids, valid)
    want = torch.stack([hidden[b, valid[b]].mean(0) for b in range(2)])  # padding left out
    torch.testing.assert_close(seen["x"], want)
    with pytest.raises(ValueError, match="pooling"):
        PMLMClassifier(tiny(tok), num_classes=2, pooling="max")


def test_per_epoch_validation_and_the_kept_epoch(tok):
    splits = sentiment_splits(toy_reviews(300, seed=2))
    out = finetune_classify(tiny(tok, dropout=0.0), tok, splits,
                            ClassifyConfig(lr=3e-3, batch_size=16, epochs=3, max_length=16), log=lambda _: None)
    assert len(out["val_acc_by_epoch"]) == 3
    assert out["val_acc"] == max(out["val_acc_by_epoch"])
    assert out["val_acc_by_epoch"][out["best_epoch"] - 1] == out["val_acc"]
