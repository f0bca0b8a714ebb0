"""The paper's worked example (Figs. 4-5), cell by cell."""

import torch

import pmlm

# x1..x6 are token ids 11..16; [M] = 1, [P] = 2. Masked x2, x4, x5; order {x4, x5} then {x2}.
X = [11, 12, 13, 14, 15, 16]
BLOCKS = [[3, 4], [1]]  # 0-based positions of x4, x5 and of x2
M, P = 1, 2

PAPER_MATRIX = """
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 0 0 0 0 0 0
1 1 1 1 1 1 1 1 0 0 0 0
1 1 1 1 1 1 1 1 0 0 0 0
1 1 1 1 1 1 0 0 1 1 0 0
1 1 1 1 1 1 0 0 1 1 0 0
1 1 1 1 1 1 0 0 1 1 1 0
1 1 1 1 1 1 0 0 1 1 0 1
"""


def example(**kw):
    return pmlm.build_pmlm_example(X, BLOCKS, mask_id=M, pseudo_id=P, replace_probs=(1.0, 0.0, 0.0), **kw)


def test_input_and_positions_match_the_paper():
    ex = example()
    #                            x1 [M] x3 [M] [M] x6 [P] [P] x4  x5 [P] x2
    assert ex.input_ids.tolist() == [11, M, 13, M, M, 16, P, P, 14, 15, P, 12]
    # the paper counts from 1: 1 2 3 4 5 6 4 5 4 5 2 2
    assert (ex.position_ids + 1).tolist() == [1, 2, 3, 4, 5, 6, 4, 5, 4, 5, 2, 2]
    assert ex.step_ids.tolist() == [0, 0, 0, 0, 0, 0, -1, -1, 1, 1, -2, 2]


def test_full_attention_matrix_matches_the_paper():
    expected = torch.tensor([[int(c) for c in row.split()] for row in PAPER_MATRIX.strip().splitlines()])
    assert torch.equal(example().attention_mask.long(), expected)


def test_labels():
    ex = example()
    assert ex.ae_labels.tolist() == [-100, 12, -100, 14, 15, -100] + [-100] * 6
    assert ex.par_labels.tolist() == [-100] * 6 + [14, 15, -100, -100, 12, -100]


def test_dropping_the_last_originals_removes_only_them():
    full, short = example(), example(drop_last_originals=True)
    assert short.input_ids.tolist() == full.input_ids.tolist()[:-1]
    assert torch.equal(short.attention_mask, full.attention_mask[:-1, :-1])
    assert not full.attention_mask[:, -1][:-1].any()  # nobody but itself attends x2's copy


def test_token_ids_are_not_changed_in_place():
    ids = torch.tensor(X)
    before = ids.clone()
    lst = list(X)
    pmlm.build_pmlm_example(ids, BLOCKS, mask_id=M, pseudo_id=P, vocab_size=20)
    pmlm.build_pmlm_example(lst, BLOCKS, mask_id=M, pseudo_id=P, vocab_size=20)
    assert torch.equal(ids, before) and lst == X
