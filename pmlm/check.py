"""In-notebook checks of the course kit's seven tasks: ``pmlm.check.<task>(fn)``.

Each check runs the *public* part of the grading tests on a function you wrote (by default the
package's own, i.e. your copy's) and either returns a one-line summary or raises
:class:`CheckFailed` with one counterexample in the paper's terms, for instance::

    >>> pmlm.check.may_attend(my_rule)
    CheckFailed: Task 4: the [P] of step 2 may attend the original x2 at position 2: explicit leak ...

================  ==========================================  =============================
task              call                                         the paper
================  ==========================================  =============================
1 Algorithm 1     ``check.sample_blocks(fn)``                  section 3.1.2, Algorithm 1
2 80/10/10        ``check.replacement_tokens(fn)``             section 4.1
3 layout          ``check.layout_1d(fn)``                      section 3.2, Figs. 1 and 4
4 attention rule  ``check.may_attend(fn)``                     section 3.2, Figs. 4 and 5
5 losses          ``check.losses(grouped_components, combine)`` section 3.3, Eqs. 3-7
6 buckets         ``check.relative_position_bucket(fn)``       section 4.1
7 decoding step   ``check.cached_step_inputs(fn)``             section 3.4
================  ==========================================  =============================

``check.task1`` ... ``check.task7`` are the same functions by number. The checks use torch and the
standard library only, with fixed seeds, so every student meets the same cases; the grader
(``python -m pmlm.course grade``) runs these and hidden ones (random cases against independent
references, leak tests by perturbation, decoding against recomputation). The expected values
written here (the worked example of Figs. 1 and 4, a few T5 buckets) are the specification the
paper gives, not an implementation.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import torch

__all__ = ["CheckFailed", "sample_blocks", "replacement_tokens", "layout_1d", "may_attend", "losses",
           "relative_position_bucket", "cached_step_inputs"]


class CheckFailed(AssertionError):
    """A check found a counterexample; the message says which property failed and on what input."""


def _require(ok: bool, task: int, message: str) -> None:
    if not ok:
        raise CheckFailed(f"Task {task}: {message}")


def _passed(task: int, name: str, count: int) -> str:
    line = f"Task {task} ({name}): all {count} checks passed"
    print(line)
    return line


# ------------------------------------------------------------------------------ task 1

def sample_blocks(fn=None) -> str:
    """Algorithm 1: disjoint blocks of 1 or 2..6 positions, drawn until >= 15% are masked."""
    if fn is None:
        from pmlm.masking import sample_blocks as fn
    checks = 0
    for n, seed in ((10, 0), (37, 1), (128, 2), (512, 3)):
        blocks = fn(n, generator=torch.Generator().manual_seed(seed))
        _require(isinstance(blocks, list) and all(isinstance(b, list) for b in blocks), 1,
                 f"sample_blocks({n}) must return a list of blocks, each a list of positions; got {type(blocks).__name__}")
        flat = [p for b in blocks for p in b]
        _require(all(isinstance(p, int) for p in flat), 1, f"positions must be Python ints, got {flat[:3]}")
        _require(all(len(b) > 0 for b in blocks), 1, f"n={n}: an empty block is not a factorization step")
        _require(all(b == list(range(b[0], b[0] + len(b))) for b in blocks), 1,
                 f"n={n}: every block is a run of contiguous positions in increasing order; got {blocks}")
        _require(all(0 <= p < n for p in flat), 1, f"n={n}: a block holds a position outside 0..{n - 1}: {blocks}")
        dup = [p for p, c in Counter(flat).items() if c > 1]
        _require(not dup, 1, f"n={n}: position {dup[:1]} is masked by two blocks; Algorithm 1 rejects a "
                             f"draw that overlaps a masked block (seed {seed})")
        _require(all(len(b) == 1 or 2 <= len(b) <= 6 for b in blocks), 1,
                 f"n={n}: block lengths are 1 or uniform in 2..6; got {sorted({len(b) for b in blocks})}")
        _require(len(flat) >= 0.15 * n, 1, f"n={n}: Algorithm 1 masks until 15% of the tokens "
                                           f"({0.15 * n:.1f}); your blocks mask {len(flat)}")
        _require(len(flat) - len(blocks[-1]) < 0.15 * n, 1,
                 f"n={n}: the loop stops at the first block that reaches 15%; before your last block "
                 f"{len(flat) - len(blocks[-1])} tokens were already masked")
        checks += 7
    again = fn(128, generator=torch.Generator().manual_seed(5))
    _require(again == fn(128, generator=torch.Generator().manual_seed(5)), 1,
             "the same seeded generator must give the same blocks (draw through the generator)")
    maskable = [i % 4 != 0 for i in range(64)]
    got = fn(64, maskable=maskable, generator=torch.Generator().manual_seed(6))
    _require(all(maskable[p] for b in got for p in b), 1,
             "a position with maskable=False (a special token or padding) is never masked; got "
             f"{[p for b in got for p in b if not maskable[p]]}")
    _require(sum(len(b) for b in got) >= 0.15 * sum(maskable), 1,
             "with maskable given, 15% counts the maskable tokens only")
    singles = fn(100, block_prob=0.0, generator=torch.Generator().manual_seed(7))
    _require(all(len(b) == 1 for b in singles) and len(singles) == 15, 1,
             "with block_prob=0 Algorithm 1 is BERT's masking: 15 single tokens out of 100; got "
             f"{[len(b) for b in singles]}")
    checks += 5
    g = torch.Generator().manual_seed(8)
    lengths: Counter = Counter()
    for _ in range(300):
        lengths.update(len(b) for b in fn(128, generator=g))
    share = lengths[1] / sum(lengths.values())
    _require(0.55 < share < 0.72, 1, f"on 128 tokens about 63% of the accepted blocks have one token "
                                     f"(draws: 60% single, 40% spans, spans rejected more often); yours: {share:.0%}")
    _require(all(lengths[k] > 0 for k in range(2, 7)), 1,
             f"spans of every length 2..6 occur; in 300 draws yours had lengths {sorted(lengths)}")
    return _passed(1, "Algorithm 1", checks + 2)


# ------------------------------------------------------------------------------ task 2

def replacement_tokens(fn=None) -> str:
    """80/10/10: [M], a random non-special token, or the original, per masked token."""
    if fn is None:
        from pmlm.masking import replacement_tokens as fn
    originals, mask_id, V, specials = [42] * 20000, 3, 200, [0, 1, 2, 4]
    out = fn(originals, mask_id=mask_id, vocab_size=V, special_ids=specials, rng=random.Random(0))
    _require(isinstance(out, list) and len(out) == len(originals), 2,
             f"one replacement per masked token: {len(originals)} in, {len(out) if hasattr(out, '__len__') else out} out")
    _require(all(isinstance(t, int) for t in out[:50]), 2, "replacements must be Python ints")
    n = len(out)
    share_mask = out.count(mask_id) / n
    share_keep = out.count(42) / n
    share_rand = 1 - share_mask - share_keep
    _require(abs(share_mask - 0.8) < 0.015, 2, f"80% of the masked tokens are shown as [M]; yours: {share_mask:.1%}")
    _require(abs(share_keep - 0.1) < 0.015, 2, f"10% keep the original token; yours: {share_keep:.1%}")
    _require(abs(share_rand - 0.1) < 0.015, 2, f"10% become a random token; yours: {share_rand:.1%}")
    bad = sorted({t for t in out if t in specials or not 0 <= t < V})
    _require(not bad, 2, f"a random replacement is never a special token nor outside the vocabulary; got {bad[:3]}")
    only = fn([7] * 3000, mask_id=mask_id, vocab_size=12, special_ids=[0, 1], replace_probs=(0.0, 1.0, 0.0),
              rng=random.Random(1))
    _require(set(only) == set(range(2, 12)) - {mask_id}, 2,
             f"with replace_probs=(0, 1, 0) every allowed id (not special, not [M]) is drawn; got {sorted(set(only))}")
    counts = Counter(only)
    _require(max(counts.values()) < 1.5 * min(counts.values()), 2,
             f"random tokens are drawn uniformly over the allowed ids; counts {dict(sorted(counts.items()))}")
    _require(fn([5, 6, 7], mask_id=9, vocab_size=None, replace_probs=(1.0, 0.0, 0.0), rng=random.Random(2))
             == [9, 9, 9], 2, "with replace_probs=(1, 0, 0) every masked token is shown as [M]")
    _require(fn([5, 6, 7], mask_id=9, vocab_size=10, replace_probs=(0.0, 0.0, 1.0), rng=random.Random(3))
             == [5, 6, 7], 2, "with replace_probs=(0, 0, 1) every masked token keeps its original")
    a = fn(originals[:500], mask_id=mask_id, vocab_size=V, special_ids=specials, rng=random.Random(4))
    b = fn(originals[:500], mask_id=mask_id, vocab_size=V, special_ids=specials, rng=random.Random(4))
    _require(a == b, 2, "the same rng seed must give the same replacements (draw through rng only)")
    return _passed(2, "80/10/10 replacement", 11)


# ------------------------------------------------------------------------------ task 3

# The paper's worked example (Figs. 1 and 4), positions from 0: x1..x6 are ids 1..6, [M] = 100,
# [P] = 101; masked x2, x4, x5 (positions 1, 3, 4) in the order {x4, x5} then {x2}.
WORKED = {
    "input_ids": [1, 100, 3, 100, 100, 6, 101, 101, 4, 5, 101, 2],
    "position_ids": [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1],
    "step_ids": [0, 0, 0, 0, 0, 0, -1, -1, 1, 1, -2, 2],
    "ae_labels": [-100, 2, -100, 4, 5, -100, -100, -100, -100, -100, -100, -100],
    "par_labels": [-100, -100, -100, -100, -100, -100, 4, 5, -100, -100, 2, -100],
}


def layout_1d(fn=None) -> str:
    """The layout of Figs. 1 and 4: context, then per step its [P]s and its original copies."""
    if fn is None:
        from pmlm.layout import layout_1d as fn
    tokens, steps = [1, 2, 3, 4, 5, 6], [[3, 4], [1]]
    context = [1, 100, 3, 100, 100, 6]
    got = fn(tokens, steps, context_ids=context, pseudo_id=101)
    for key, want in WORKED.items():
        _require(key in got, 3, f"the layout must give the field {key!r}")
        have = got[key].tolist() if torch.is_tensor(got[key]) else list(got[key])
        if key == "position_ids" and have != want:
            raise CheckFailed(f"Task 3: position reuse: every [P] and every original copy carries the position of "
                              f"the token it stands for, so the worked example's positions are {want}; yours {have}")
        _require(have == want, 3, f"the worked example (x1..x6, masked x2, x4, x5, order {{x4, x5}} then {{x2}}): "
                                  f"{key} should be {want}, yours is {have}")
    _require(all(got[k].dtype == torch.long for k in WORKED), 3, "every field is a long tensor")
    seg = fn(tokens, steps, context_ids=context, pseudo_id=101, segment_ids=[0, 0, 0, 1, 1, 1])["segment_ids"]
    _require(seg.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0], 3,
             f"appended tokens copy the segment of the token they stand for; got {seg.tolist()}")
    short = fn(tokens, steps, context_ids=context, pseudo_id=101, drop_last_originals=True)
    _require(short["input_ids"].tolist() == WORKED["input_ids"][:11], 3,
             "drop_last_originals=True leaves out the copies of the last step (nobody attends them)")
    plain = fn(tokens, steps, context_ids=context, pseudo_id=101, append=False)
    _require(plain["input_ids"].tolist() == context and (plain["par_labels"] == -100).all(), 3,
             "append=False is BERT's layout: the n context tokens only, AE labels, no [P]")
    _require(fn(tokens, [], context_ids=tokens, pseudo_id=101)["input_ids"].tolist() == tokens, 3,
             "with no steps the layout is the context alone")
    return _passed(3, "layout with position reuse", len(WORKED) + 5)


# ------------------------------------------------------------------------------ task 4

def _worked_names() -> list[str]:
    return ["x1", "[M]@1", "x3", "[M]@3", "[M]@4", "x6", "[P]@3", "[P]@4", "x4", "x5", "[P]@1", "x2"]


# Fig. 4's mask for the worked example, rows = queries, columns = keys ("1" = may attend)
WORKED_MASK = [
    "111111000000",  # x1 ... x6: the context sees the context only
    "111111000000",
    "111111000000",
    "111111000000",
    "111111000000",
    "111111000000",
    "111111110000",  # [P] of step 1 (x4, x5): the context and the [P]s of its own step
    "111111110000",
    "111111001100",  # the originals x4, x5 of step 1: the context and the originals of steps <= 1
    "111111001100",
    "111111001110",  # [P] of step 2 (x2): the context, the originals of step 1, itself
    "111111001101",  # the original x2 of step 2: the context, the originals of steps <= 2
]


def may_attend(fn=None) -> str:
    """The rule table of section 3.2 on step ids (0 context, -i [P] of step i, +i original of step i)."""
    if fn is None:
        from pmlm.attention import may_attend as fn
    sid = torch.tensor(WORKED["step_ids"])
    got = fn(sid.unsqueeze(-1), sid.unsqueeze(-2))  # (L, 1) x (1, L) -> (L, L)
    _require(torch.is_tensor(got) and got.dtype == torch.bool and got.shape == (12, 12), 4,
             "may_attend(q, k) broadcasts like a tensor expression and gives bools: (12, 1) x (1, 12) -> (12, 12); "
             f"got {getattr(got, 'dtype', type(got))} of shape {tuple(getattr(got, 'shape', ()))}")
    names = _worked_names()
    for i, row in enumerate(WORKED_MASK):
        for j, cell in enumerate(row):
            want = cell == "1"
            if bool(got[i, j]) == want:
                continue
            q, k = WORKED["step_ids"][i], WORKED["step_ids"][j]
            who = f"{names[i]} (step id {q})"
            what = f"{names[j]} at position {WORKED['position_ids'][j]} (step id {k})"
            if want:
                raise CheckFailed(f"Task 4: {who} must be allowed to attend {what} (Fig. 4)")
            if q < 0 and k == -q:
                why = f"the [P] of step {-q} may attend the original {names[j]} of its own step: explicit leak"
            elif q < 0 and k > -q:
                why = f"the [P] of step {-q} may attend the original {names[j]} of a later step: explicit leak"
            elif q == 0:
                why = f"the context token {names[i]} may attend the appended {names[j]}: the context would " \
                      "no longer be BERT's, and a [P] reading it could see its answer (implicit leak)"
            elif q > 0 and k > q:
                why = f"the original {names[i]} of step {q} may attend {names[j]} of a later step: a [P] of step " \
                      f"{q + 1} reading {names[i]} would see it (implicit leak)"
            else:
                why = f"{who} may attend {what}, which the rule table forbids"
            raise CheckFailed(f"Task 4: {why}")
    _require(bool(fn(torch.tensor(-3), torch.tensor(-3))) and not bool(fn(torch.tensor(-3), torch.tensor(-2))), 4,
             "a [P] sees the [P]s of its own step and no other step's")
    _require(bool(fn(torch.tensor(3), torch.tensor(3))) and not bool(fn(torch.tensor(-3), torch.tensor(3))), 4,
             "the original of step 3 sees its own step's originals; the [P] of step 3 does not")
    batch = fn(torch.zeros(2, 5, 1, dtype=torch.long), torch.zeros(2, 1, 5, dtype=torch.long))
    _require(tuple(batch.shape) == (2, 5, 5) and bool(batch.all()), 4,
             "batched step ids (B, L, 1) x (B, 1, L) give (B, L, L); context sees context")
    return _passed(4, "attention rule", 144 + 3)


# ------------------------------------------------------------------------------ task 5

def losses(grouped_components=None, combine=None) -> str:
    """Eqs. 4-7: mean cross entropy over each objective's labelled rows; the total is their sum."""
    if grouped_components is None:
        from pmlm.losses import grouped_components
    if combine is None:
        from pmlm.losses import combine
    # three rows over V = 4: row 0 uniform, row 1 confident and right, row 2 confident and wrong
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 0])
    ce = [math.log(4), math.log(1 + 3 * math.exp(-4)), math.log(3 + math.exp(4))]  # -log softmax at the label
    groups = {"ae": torch.tensor([True, True, False]), "par": torch.tensor([False, False, True])}
    parts = grouped_components(logits, labels, groups)
    values = {g: {k: float(v.detach()) for k, v in p.items()} for g, p in parts.items()} if isinstance(parts, dict) else {}
    _require(set(parts) == {"ae", "par"} and all({"loss", "acc", "count"} <= set(p) for p in parts.values()), 5,
             "grouped_components gives {group: {'loss', 'acc', 'count'}} for every group asked for")
    _require(abs(values["ae"]["loss"] - (ce[0] + ce[1]) / 2) < 1e-4, 5,
             f"the AE loss (Eq. 4) is the mean cross entropy over its rows: (ln 4 + {ce[1]:.4f}) / 2 = "
             f"{(ce[0] + ce[1]) / 2:.4f}; yours {values['ae']['loss']:.4f}")
    _require(abs(values["par"]["loss"] - ce[2]) < 1e-4, 5,
             f"the PAR loss (Eq. 5) over its one row is {ce[2]:.4f}; yours {values['par']['loss']:.4f}")
    _require(abs(values["ae"]["acc"] - 0.5) < 1e-6 and values["par"]["acc"] == 0.0, 5,
             "accuracy is the share of rows whose argmax is the label: AE 1 of 2 (a tie does not count for "
             f"label 1 here), PAR 0 of 1; yours {values['ae']['acc']}, {values['par']['acc']}")
    _require(int(values["ae"]["count"]) == 2 and int(values["par"]["count"]) == 1, 5, "count is the number of rows")
    empty = grouped_components(logits, labels, {"none": torch.zeros(3, dtype=torch.bool)})["none"]
    _require(float(empty["loss"].detach()) == 0.0 and int(empty["count"]) == 0, 5,
             f"an objective without labels in the batch gives 0, not NaN; yours {float(empty['loss'].detach())}")
    nan = logits.detach().clone()
    nan[2] = float("nan")
    safe = grouped_components(nan, labels, {"ae": groups["ae"]})["ae"]["loss"]
    _require(torch.isfinite(safe), 5, "a NaN in a row outside the group must not reach the group's loss")
    total = combine(parts, "ae+par")
    _require(abs(float(total["loss"].detach()) - (values["ae"]["loss"] + values["par"]["loss"])) < 1e-5, 5,
             "Eq. 7: the UniLMv2 loss is the unweighted sum L_AE + L_PAR")
    _require(abs(float(combine(parts, "ae")["loss"].detach()) - values["ae"]["loss"]) < 1e-6
             and abs(float(combine(parts, "par")["loss"].detach()) - values["par"]["loss"]) < 1e-6, 5,
             "objective 'ae' is BERT's loss alone, 'par' the PAR loss alone (Table 6's rows)")
    total["loss"].backward()
    _require(logits.grad is not None and logits.grad.abs().sum() > 0, 5, "the loss must be differentiable")
    return _passed(5, "AE and PAR losses", 10)


# ------------------------------------------------------------------------------ task 6

# T5's buckets for num_buckets=32, max_distance=128 (distance = key position - query position)
BUCKETS_32_128 = {0: 0, 1: 17, -1: 1, 2: 18, -2: 2, 7: 23, -7: 7, 8: 24, -8: 8, 11: 24, -11: 8, 20: 26,
                  -20: 10, 40: 28, -40: 12, 64: 30, -64: 14, 127: 31, -127: 15, 128: 31, -128: 15,
                  500: 31, -500: 15}


def relative_position_bucket(fn=None) -> str:
    """T5's bidirectional buckets: exact near, logarithmic far, one half per direction."""
    if fn is None:
        from pmlm.relpos import relative_position_bucket as fn
    d = torch.tensor(list(BUCKETS_32_128))
    got = fn(d, 32, 128)
    _require(torch.is_tensor(got) and got.shape == d.shape and not got.is_floating_point(), 6,
             "one integer bucket per distance, same shape as the input")
    for dist, want in BUCKETS_32_128.items():
        have = int(got[list(BUCKETS_32_128).index(dist)])
        if have != want:
            side = "after" if dist > 0 else "before" if dist < 0 else "at"
            raise CheckFailed(f"Task 6: a key {abs(dist)} positions {side} the query falls in T5 bucket {want} "
                              f"(32 buckets, max distance 128); yours {have}")
    far = torch.arange(-300, 301)
    b = fn(far, 32, 128)
    _require(int(b.min()) >= 0 and int(b.max()) < 32, 6, "buckets lie in [0, num_buckets)")
    pos, neg = b[301:], b[:300].flip(0)  # distances 1..300 and -1..-300
    _require(bool((pos == neg + 16).all()), 6, "keys after the query use the upper half: bucket(+d) = bucket(-d) "
                                                "+ num_buckets / 2 (a one-sided bucket cannot tell left from right)")
    _require(bool((neg[1:] >= neg[:-1]).all()), 6, "buckets never decrease as the distance grows")
    d2 = torch.arange(-12, 13)
    _require(fn(d2, 8, 16).tolist() == [3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 0, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7], 6,
             "num_buckets and max_distance are parameters: 8 buckets, max distance 16 give "
             "[3]*7 + [2]*4 + [1, 0, 5] + [6]*4 + [7]*7 for distances -12..12")
    _require(fn(d.view(23, 1).expand(23, 3), 32, 128).shape == (23, 3), 6, "any input shape is kept")
    return _passed(6, "relative position buckets", len(BUCKETS_32_128) + 5)


# ------------------------------------------------------------------------------ task 7

def cached_step_inputs(fn=None) -> str:
    """One decoding step: feed y_{t-1} and a [P], mask them as fine-tuning does, cache the real token only."""
    if fn is None:
        from pmlm.finetune.decoding import cached_step_inputs as fn
    P_ID = 99
    start = torch.tensor([4, 3])  # two hypotheses; the second source has 3 tokens and one padding key
    key_valid = torch.tensor([[True, True, True, True], [True, True, True, False]])
    ids, pos, mask, keep = fn(None, start, 1, P_ID, key_valid, 64)
    _require(ids.tolist() == [[P_ID], [P_ID]], 7, f"step 1 feeds one [P] per row (nothing generated yet); got {ids.tolist()}")
    _require(pos.tolist() == [[4], [3]], 7, "the [P] of step 1 sits at the first target position, right "
                                             f"after the source; got {pos.tolist()}")
    _require(mask.shape == (2, 1, 5) and mask.dtype == torch.bool, 7,
             f"the mask covers the cached keys then the new tokens: (R, T, P + T) = (2, 1, 5); got {tuple(mask.shape)}")
    _require(mask[:, 0, :4].tolist() == key_valid.tolist() and bool(mask[:, 0, 4].all()), 7,
             "the [P] sees every real cached key (not the source padding) and itself")
    _require(keep == 0, 7, "a [P] never joins the cache: at step 1 nothing is kept")
    prev = torch.tensor([7, 8])
    ids, pos, mask, keep = fn(prev, start, 3, P_ID, torch.cat([key_valid, torch.ones(2, 1, dtype=torch.bool)], 1), 64)
    _require(ids.tolist() == [[7, P_ID], [8, P_ID]], 7,
             f"step t feeds the real y_(t-1), then the [P] that predicts y_t; got {ids.tolist()}")
    _require(pos.tolist() == [[5, 6], [4, 5]], 7, "position reuse as in fine-tuning: y_(t-1) at start + t - 2, "
                                                   f"its successor's [P] at start + t - 1; got {pos.tolist()}")
    _require(mask.shape == (2, 2, 7), 7, f"mask shape (R, T, P + T) = (2, 2, 7); got {tuple(mask.shape)}")
    _require(not bool(mask[:, 0, 6].any()), 7, "the real y_(t-1) must not see the [P] that follows it: "
                                               "source and real target tokens never attend later tokens")
    _require(bool(mask[:, 1, 5].all()), 7, "the [P] of step t must see the real y_(t-1) fed with it")
    _require(bool(mask[:, :, 5:].diagonal(dim1=1, dim2=2).all()), 7, "every new token sees itself")
    _require(mask[1, 1, :5].tolist() == [True, True, True, False, True], 7,
             "the new tokens see the cached real keys, never the source padding")
    _require(keep == 1, 7, "only y_(t-1) joins the cache (keep=1); the [P] is dropped after the step, "
                           "so the next step's [P] does not see it")
    _, pos_end, _, _ = fn(prev, torch.tensor([62, 3]), 3, P_ID, torch.ones(2, 5, dtype=torch.bool), 64)
    _require(int(pos_end.max()) <= 63, 7, "positions are clamped below max_positions")
    return _passed(7, "cached decoding step", 14)


task1, task2, task3, task4 = sample_blocks, replacement_tokens, layout_1d, may_attend
task5, task6, task7 = losses, relative_position_bucket, cached_step_inputs
BY_TASK = {1: sample_blocks, 2: replacement_tokens, 3: layout_1d, 4: may_attend, 5: losses,
           6: relative_position_bucket, 7: cached_step_inputs}
