r"""The PMLM self-attention mask (section 3.2, Figs. 4-5).

``mask[..., i, j] == True`` means query token i **may attend** to key token j. Everywhere in this
package, ``True`` means "may attend".

Every token of a PMLM sequence carries a signed *step id*:

* ``0`` for the n context tokens (including the conventional masks ``[M]``);
* ``-i`` for the pseudo masks ``[P]`` of factorization step i (i = 1, 2, ...);
* ``+i`` for the original copies of the tokens of step i.

The rule table, written with those ids (q the query's id, k the key's id)::

    query \ key          context (k = 0)   [P] of step j (k = -j)   original of step j (k = +j)
    context (q = 0)      yes               no                       no
    [P] of step i        yes               iff j == i               iff j < i
    original of step i   yes               no                       iff j <= i

which is, in one boolean expression on whole tensors (no loop over the L x L cells),

.. math::  A_{qk} = [k = 0] \lor [q < 0 \land k = q] \lor [k > 0 \land k < |q| + [q > 0]]

i.e. a ``[P]`` of step i sees the originals of steps < i, an original of step i those of steps <= i.

Why each rule (the paper's "leaks"):

* context rows never see appended tokens, so the context encodings are those of BERT's masked LM
  and serve the autoencoding (AE) loss and, reused, every PAR step in the same pass;
* a ``[P]`` never sees the *appended copy* of its own original (explicit leak) nor any original of
  a later step, and no token it sees has seen one (implicit leak: ``[P]4 -> x6 -> x4`` is cut
  because x6 is context). It does see every context token: where the 80/10/10 replacement kept
  the original (10% of the masked positions) the context shows it, and the ``[P]`` can read it
  there, as an ``[M]`` row can; the ``[M]``-only scores of :mod:`pmlm.metrics` leave those out;
* every step sees all the ``[M]`` of the context: "global masking information".

The official fine-tuning code (microsoft/unilm ``s2s-ft``, ``create_attention_mask``) builds the
same rule from signed step ids. The tests compare :func:`pmlm_attention_mask` with the table written
cell by cell in plain Python (``pmlm/course/autograder/oracles.py``, on the grader's side of the
course kit, since it would give task 4 away).

Padding (``valid == False``) is attended by nobody. A padding *query* attends to itself only, so
that no softmax row is empty (an empty row gives NaN in SDPA); its output is never used.
"""

from __future__ import annotations

import torch


def may_attend(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The rule table on step ids, elementwise: may a query of step id ``q`` attend a key of id ``k``?

    Broadcasts like any tensor expression, so the same function builds the dense (L, L) mask below
    and, one (query, key) pair at a time, FlexAttention's block mask (:mod:`pmlm.model`).
    """
    ### BEGIN SOLUTION
    sees_context = k == 0
    pseudo_same_step = (q < 0) & (k == q)
    # originals of step j are visible to [P] of step i iff j < i, to originals of step i iff j <= i
    limit = q.abs() + (q > 0).long()  # i for a [P], i + 1 for an original, 0 for context
    earlier_original = (k > 0) & (k < limit)
    return sees_context | pseudo_same_step | earlier_original
    ### END SOLUTION


def pmlm_attention_mask(step_ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean attention mask from signed step ids.

    Args:
        step_ids: (..., L) long, 0 context, -i ``[P]`` of step i, +i original of step i.
        valid: optional (..., L) bool, False at padding.

    Returns:
        (..., L, L) bool, True = query (row) may attend key (column).
    """
    mask = may_attend(step_ids.unsqueeze(-1), step_ids.unsqueeze(-2))  # (..., L, 1) x (..., 1, L) -> (..., L, L)
    if valid is not None:
        valid = valid.bool()
        mask = mask & valid.unsqueeze(-1) & valid.unsqueeze(-2)
        eye = torch.eye(step_ids.shape[-1], dtype=torch.bool, device=step_ids.device)
        mask = mask | (eye & ~valid.unsqueeze(-1))  # padding queries attend to themselves only
    return mask

