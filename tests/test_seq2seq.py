"""Sequence-to-sequence fine-tuning: the layout, its attention rules by perturbation, word drop, errors."""

import random

import pytest
import torch

import pmlm
from random_models import random_decoder_model
from pmlm.course.autograder.oracles import reference_attention_mask
from pmlm.collator import pad_and_mask
from pmlm.finetune.decoding import CachedStepper, generate
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq, seq2seq_example, seq2seq_loss
from pmlm.finetune.target import target_steps

IDS = {"pad": 0, "unk": 1, "sos": 2, "eos": 3, "mask": 4, "pseudo": 5}
V = 40
SRC, TGT = [10, 11, 12, 13], [20, 21, 22, 23, 24]


@pytest.fixture(scope="module")
def model():
    return random_decoder_model(V)


def pseudo_logits(model, source, target, **kw):
    """Logits (m, V) at the [P] of every target step, and the batch."""
    batch = pad_and_mask([seq2seq_example(source, target, IDS, **kw)], IDS["pad"])
    hidden = model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    rows = batch["par_labels"][0] != -100
    return model.head(hidden[0, rows]), batch


def test_layout_of_the_docstring():
    ex = seq2seq_example([7, 8], [9, 10], IDS)
    P, M = IDS["pseudo"], IDS["mask"]
    assert ex["input_ids"].tolist() == [2, 7, 8, 3, 9, 10, 3, P, P, P]
    assert ex["position_ids"].tolist() == [0, 1, 2, 3, 4, 5, 6, 4, 5, 6]  # [P]s reuse the target positions
    assert ex["step_ids"].tolist() == [0, 0, 0, 0, 1, 2, 3, -1, -2, -3]
    assert ex["segment_ids"].tolist() == [0] * 4 + [1] * 6
    assert ex["par_labels"].tolist() == [-100] * 7 + [9, 10, 3]  # the [P]s predict y1, y2, [EOS]
    assert (ex["ae_labels"] == -100).all() and M not in ex["input_ids"].tolist()


def test_mask_is_the_pmlm_rule_table():
    """The batch mask is pmlm_attention_mask of the step ids: check it against the cell-by-cell reference."""
    batch = pad_and_mask([seq2seq_example(SRC, TGT, IDS)], IDS["pad"])
    steps = batch["step_ids"][0].tolist()
    assert batch["attention_mask"][0].tolist() == reference_attention_mask(steps)
    n, m = len(SRC) + 2, len(TGT) + 1
    mask = batch["attention_mask"][0]
    assert not mask[:n, n:].any()  # the source sees no target token
    assert mask[:n, :n].all()  # and is bidirectional
    real, pseudo = slice(n, n + m), slice(n + m, n + 2 * m)
    assert torch.equal(mask[real, real], torch.ones(m, m, dtype=torch.bool).tril())  # causal target
    assert torch.equal(mask[pseudo, real], torch.ones(m, m, dtype=torch.bool).tril(-1))  # [P]_t: y_<t only
    assert torch.equal(mask[pseudo, pseudo], torch.eye(m, dtype=torch.bool))  # and itself


def test_a_pseudo_mask_never_sees_its_own_or_later_target_tokens(model):
    """Perturbation: changing y_t .. y_m leaves the logits of [P]_1 .. [P]_t unchanged."""
    base, _ = pseudo_logits(model, SRC, TGT)
    for t in range(len(TGT)):
        changed = TGT[:t] + [30 + i for i in range(len(TGT) - t)]
        logits, _ = pseudo_logits(model, SRC, changed)
        torch.testing.assert_close(logits[:t + 1], base[:t + 1], rtol=0, atol=1e-10)  # [P]_1..[P]_{t+1}
        if t + 1 < len(TGT):
            assert not torch.allclose(logits[t + 1], base[t + 1])  # [P]_{t+2} sees the change


def test_every_pseudo_mask_sees_the_whole_source(model):
    base, _ = pseudo_logits(model, SRC, TGT)
    logits, _ = pseudo_logits(model, SRC[:-1] + [33], TGT)  # change the last source token
    assert not torch.allclose(logits[0], base[0])


def test_blockwise_target_pseudo_masks_see_earlier_spans_only(model):
    rng = random.Random(3)
    steps = target_steps(len(TGT) + 1, "block", rng, span_prob=1.0, max_span=3)
    assert steps == sorted(steps) and max(steps.count(s) for s in set(steps)) >= 2
    ex = seq2seq_example(SRC, TGT, IDS, factorization="block", rng=random.Random(3), span_prob=1.0, max_span=3)
    m = len(TGT) + 1
    assert ex["step_ids"][-m:].tolist() == [-s for s in steps]
    # perturb a token inside the first span: every [P] of that span keeps its logits
    first_span = steps.count(1)
    kw = dict(factorization="block", span_prob=1.0, max_span=3)
    base, _ = pseudo_logits(model, SRC, TGT, rng=random.Random(3), **kw)
    changed = [39] + TGT[1:]
    logits, _ = pseudo_logits(model, SRC, changed, rng=random.Random(3), **kw)
    torch.testing.assert_close(logits[:first_span], base[:first_span], rtol=0, atol=1e-10)
    assert not torch.allclose(logits[first_span:], base[first_span:])


def test_teacher_forced_decoding_reproduces_the_training_logits(model):
    """What the [P]s see in training is what the cached decoder shows them, step by step."""
    logits, _ = pseudo_logits(model, SRC, TGT)
    train = torch.log_softmax(logits.float(), -1)
    stepper = CachedStepper(model, [[IDS["sos"]] + SRC + [IDS["eos"]]], IDS, 1)
    prev, steps = None, []
    for y in TGT + [IDS["eos"]]:
        steps.append(stepper.logprobs(prev)[0])
        prev = torch.tensor([y])
    torch.testing.assert_close(torch.stack(steps), train, rtol=0, atol=1e-5)


def test_word_drop_masks_the_visible_copy_only():
    src, tgt = list(range(6, 26)), list(range(6, 36)) * 10
    before = list(tgt)
    ex = seq2seq_example(src, tgt, IDS, word_drop=0.5, rng=random.Random(0))
    n, m = len(src) + 2, len(tgt) + 1
    shown = ex["input_ids"][n:n + m]
    share = (shown == IDS["mask"]).float().mean().item()
    assert 0.4 < share < 0.6  # about half of 301 tokens
    assert ex["par_labels"][-m:].tolist() == tgt + [IDS["eos"]]  # labels are never dropped
    assert (ex["input_ids"][:n] != IDS["mask"]).all()  # the source is untouched
    assert tgt == before  # no change in place
    none = seq2seq_example(src, tgt, IDS, word_drop=0.0, rng=random.Random(0))
    assert none["input_ids"][n:n + m].tolist() == tgt + [IDS["eos"]]


def test_label_smoothing_loss(model):
    batch = pad_and_mask([seq2seq_example(SRC, TGT, IDS), seq2seq_example([9], [8, 7], IDS)], IDS["pad"])
    hidden = model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    rows = batch["par_labels"] != -100
    logp = torch.log_softmax(model.head(hidden[rows]).float(), -1)
    labels = batch["par_labels"][rows]
    q = torch.full_like(logp, 0.1 / (V - 2))  # s2s-ft's LabelSmoothingLoss: eps / (V - 2) off the label ...
    q[:, IDS["pad"]] = 0.0  # ... none on [PAD] ...
    q.scatter_(1, labels[:, None], 0.9)  # ... and 1 - eps on it
    expected = (q * (q.log() - logp)).nan_to_num().sum(-1).mean()  # KL(q || p), 0 log 0 = 0
    torch.testing.assert_close(seq2seq_loss(model, batch, 0.1), expected)
    nll = -logp.gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(seq2seq_loss(model, batch, 0.0), nll.mean())  # no smoothing: cross entropy
    assert rows.sum() == len(TGT) + 1 + 3  # only the [P]s carry labels


def test_bad_input_errors(model):
    with pytest.raises(ValueError, match="empty target"):
        seq2seq_example(SRC, [], IDS)
    with pytest.raises(ValueError, match="max_positions"):
        seq2seq_example(list(range(6, 36)), [7] * 20, IDS, max_positions=40)
    with pytest.raises(ValueError, match="max_positions"):
        generate(model, [list(range(6, 6 + 38))], IDS)
    with pytest.raises(ValueError, match="word_drop"):
        Seq2SeqConfig(word_drop=1.0)
    with pytest.raises(ValueError, match="factorization"):
        Seq2SeqConfig(factorization="random")
    with pytest.raises(ValueError, match="unknown seq2seq preset"):
        Seq2SeqConfig.preset("huge")


def test_finetune_seq2seq_end_to_end_learns_a_toy_task():
    """40 steps on "swap the first two words" pairs: the loss falls; the metrics are sacrebleu numbers."""
    from pmlm.tokenizer import train_tokenizer

    words = "apple river stone cloud green seven music paper light table".split()
    rng = random.Random(0)
    rows = []
    for _ in range(400):
        s = rng.sample(words, 4)
        rows.append({"source": " ".join(s), "target": " ".join([s[1], s[0]] + s[2:])})
    tok = train_tokenizer([r["source"] for r in rows], vocab_size=200)  # whole words
    config = pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_positions=64, dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = pmlm.PMLMModel(config)
    cfg = Seq2SeqConfig(lr=1e-2, batch_size=32, max_steps=40, max_source_len=32, max_target_len=32,
                        eval_limit=20, word_drop=0.3)
    logs = []
    out = finetune_seq2seq(model, tok, {"train": rows[:360], "validation": rows[360:380], "test": rows[380:]},
                           cfg, log=logs.append)
    assert out["steps"] == 40 and out["n_test"] == 20
    assert 0 <= out["bleu"] <= 100 and 0 <= out["chrf"] <= 100
    assert out["val_loss"] < 3.0  # uniform: ln(79) = 4.4; the unigram entropy of the words ~ 2.4
    assert out["examples"][0]["output"]


def test_learning_curve_points_come_every_eval_every_steps():
    from pmlm.tokenizer import train_tokenizer

    words = "apple river stone cloud green seven".split()
    rng = random.Random(1)
    rows = [{"source": " ".join(s), "target": " ".join(reversed(s))} for s in (rng.sample(words, 3) for _ in range(120))]
    tok = train_tokenizer([r["source"] for r in rows], vocab_size=120)
    torch.manual_seed(0)
    model = pmlm.PMLMModel(pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=1, num_heads=2,
                                           intermediate_size=64, max_positions=32, dropout=0.0))
    cfg = Seq2SeqConfig(lr=1e-2, batch_size=16, max_steps=10, max_source_len=16, max_target_len=16, eval_limit=8,
                        eval_every=4, curve_examples=5, decode=pmlm.finetune.DecodeConfig(max_length=8))
    out = finetune_seq2seq(model, tok, {"train": rows[:100], "validation": rows[100:110], "test": rows[110:]},
                           cfg, log=lambda _: None)
    assert [p["step"] for p in out["curve"]] == [0, 4, 8, 10]
    assert all(0 <= p["val_bleu"] <= 100 and p["val_loss"] > 0 for p in out["curve"])
    with pytest.raises(ValueError, match="eval_every"):
        Seq2SeqConfig(eval_every=-1)
