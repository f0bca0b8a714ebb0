"""PMLMCollator: the Table 6 variants, segments, and a batch equal to its examples."""

import pytest
import torch

import pmlm
from pmlm.course.autograder.oracles import reference_attention_mask


def make(vocab, **kw):
    return pmlm.PMLMCollator(mask_id=vocab["[MASK]"], pseudo_id=vocab["[P]"], pad_id=vocab["[PAD]"],
                             vocab_size=len(vocab), eos_id=vocab["[EOS]"],
                             special_ids=[vocab[s] for s in ("[UNK]", "[SOS]", "[EOS]")],
                             generator=torch.Generator().manual_seed(0), **kw)


def test_ae_objective_appends_nothing(vocab, real_ids):
    batch = make(vocab, objective="ae")(real_ids)
    assert batch["input_ids"].shape[1] == max(map(len, real_ids))
    assert (batch["step_ids"] == 0).all() and (batch["par_labels"] == -100).all()
    assert (batch["ae_labels"] != -100).any()


@pytest.mark.parametrize("factorization", ["block", "token"])
def test_every_row_of_a_batch_follows_the_rule_table(vocab, real_ids, factorization):
    batch = make(vocab, factorization=factorization)(real_ids)
    for b in range(len(real_ids)):
        L = int(batch["valid"][b].sum())
        steps = batch["step_ids"][b, :L].tolist()
        assert batch["attention_mask"][b, :L, :L].tolist() == reference_attention_mask(steps)
        n = len(real_ids[b])
        masked = int((batch["ae_labels"][b] != -100).sum())
        num_steps = max(-s for s in steps)
        last = steps.count(-num_steps)  # the last step's copies are dropped: nobody attends them
        assert L == n + 2 * masked - last
        if factorization == "token":
            assert num_steps == masked and all(steps.count(-i) == 1 for i in range(1, masked + 1))


def test_drop_last_originals_keeps_everything_else(vocab, real_ids):
    kept = make(vocab, drop_last_originals=False)(real_ids)
    dropped = make(vocab, drop_last_originals=True)(real_ids)
    for b in range(len(real_ids)):
        steps = kept["step_ids"][b][kept["valid"][b]]
        keep = steps != steps.max()
        L = int(dropped["valid"][b].sum())
        assert torch.equal(kept["input_ids"][b][kept["valid"][b]][keep], dropped["input_ids"][b, :L])


def test_segments_switch_after_the_first_eos(vocab):
    s = [vocab["[SOS]"], 10, 11, vocab["[EOS]"], 12, 13, vocab["[EOS]"]]
    batch = make(vocab, objective="ae")([s])
    assert batch["segment_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_same_generator_seed_gives_the_same_batch(vocab, real_ids):
    a, b = make(vocab)(real_ids), make(vocab)(real_ids)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_collator_arguments_fail_clearly(vocab, real_ids):
    with pytest.raises(ValueError, match="objective"):
        make(vocab, objective="mlm")
    with pytest.raises(ValueError, match="factorization"):
        make(vocab, factorization="span")
    with pytest.raises(ValueError, match="mask_ratio"):
        make(vocab, mask_ratio=1.5)
    with pytest.raises(ValueError, match="longer than max_length"):
        make(vocab, max_length=10)(real_ids)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        make(vocab)([[len(vocab) + 3, 7, 8]])
