"""Implementations of the course tasks that the grader must tell apart (tests/test_course.py).

For each task, a *planted bug* (a mistake a student makes, stated in the paper's terms) that must
fail the task, and a *correct implementation written differently from ours* that must pass it. Each
is the whole function, as a student would write it in place of the stub.
"""

PLANTED = {  # task: (what is wrong, function name, source, a phrase the grader's message must hold)
    1: ("blocks allowed to overlap", "sample_blocks", '''
def sample_blocks(num_tokens, *, mask_ratio=0.15, block_prob=0.4, block_len=(2, 6), maskable=None, generator=None):
    maskable = [True] * num_tokens if maskable is None else [bool(m) for m in maskable]
    candidates = [i for i, m in enumerate(maskable) if m]
    rng = python_rng(generator)
    blocks, masked = [], 0
    while masked < mask_ratio * len(candidates):
        p = candidates[rng.randrange(len(candidates))]
        length = rng.randint(*block_len) if rng.random() < block_prob else 1
        if p + length > num_tokens or not all(maskable[p:p + length]):
            continue  # forgets to reject a block that overlaps an earlier one
        blocks.append(list(range(p, p + length)))
        masked += length
    return blocks
''', "masked by two blocks"),
    2: ("random replacements may be special tokens", "replacement_tokens", '''
def replacement_tokens(originals, *, mask_id, vocab_size, replace_probs=(0.8, 0.1, 0.1), special_ids=(), rng):
    out = []
    for tok in originals:
        u = rng.random()
        if u < replace_probs[0]:
            out.append(mask_id)
        elif u < replace_probs[0] + replace_probs[1]:
            out.append(rng.randrange(vocab_size))  # any id, specials included
        else:
            out.append(int(tok))
    return out
''', "never a special token"),
    3: ("positions not reused", "layout_1d", '''
def layout_1d(token_ids, steps, *, context_ids, pseudo_id, segment_ids=None, append=True, drop_last_originals=False):
    n = len(token_ids)
    seg = list(segment_ids) if segment_ids is not None else [0] * n
    ids, pos, segs, sids = list(context_ids), list(range(n)), list(seg), [0] * n
    ae = [IGNORE_INDEX] * n
    for block in steps:
        for p in block:
            ae[p] = int(token_ids[p])
    par = [IGNORE_INDEX] * n
    if append:
        for i, block in enumerate(steps, start=1):
            for kind in ("pseudo", "copy"):
                if kind == "copy" and drop_last_originals and i == len(steps):
                    continue
                for p in block:
                    ids.append(pseudo_id if kind == "pseudo" else int(token_ids[p]))
                    par.append(int(token_ids[p]) if kind == "pseudo" else IGNORE_INDEX)
                    pos.append(len(pos))  # a fresh position instead of the original's
                    segs.append(seg[p])
                    sids.append(-i if kind == "pseudo" else i)
    ae += [IGNORE_INDEX] * (len(ids) - n)
    t = lambda xs: torch.tensor(xs, dtype=torch.long)
    return {"input_ids": t(ids), "position_ids": t(pos), "segment_ids": t(segs), "step_ids": t(sids),
            "ae_labels": t(ae), "par_labels": t(par)}
''', "position reuse"),
    4: ("a [P] sees its own original", "may_attend", '''
def may_attend(q, k):
    limit = q.abs() + 1  # originals of steps <= i for everyone, [P]s included
    return (k == 0) | ((q < 0) & (k == q)) | ((q != 0) & (k > 0) & (k < limit))
''', "explicit leak"),
    5: ("summed instead of averaged cross entropy", "grouped_components", '''
def grouped_components(logits, labels, groups):
    per_row = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")
    correct = logits.argmax(-1) == labels
    out = {}
    for name, rows in groups.items():
        count = rows.sum()
        out[name] = {"loss": torch.where(rows, per_row, 0.0).sum(),  # the sum, not the mean
                     "acc": ((correct & rows).sum().float() / count.clamp(min=1)).detach(), "count": count.detach()}
    return out
''', "mean cross entropy"),
    6: ("one-sided buckets", "relative_position_bucket", '''
def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    half = num_buckets // 2
    distance = relative_position.abs()  # left and right share the same buckets
    exact = half // 2
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return torch.where(distance < exact, distance, far)
''', "T5 bucket"),
    7: ("the [P] joins the cache", "cached_step_inputs", '''
def cached_step_inputs(prev, start, t, pseudo_id, key_valid, max_positions):
    R, P = key_valid.shape
    pos_p = (start + t - 1).clamp(max=max_positions - 1)
    pseudo = torch.full((R, 1), pseudo_id, dtype=torch.long)
    if prev is None:
        ids, pos, small = pseudo, pos_p.unsqueeze(1), torch.ones(1, 1, dtype=torch.bool)
    else:
        ids = torch.cat([prev.view(R, 1).long(), pseudo], 1)
        pos = torch.stack([(pos_p - 1).clamp(min=0), pos_p], 1)
        small = torch.tensor([[True, False], [True, True]])
    T = ids.shape[1]
    mask = torch.cat([key_valid.unsqueeze(1).expand(R, T, P), small.expand(R, T, T)], 2)
    return ids, pos, mask, T  # keeps every new token, the [P] too
''', "cache"),
}

# Task 5 spans two functions; the variants above replace grouped_components, and this is the sum of
# Eq. 7 that goes with them (written differently from ours), so that nothing is left stubbed.
COMBINE = '''
def combine(parts, objective):
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    total = 0.0
    for name in OBJECTIVES[objective]:
        total = total + parts[name]["loss"]
    out = {"loss": total}
    for name in ("ae", "par"):
        out[name] = parts[name]["loss"]
        out[f"{name}_acc"] = parts[name]["acc"]
        out[f"{name}_tokens"] = parts[name]["count"]
    return out
'''

CORRECT = {  # task: (function name, source): right, but not our code
    1: ("sample_blocks", '''
def sample_blocks(num_tokens, *, mask_ratio=0.15, block_prob=0.4, block_len=(2, 6), maskable=None, generator=None):
    if num_tokens <= 0 or not 0.0 < mask_ratio < 1.0 or not 1 <= block_len[0] <= block_len[1]:
        raise ValueError("bad arguments")
    ok = [True] * num_tokens if maskable is None else [bool(m) for m in maskable]
    starts = [i for i in range(num_tokens) if ok[i]]
    if not starts:
        return []
    rng = python_rng(generator)
    taken, blocks = set(), []
    while len(taken) < mask_ratio * len(starts):
        span = rng.random() < block_prob           # the length decided before the start
        size = rng.randint(block_len[0], block_len[1]) if span else 1
        first = rng.choice(starts)
        block = list(range(first, first + size))
        if block[-1] >= num_tokens or any((not ok[p]) or p in taken for p in block):
            continue
        taken.update(block)
        blocks.append(block)
    return blocks
'''),
    2: ("replacement_tokens", '''
def replacement_tokens(originals, *, mask_id, vocab_size, replace_probs=(0.8, 0.1, 0.1), special_ids=(), rng):
    if min(replace_probs) < 0 or abs(sum(replace_probs) - 1.0) > 1e-6:
        raise ValueError("replace_probs must be three non-negative numbers summing to 1")
    banned = set(int(s) for s in special_ids) | {mask_id}
    allowed = [i for i in range(vocab_size)] if vocab_size else []
    allowed = [i for i in allowed if i not in banned]
    out = []
    for tok in originals:
        what = rng.choices(("mask", "random", "keep"), weights=replace_probs)[0]
        out.append(mask_id if what == "mask" else rng.choice(allowed) if what == "random" else int(tok))
    return out
'''),
    3: ("layout_1d", '''
def layout_1d(token_ids, steps, *, context_ids, pseudo_id, segment_ids=None, append=True, drop_last_originals=False):
    n = len(token_ids)
    seg = list(segment_ids) if segment_ids is not None else [0] * n
    masked = {p for s in steps for p in s}
    rows = [(int(context_ids[p]), p, seg[p], 0, int(token_ids[p]) if p in masked else IGNORE_INDEX, IGNORE_INDEX)
            for p in range(n)]
    if append:
        for i, block in enumerate(steps, start=1):
            rows += [(pseudo_id, p, seg[p], -i, IGNORE_INDEX, int(token_ids[p])) for p in block]
            if not (drop_last_originals and i == len(steps)):
                rows += [(int(token_ids[p]), p, seg[p], i, IGNORE_INDEX, IGNORE_INDEX) for p in block]
    names = ("input_ids", "position_ids", "segment_ids", "step_ids", "ae_labels", "par_labels")
    return {name: torch.tensor([r[j] for r in rows], dtype=torch.long) for j, name in enumerate(names)}
'''),
    4: ("may_attend", '''
def may_attend(q, k):
    q, k = torch.broadcast_tensors(q, k)
    ctx_q, pseudo_q, orig_q = q == 0, q < 0, q > 0
    return torch.where(k == 0, torch.ones_like(q, dtype=torch.bool),
                       torch.where(ctx_q, torch.zeros_like(q, dtype=torch.bool),
                                   torch.where(pseudo_q, (k == q) | ((k > 0) & (k < -q)),
                                               orig_q & (k > 0) & (k <= q))))
'''),
    5: ("grouped_components", '''
def grouped_components(logits, labels, groups):
    logp = torch.log_softmax(logits.float(), -1)
    safe = labels.clamp(min=0)
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    hit = logits.argmax(-1) == labels
    out = {}
    for name, rows in groups.items():
        n = int(rows.sum())
        loss = nll.masked_fill(~rows, 0.0).sum() / max(n, 1)
        out[name] = {"loss": loss, "acc": torch.tensor(float((hit & rows).sum()) / max(n, 1)),
                     "count": torch.tensor(n)}
    return out
'''),
    6: ("relative_position_bucket", '''
def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    half, exact = num_buckets // 2, num_buckets // 4
    def one(d):
        side = half if d > 0 else 0
        d = abs(d)
        if d < exact:
            return side + d
        return side + min(half - 1, exact + int(math.log(d / exact) / math.log(max_distance / exact) * (half - exact)))
    flat = [one(int(d)) for d in relative_position.reshape(-1).tolist()]
    return torch.tensor(flat, dtype=torch.long).view(relative_position.shape)
'''),
    7: ("cached_step_inputs", '''
def cached_step_inputs(prev, start, t, pseudo_id, key_valid, max_positions):
    R, P = key_valid.shape
    T = 1 if prev is None else 2
    where = (start + t - 1).clamp(max=max_positions - 1)
    ids = torch.full((R, T), pseudo_id, dtype=torch.long)
    pos = where.view(R, 1).repeat(1, T)
    if T == 2:
        ids[:, 0] = prev
        pos[:, 0] = (where - 1).clamp(min=0)
    mask = torch.zeros(R, T, P + T, dtype=torch.bool)
    mask[:, :, :P] = key_valid.unsqueeze(1)
    mask[:, :, P:] = torch.ones(T, T, dtype=torch.bool).tril()
    return ids, pos, mask, T - 1
'''),
}
