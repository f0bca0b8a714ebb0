"""A decoder whose next-token probabilities a test writes down, to check the search by hand.

:func:`scripted` replaces :class:`pmlm.finetune.decoding.CachedStepper` (monkeypatch it in): each
hypothesis row gets the probabilities ``script(prefix)`` returns for its tokens so far, a dict
``{token: probability}``; every other token gets ``REST`` (tiny, so that the search still sees a
full vocabulary). The model passed to ``generate`` only lends its vocabulary size and positions.
"""

import math

import torch

REST = 1e-6


def scripted(script, vocab_size: int):
    """A stepper class for ``monkeypatch.setattr(decoding, "CachedStepper", scripted(script, V))``."""

    class Scripted:
        def __init__(self, model, sources, ids, rows_per_source):
            self.prefix = [[] for _ in range(len(sources) * rows_per_source)]

        def logprobs(self, prev):
            if prev is not None:
                self.prefix = [p + [int(w)] for p, w in zip(self.prefix, prev.tolist())]
            out = torch.full((len(self.prefix), vocab_size), math.log(REST))
            for r, p in enumerate(self.prefix):
                for token, prob in script(p).items():
                    out[r, token] = math.log(prob)
            return out

        def reorder(self, rows):
            self.prefix = [list(self.prefix[r]) for r in rows.tolist()]

    return Scripted


def by_position(steps: list[dict[int, float]]):
    """A script that depends only on the step: ``steps[t - 1]`` at step t (the last one after)."""
    return lambda prefix: steps[min(len(prefix), len(steps) - 1)]
