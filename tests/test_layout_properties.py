"""Property tests over random lengths and random blocks (hypothesis).

The mask must equal the rule table cell by cell (a plain-Python reference), positions and labels
must be consistent with the blocks, and padding in a batch must change nothing for real tokens.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pmlm
from pmlm.course.autograder.oracles import reference_attention_mask
from pmlm.collator import pad_and_mask

M, P, V = 1, 2, 50


@st.composite
def sequences_with_blocks(draw):
    """Token ids 3..V-1 and random disjoint blocks of contiguous positions in a random order."""
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.integers(3, V - 1), min_size=n, max_size=n))
    cut = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    chosen = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    blocks, current = [], []
    for i in range(n):  # runs of chosen positions, split where `cut` says
        if chosen[i] and not (cut[i] and current):
            current.append(i)
        elif chosen[i]:
            blocks.append(current)
            current = [i]
        else:
            if current:
                blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    order = draw(st.permutations(range(len(blocks))))
    drop = draw(st.booleans())
    return ids, [blocks[i] for i in order], drop


@settings(max_examples=150, deadline=None)
@given(sequences_with_blocks())
def test_mask_positions_and_labels_follow_the_rules(case):
    ids, blocks, drop = case
    ex = pmlm.build_pmlm_example(ids, blocks, mask_id=M, pseudo_id=P, vocab_size=V,
                                 special_ids=[0], drop_last_originals=drop,
                                 generator=torch.Generator().manual_seed(0))
    n, m = len(ids), sum(len(b) for b in blocks)
    last = len(blocks[-1]) if blocks and drop else 0
    assert ex.length == n + 2 * m - last
    # the mask is the rule table, cell by cell
    assert ex.attention_mask.tolist() == reference_attention_mask(ex.step_ids.tolist())
    # the context keeps every position; appended tokens reuse the positions of their tokens
    assert ex.position_ids[:n].tolist() == list(range(n))
    steps = ex.step_ids.tolist()
    for i, block in enumerate(blocks, start=1):
        pseudo = [j for j, s in enumerate(steps) if s == -i]
        assert ex.position_ids[pseudo].tolist() == sorted(block)
        assert ex.input_ids[pseudo].tolist() == [P] * len(block)
        assert ex.par_labels[pseudo].tolist() == [ids[p] for p in sorted(block)]
        copies = [j for j, s in enumerate(steps) if s == i]
        if copies:
            assert ex.input_ids[copies].tolist() == [ids[p] for p in sorted(block)]
            assert ex.position_ids[copies].tolist() == sorted(block)
    # AE labels exactly at the masked context positions; PAR labels exactly at the [P]s
    masked = {p for b in blocks for p in b}
    assert [j for j in range(ex.length) if ex.ae_labels[j] != -100] == sorted(masked)
    assert all(ex.ae_labels[p] == ids[p] for p in masked)
    assert [j for j, s in enumerate(steps) if s < 0] == [j for j in range(ex.length) if ex.par_labels[j] != -100]
    # unmasked context tokens are shown unchanged
    assert all(ex.input_ids[p] == ids[p] for p in range(n) if p not in masked)


@settings(max_examples=60, deadline=None)
@given(st.lists(sequences_with_blocks(), min_size=2, max_size=4))
def test_padding_in_a_batch_changes_nothing_for_real_tokens(cases):
    examples = []
    for ids, blocks, drop in cases:
        ex = pmlm.build_pmlm_example(ids, blocks, mask_id=M, pseudo_id=P, vocab_size=V,
                                     drop_last_originals=drop, generator=torch.Generator().manual_seed(0))
        examples.append(ex)
    fields = ("input_ids", "position_ids", "segment_ids", "step_ids", "ae_labels", "par_labels")
    batch = pad_and_mask([{f: getattr(e, f) for f in fields} for e in examples], pad_id=0)
    for b, ex in enumerate(examples):
        L = ex.length
        for f in fields:
            assert torch.equal(batch[f][b, :L], getattr(ex, f))
        assert torch.equal(batch["attention_mask"][b, :L, :L], ex.attention_mask)
        assert not batch["attention_mask"][b, :, L:][:L].any()  # nobody real attends padding
        assert not batch["attention_mask"][b, :L, L:].any()
        pad_rows = batch["attention_mask"][b, L:]
        assert torch.equal(pad_rows, torch.eye(batch["input_ids"].shape[1], dtype=torch.bool)[L:])
        assert (batch["ae_labels"][b, L:] == -100).all() and (batch["par_labels"][b, L:] == -100).all()
