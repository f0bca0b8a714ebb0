"""The unigram baseline: what "predict a masked token without context" scores (section 4.1's plateau).

A model that has not left the unigram plateau guesses word pieces by their frequency alone; its
loss is the cross entropy of the validation text under the training split's word-piece
frequencies. Every evaluation reports it beside the model's numbers (:mod:`pmlm.train.evaluation`).
Counts come from the split itself (``split.token_counts``): the lists of an in-memory corpus, or
the counts a prepared directory stored when it was written (:mod:`pmlm.data.shards`).
"""

from __future__ import annotations

import torch

from pmlm.tokenizer import special_ids


def token_counts(split, vocab_size: int) -> torch.Tensor:
    """(V,) float64 count of each token id in ``split`` (a packed or a prepared split)."""
    return torch.from_numpy(split.token_counts(vocab_size)).double()


def unigram_log_probs(corpus) -> torch.Tensor:
    """(V,) log-frequencies of the word pieces of the training split, add-one smoothed; special
    tokens, which are never predicted, get the lowest value."""
    tok = corpus.tokenizer
    special = torch.tensor(sorted(special_ids(tok).values()))
    counts = token_counts(corpus.train, tok.get_vocab_size()) + 1.0
    counts[special] = 0.0
    log_p = (counts / counts.sum()).log()  # (V,), -inf at special ids
    log_p[special] = log_p[torch.isfinite(log_p)].min()
    return log_p


def unigram_baseline(corpus) -> dict[str, float]:
    """Loss and accuracy of guessing masked tokens from training-split word-piece frequencies alone.

    The reference a pre-trained model must beat: the cross entropy of the validation text tokens
    under the training unigram distribution (:func:`unigram_log_probs`), and the share of
    validation tokens equal to the most frequent training token. Masked tokens are a near uniform
    sample of the text tokens, so this is what "predict without context" scores.
    """
    log_p = unigram_log_probs(corpus)
    val = token_counts(corpus.validation, log_p.shape[0])
    val[torch.tensor(sorted(special_ids(corpus.tokenizer).values()))] = 0
    return {"unigram_val_loss": float(-(val * log_p).sum() / val.sum()),
            "unigram_val_acc": float(val[int(log_p.argmax())] / val.sum())}
