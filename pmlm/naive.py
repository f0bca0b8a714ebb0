"""The straightforward way PMLM replaces: one forward pass per factorization step (section 3.2).

Without pseudo masks, the partially autoregressive (PAR) objective needs a separate pass for each
factorization step i, over what step i may know: the context (masked positions shown as ``[M]``),
the original tokens of the steps before i, and a query slot for each token of step i. Together
with the autoencoding (AE) pass over the context alone, that is ``1 + s`` passes for ``s`` steps.
PMLM lays all of them out in one sequence of ``n + 2m`` tokens (fewer without the last step's
copies) and lets the attention mask keep the steps apart, so the context is encoded once.

This module builds the per-step passes from what each step may know: a pass holds only the tokens
step i may see, so no later original is there to leak; inside the short pass the rule of
:func:`pmlm.pmlm_attention_mask` orders the originals among themselves. Notebook 3 and
``tests/test_naive.py`` check that the single pass gives the same predictions (the grader of the
course kit does it again with the rule written out independently):

* :func:`context_logits`: the AE pass, BERT's masked LM on the n context tokens, full attention;
* :func:`step_inputs` / :func:`stepwise_logits`: the PAR pass of each step;
* :func:`one_pass_logits`: the same predictions read off the single PMLM pass;
* :func:`pass_costs`: tokens processed both ways.

Dropout must be off (``model.eval()``) for the two ways to agree.
"""

from __future__ import annotations

import torch

from pmlm.attention import pmlm_attention_mask


def _row(example, idx: list[int], name: str) -> torch.Tensor:
    return getattr(example, name)[idx].unsqueeze(0)  # (L_i,) -> (1, L_i)


def context_logits(model, example) -> torch.Tensor:
    """(n, V) logits of the context alone: every context token attends every other, nothing else."""
    n = example.num_context
    idx = list(range(n))
    full = torch.ones(1, n, n, dtype=torch.bool)  # (1, n, n): BERT's bidirectional attention
    return model(_row(example, idx, "input_ids"), _row(example, idx, "position_ids"), full,
                 _row(example, idx, "segment_ids"))[0]


def step_inputs(example, step: int) -> dict:
    """The sequence of one naive PAR pass for ``step`` (1-based), taken from the example's layout.

    Tokens: the n context tokens, then the original copies of steps 1..step-1, then the ``[P]`` of
    ``step``; what each may see (True = may attend), by the rule table on their step ids:

    * a context token: the context (the context never depends on the appended tokens);
    * an original of step j: the context and the originals of steps <= j;
    * a ``[P]`` of ``step``: the context, every original kept here (all of steps < step), and the
      ``[P]`` of its own step.

    Returns ``index`` (positions in the full layout of the L_i tokens kept), ``pseudo`` (positions
    of the ``[P]`` rows inside the short sequence) and the (1, L_i) / (1, L_i, L_i) model inputs.
    """
    sid = example.step_ids.tolist()
    if not 1 <= step <= len(example.steps):
        raise ValueError(f"step must lie in 1..{len(example.steps)}, got {step}")
    context = [j for j, s in enumerate(sid) if s == 0]
    earlier = [j for j, s in enumerate(sid) if 0 < s < step]
    pseudo = [j for j, s in enumerate(sid) if s == -step]
    index = context + earlier + pseudo
    kinds = [sid[j] for j in index]  # 0 context, j > 0 original of step j, -step a [P]

    mask = pmlm_attention_mask(torch.tensor(kinds)).unsqueeze(0)  # (1, L_i, L_i)
    return {"index": index, "pseudo": list(range(len(context) + len(earlier), len(index))),
            "input_ids": _row(example, index, "input_ids"),
            "position_ids": _row(example, index, "position_ids"),
            "segment_ids": _row(example, index, "segment_ids"), "attention_mask": mask}


def stepwise_logits(model, example) -> list[torch.Tensor]:
    """One pass per step: the (|step i|, V) logits at the ``[P]`` of each step i, in order."""
    out = []
    for step in range(1, len(example.steps) + 1):
        inp = step_inputs(example, step)
        logits = model(inp["input_ids"], inp["position_ids"], inp["attention_mask"], inp["segment_ids"])
        out.append(logits[0, inp["pseudo"]])  # (|step|, V)
    return out


def one_pass_logits(model, example) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The single PMLM pass: (n, V) context logits (AE) and the per-step ``[P]`` logits (PAR)."""
    logits = model(example.input_ids.unsqueeze(0), example.position_ids.unsqueeze(0),
                   example.attention_mask.unsqueeze(0), example.segment_ids.unsqueeze(0))[0]  # (L, V)
    sid = example.step_ids.tolist()
    steps = [logits[[j for j, s in enumerate(sid) if s == -i]] for i in range(1, len(example.steps) + 1)]
    return logits[: example.num_context], steps


def pass_costs(example) -> dict[str, int]:
    """Passes and tokens: one PMLM pass of L tokens vs. 1 + s naive passes."""
    n, s = example.num_context, len(example.steps)
    m = sum(len(b) for b in example.steps)
    lengths = [n] + [n + sum(len(b) for b in example.steps[: i - 1]) + len(example.steps[i - 1])
                     for i in range(1, s + 1)]
    return {"n": n, "m": m, "steps": s, "pmlm_passes": 1, "pmlm_tokens": example.length,
            "naive_passes": 1 + s, "naive_tokens": sum(lengths)}
