"""pmlm.metrics and the validation scores: [M]-only selection and masked bits per character, each
checked against numbers computed by hand."""

import math

import pytest
import torch

from pmlm.metrics import MetricSums, bits_per_character, piece_characters, row_scores, shown_as_mask, word_pieces
from pmlm.train.evaluation import evaluate

# the worked example of section 3.2 (positions from 0): x1 [M] x3 [M] x5 x6, then step 1 {x4, x5}
# and step 2 {x2}; position 4 was drawn as "kept" by the 80/10/10 replacement, so the context shows x5
M, P = 4, 5
X = {i: 10 + i for i in range(1, 7)}  # x1..x6 -> ids 11..16
INPUT = [X[1], M, X[3], M, X[5], X[6], P, P, X[4], X[5], P]
POS = [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1]
AE = [-100, X[2], -100, X[4], X[5], -100, -100, -100, -100, -100, -100]
PAR = [-100] * 6 + [X[4], X[5], -100, -100, X[2]]


def test_piece_characters_strip_the_continuation_marker_and_count_specials_zero():
    vocab = {"[PAD]": 0, "the": 1, "##s": 2, ",": 3, "elinor": 4}
    assert piece_characters(vocab, {"[PAD]"}).tolist() == [0, 3, 1, 1, 6]


def test_word_pieces_are_the_pieces_with_a_letter():
    vocab = {"[PAD]": 0, "the": 1, "##s": 2, ",": 3, "--": 4, "1811": 5, "##'": 6, "don": 7}
    assert word_pieces(vocab, {"[PAD]"}).tolist() == [False, True, True, False, False, False, False, True]


def test_shown_as_mask_finds_the_context_token_of_each_rows_position():
    shown = shown_as_mask(torch.tensor([INPUT]), torch.tensor([POS]), M)[0].tolist()
    # AE rows: [M] at positions 1 and 3, the kept x5 at position 4 is not [M]
    assert [shown[i] for i in (1, 3, 4)] == [True, True, False]
    # PAR rows: the [P] of x4 (position 3) and of x2 (position 1) stand on [M]; the [P] of x5 stands
    # where the context shows the original x5, which it may attend: not an [M]-only row
    assert [shown[i] for i in (6, 7, 10)] == [True, False, True]


def test_bits_per_character_by_hand():
    # uniform logits over 4 pieces: ln 4 nats = 2 bits per piece; pieces of 3 and 1 characters
    nats, correct = row_scores(torch.zeros(2, 4), torch.tensor([1, 2]))
    assert nats.tolist() == pytest.approx([math.log(4)] * 2)
    sums = MetricSums()
    sums.add(nats, correct, torch.tensor([3, 1]))
    r = sums.result()
    assert r["bpc"] == pytest.approx(4.0 / 4)  # 4 bits over 4 characters
    assert r["loss"] == pytest.approx(math.log(4)) and r["count"] == 2
    assert bits_per_character(math.log(2) * 6, 3) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="positive character count"):
        bits_per_character(1.0, 0)
    assert MetricSums().result()["acc"] is None


class FixedLogits(torch.nn.Module):
    """A stand-in model whose labelled rows get fixed logits (what model.labelled_logits returns)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def labelled_logits(self, batch):
        ae, par = batch["ae_labels"] != -100, batch["par_labels"] != -100
        rows = ae | par
        labels = torch.where(ae, batch["ae_labels"], batch["par_labels"])[rows]
        return self.logits, labels, ae[rows], rows


def test_evaluate_scores_m_only_rows_and_the_unigram_baseline_on_the_same_tokens():
    V = 20
    batch = {"input_ids": torch.tensor([INPUT]), "position_ids": torch.tensor([POS]),
             "ae_labels": torch.tensor([AE]), "par_labels": torch.tensor([PAR])}
    # rows in order: AE x2 (pos 1), AE x4 (pos 3), AE x5 (pos 4, kept), PAR x4, PAR x5 (kept), PAR x2
    logits = torch.zeros(6, V)
    logits[0, X[2]] = 10.0  # AE x2 right
    logits[1, X[1]] = 10.0  # AE x4 wrong
    logits[2, X[5]] = 10.0  # AE kept x5 right (copied): counted in all-positions only
    logits[3, X[4]] = 10.0  # PAR x4 right
    logits[4, X[1]] = 10.0  # PAR kept x5 wrong: left out of the [M]-only score
    logits[5, X[3]] = 10.0  # PAR x2 wrong
    log_p = torch.full((V,), math.log(1 / 40))
    log_p[X[2]] = math.log(1 / 2)  # the unigram guess is x2
    chars = torch.zeros(V, dtype=torch.long)
    chars[X[2]], chars[X[4]], chars[X[5]] = 2, 3, 4
    out = evaluate(FixedLogits(logits), [batch], torch.device("cpu"), False, mask_id=M,
                   unigram_log_probs=log_p, piece_chars=chars)
    assert out["val_ae_acc"] == pytest.approx(2 / 3) and out["val_par_acc"] == pytest.approx(1 / 3)
    assert out["val_ae_m_acc"] == pytest.approx(1 / 2) and out["val_par_m_acc"] == pytest.approx(1 / 2)
    assert out["val_m_tokens"] == 2
    # unigram on x2 and x4: right on x2 only; nats ln 2 + ln 40 over 2 + 3 characters
    assert out["unigram_m_acc"] == pytest.approx(1 / 2)
    assert out["unigram_m_loss"] == pytest.approx((math.log(2) + math.log(40)) / 2)
    assert out["unigram_m_bpc"] == pytest.approx((math.log(2) + math.log(40)) / math.log(2) / 5)
    right, wrong = (-torch.log_softmax(torch.tensor([10.0] + [0.0] * (V - 1)), 0)[[0, 1]]).tolist()
    assert out["val_ae_m_bpc"] == pytest.approx((right + wrong) / math.log(2) / 5)
    assert out["val_par_m_loss"] == pytest.approx((right + wrong) / 2)


@pytest.mark.parametrize("most_frequent_word, unigram_word_acc", [(3, 0.0), (4, 1.0)])
def test_word_accuracy_leaves_punctuation_out_and_its_baseline_guesses_the_commonest_word(
        most_frequent_word, unigram_word_acc):
    V = 20
    batch = {"input_ids": torch.tensor([INPUT]), "position_ids": torch.tensor([POS]),
             "ae_labels": torch.tensor([AE]), "par_labels": torch.tensor([PAR])}
    logits = torch.zeros(6, V)  # rows as above: AE x2, AE x4, AE x5 (kept), PAR x4, PAR x5 (kept), PAR x2
    logits[0, X[2]] = 10.0  # AE x2 right, but x2 is punctuation here
    logits[1, X[1]] = 10.0  # AE x4 wrong
    logits[2, X[5]] = 10.0
    logits[3, X[4]] = 10.0  # PAR x4 right
    logits[4, X[1]] = 10.0
    logits[5, X[3]] = 10.0
    log_p = torch.full((V,), math.log(1 / 40))
    log_p[X[2]] = math.log(1 / 2)  # the commonest piece: punctuation, never a word guess
    log_p[X[most_frequent_word]] = math.log(1 / 5)  # the commonest word piece
    is_word = torch.zeros(V, dtype=torch.bool)
    is_word[[X[1], X[3], X[4], X[5], X[6]]] = True  # every piece but x2 spells a word
    out = evaluate(FixedLogits(logits), [batch], torch.device("cpu"), False, mask_id=M,
                   unigram_log_probs=log_p, piece_chars=torch.ones(V, dtype=torch.long), is_word=is_word)
    # of the two [M] tokens (x2, x4) only x4 is a word: AE wrong on it, PAR right
    assert out["val_m_word_tokens"] == 1 and out["val_m_tokens"] == 2
    assert out["val_ae_m_word_acc"] == 0.0 and out["val_par_m_word_acc"] == 1.0
    assert out["unigram_m_word_acc"] == unigram_word_acc
    assert out["unigram_m_acc"] == pytest.approx(1 / 2)  # over all pieces it guesses x2, right once
    without = evaluate(FixedLogits(logits), [batch], torch.device("cpu"), False, mask_id=M,
                       unigram_log_probs=log_p, piece_chars=torch.ones(V, dtype=torch.long))
    assert "val_ae_m_word_acc" not in without
    none = evaluate(FixedLogits(logits), [batch], torch.device("cpu"), False, mask_id=M, unigram_log_probs=log_p,
                    piece_chars=torch.ones(V, dtype=torch.long), is_word=torch.zeros(V, dtype=torch.bool))
    assert none["val_m_word_tokens"] == 0 and none["val_ae_m_word_acc"] is None  # no word: no score, no crash
    with pytest.raises(ValueError, match="bool tensor"):
        evaluate(FixedLogits(logits), [batch], torch.device("cpu"), False, mask_id=M, unigram_log_probs=log_p,
                 piece_chars=torch.ones(V, dtype=torch.long), is_word=is_word.long())


def test_accuracy_by_step_scores_the_same_tokens_for_ae_and_par():
    from pmlm.train.evaluation import accuracy_by_step

    V = 20
    batch = {"input_ids": torch.tensor([INPUT]), "position_ids": torch.tensor([POS]),
             "ae_labels": torch.tensor([AE]), "par_labels": torch.tensor([PAR]),
             "step_ids": torch.tensor([[0] * 6 + [-1, -1, 1, 1, -2]])}
    logits = torch.zeros(6, V)  # rows: AE x2, AE x4, AE x5 (kept), PAR x4, PAR x5 (kept), PAR x2
    logits[0, X[2]] = logits[5, X[2]] = 10.0  # x2 (step 2) right from its [M] and from its [P]
    logits[3, X[4]] = 10.0  # x4 (step 1) right from its [P] only
    out = accuracy_by_step(FixedLogits(logits), [batch], M)
    assert out == [{"step": 1, "tokens": 1, "ae_acc": 0.0, "par_acc": 1.0},
                   {"step": 2, "tokens": 1, "ae_acc": 1.0, "par_acc": 1.0}]
