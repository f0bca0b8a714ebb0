"""Independent references the grading tests compare a student's code against (grader side only).

Written from the paper's statements in plain Python, one cell or one token at a time, and kept out
of the student copy: none of them may be the package's own code, or a bug shared by both would pass.
"""

from __future__ import annotations

import math

import torch

IGNORE = -100


def allowed(q: int, k: int) -> bool:
    """The rule table of section 3.2 on step ids (0 context, -i [P] of step i, +i original of step i)."""
    if k == 0:  # context keys: everybody
        return True
    if q == 0:  # context queries: context only
        return False
    if q < 0:  # [P] of step -q: its own step's [P]s, the originals of earlier steps
        return k == q or 0 < k < -q
    return 0 < k <= q  # original of step q: originals of steps <= q


def reference_attention_mask(step_ids: list[int]) -> list[list[bool]]:
    """The rule table cell by cell (L x L nested lists, True = may attend)."""
    return [[allowed(q, k) for k in step_ids] for q in step_ids]


def layout(tokens: list[int], steps: list[list[int]], context: list[int], pseudo: int,
           segments: list[int] | None = None, drop_last: bool = False) -> dict[str, list[int]]:
    """The layout of Figs. 1 and 4 token by token: context, then per step its [P]s and original copies."""
    n = len(tokens)
    segments = segments or [0] * n
    masked = {p for s in steps for p in s}
    out = {"input_ids": list(context), "position_ids": list(range(n)), "segment_ids": list(segments),
           "step_ids": [0] * n, "ae_labels": [tokens[p] if p in masked else IGNORE for p in range(n)],
           "par_labels": [IGNORE] * n}
    for i, block in enumerate(steps, start=1):
        kinds = [("pseudo", -i)] + ([] if drop_last and i == len(steps) else [("copy", i)])
        for kind, sid in kinds:
            for p in block:
                out["input_ids"].append(pseudo if kind == "pseudo" else tokens[p])
                out["position_ids"].append(p)
                out["segment_ids"].append(segments[p])
                out["step_ids"].append(sid)
                out["ae_labels"].append(IGNORE)
                out["par_labels"].append(tokens[p] if kind == "pseudo" else IGNORE)
    return out


def t5_bucket(distance: int, num_buckets: int, max_distance: int) -> int:
    """T5's bidirectional bucket of one signed distance (key position - query position)."""
    half = num_buckets // 2
    base = half if distance > 0 else 0
    d = abs(distance)
    exact = half // 2
    if d < exact:
        return base + d
    far = exact + int(math.log(d / exact) / math.log(max_distance / exact) * (half - exact))
    return base + min(far, half - 1)


def mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> tuple[float, float, int]:
    """(mean cross entropy, accuracy, count) over the selected rows, one row at a time."""
    total, correct, count = 0.0, 0, 0
    for r in range(logits.shape[0]):
        if not bool(rows[r]):
            continue
        row = logits[r].double()
        log_z = math.log(sum(math.exp(v - float(row.max())) for v in row.tolist())) + float(row.max())
        total += log_z - float(row[int(labels[r])])
        correct += int(int(row.argmax()) == int(labels[r]))
        count += 1
    return (total / count if count else 0.0), (correct / count if count else 0.0), count


def naive_step_logits(model, ex, step: int) -> torch.Tensor:
    """PAR logits of one step from its own pass: the context, the originals of earlier steps and its
    [P]s, with the rule written here (not the package's), the way one would compute PAR without
    pseudo masks (section 3.2)."""
    sid = ex.step_ids.tolist()
    keep = [j for j, s in enumerate(sid) if s == 0 or 0 < s < step or s == -step]
    kinds = [sid[j] for j in keep]
    mask = torch.tensor([[allowed(q, k) for k in kinds] for q in kinds]).unsqueeze(0)  # (1, L_i, L_i)
    pick = lambda name: getattr(ex, name)[keep].unsqueeze(0)  # noqa: E731  (L_i,) -> (1, L_i)
    logits = model(pick("input_ids"), pick("position_ids"), mask, pick("segment_ids"))[0]
    return logits[[i for i, k in enumerate(kinds) if k == -step]]


def recompute_logprobs(model, source: list[int], prefix: list[int], ids: dict[str, int]) -> torch.Tensor:
    """log p(y_t | source, y_<t) by encoding [SOS] source [EOS] y_<t [P] from scratch with the rule here."""
    src = [ids["sos"]] + source + [ids["eos"]]
    n, t = len(src), len(prefix) + 1
    seq = src + prefix + [ids["pseudo"]]
    kinds = [0] * n + list(range(1, t)) + [-t]
    mask = torch.tensor([[allowed(q, k) for k in kinds] for q in kinds]).unsqueeze(0)
    ids_t = torch.tensor([seq])
    hidden = model.encode(ids_t, torch.arange(len(seq)).unsqueeze(0), mask, torch.tensor([[0] * n + [1] * t]))
    return torch.log_softmax(model.head(hidden[0, -1]).float(), -1)
