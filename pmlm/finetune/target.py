"""One source/target pair as UniLMv2 fine-tunes it (section 3.3, "Fine-tuning"; s2s-ft's layout):
the factorization steps of the target, the example laid out with pseudo masks, and the loss of
the ``[P]`` predictions with s2s-ft's label smoothing.

:mod:`pmlm.finetune.seq2seq` documents the choices (word drop, the smoothing over the vocabulary
less ``[PAD]`` and the label, span targets); ``tests/test_seq2seq_unilmv2.py`` checks the layout
and the loss against s2s-ft's code.
"""

from __future__ import annotations

import math
import random

import torch

from pmlm.layout import IGNORE_INDEX
from pmlm.model import PMLMModel

__all__ = ["seq2seq_example", "seq2seq_loss", "smoothed_loss", "target_steps", "to_device"]


def target_steps(m: int, factorization: str, rng: random.Random, span_prob: float = 0.4,
                 max_span: int = 3) -> list[int]:
    """Step id (1, 2, ...) of each of the m target tokens, in left-to-right order."""
    if factorization == "token":
        return list(range(1, m + 1))
    if factorization != "block":
        raise ValueError(f"factorization must be 'token' or 'block', got {factorization!r}")
    steps: list[int] = []
    step = 0
    while len(steps) < m:
        step += 1
        length = rng.randint(2, max_span) if rng.random() < span_prob else 1
        steps += [step] * min(length, m - len(steps))
    return steps


def seq2seq_example(source: list[int], target: list[int], ids: dict[str, int], *,
                    word_drop: float = 0.0, rng: random.Random | None = None,
                    factorization: str = "token", span_prob: float = 0.4, max_span: int = 3,
                    max_positions: int | None = None) -> dict[str, torch.Tensor]:
    """The (L,) fields of one training example (module docstring); source/target without specials.

    Field names are those of :mod:`pmlm.layout` (targets in ``par_labels``; ``ae_labels`` empty),
    so :func:`pmlm.collator.pad_and_mask` batches them and builds the attention masks.
    """
    if len(target) == 0:
        raise ValueError("empty target: a sequence-to-sequence example needs at least one target token")
    rng = rng or random.Random(0)
    src = [ids["sos"]] + [int(t) for t in source] + [ids["eos"]]
    tgt = [int(t) for t in target] + [ids["eos"]]
    n, m = len(src), len(tgt)
    if max_positions is not None and n + m > max_positions:
        raise ValueError(f"source ({n} tokens with [SOS]/[EOS]) and target ({m} with [EOS]) need {n + m} "
                         f"positions; the model has max_positions={max_positions}. Truncate or drop the pair")
    steps = target_steps(m, factorization, rng, span_prob, max_span)
    shown = [ids["mask"] if rng.random() < word_drop else y for y in tgt]  # word drop on the visible copy
    t = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    L = n + 2 * m
    return {"input_ids": t(src + shown + [ids["pseudo"]] * m),
            "position_ids": t(list(range(n)) + list(range(n, n + m)) * 2),
            "segment_ids": t([0] * n + [1] * (2 * m)),
            "step_ids": t([0] * n + steps + [-s for s in steps]),
            "ae_labels": t([IGNORE_INDEX] * L),
            "par_labels": t([IGNORE_INDEX] * (n + m) + tgt)}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float, pad_id: int = 0) -> torch.Tensor:
    """(N,) s2s-ft's label-smoothed loss of each token: KL(q || softmax(logits)) (module docstring).

    With s = eps / (V - 2) on every token but the label y and ``[PAD]``, and 1 - eps on y::

        KL = (1 - eps) log(1 - eps) + (V - 2) s log s  -  (1 - eps) log p_y  -  s (sum_v log p_v - log p_y - log p_pad)

    computed from the (N, V) log-probabilities without building the (N, V) target distribution.
    A label that is ``[PAD]`` counts 0, as in s2s-ft. ``eps`` 0: cross entropy.
    """
    logp = torch.log_softmax(logits.float(), -1)  # (N, V)
    picked = logp.gather(1, labels[:, None]).squeeze(1)  # (N,) log p_y
    if eps == 0:
        return -picked
    V = logits.shape[-1]
    s = eps / (V - 2)
    entropy = (1 - eps) * math.log(1 - eps) + (V - 2) * s * math.log(s)  # sum_v q_v log q_v
    rest = logp.sum(-1) - picked - logp[:, pad_id]  # (N,) sum of log p over the V - 2 smoothed tokens
    return (entropy - (1 - eps) * picked - s * rest) * (labels != pad_id)


def seq2seq_loss(model: PMLMModel, batch: dict[str, torch.Tensor], label_smoothing: float = 0.1, *,
                 tokens: float | None = None, pad_id: int = 0) -> torch.Tensor:
    """s2s-ft's label-smoothed loss from the ``[P]`` states only, summed over the target tokens and
    divided by ``tokens`` (default: their number here, the mean; the fine-tuning loop gives the
    count of the whole global batch). ``pad_id``: ``[PAD]``, 0 in pmlm's and BERT's vocabularies."""
    rows = batch["par_labels"] != IGNORE_INDEX  # (B, L): the [P]s
    hidden = model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"],
                          batch["segment_ids"], rows=rows, step_ids=batch["step_ids"],
                          valid=batch.get("valid"))  # (N, H): the top layer computes the N [P] rows only
    labels = batch["par_labels"][rows]  # (N,)
    per_token = smoothed_loss(model.head(hidden), labels, label_smoothing, pad_id)  # (N,)
    return per_token.sum() / (labels.numel() if tokens is None else tokens)
