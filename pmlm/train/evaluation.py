"""Validation: AE and PAR loss, accuracy and masked bits per character on fixed batches.

What is reported (:mod:`pmlm.metrics` says why):

* ``val_ae_m_loss``, ``val_ae_m_acc``, ``val_ae_m_bpc`` and the same for PAR: on the masked
  positions that the context shows as ``[M]`` only (80% of them), where the model cannot copy the
  token; ``unigram_m_loss``, ``unigram_m_acc``, ``unigram_m_bpc``: the training-split word-piece
  frequencies scored on the very same tokens, the baseline a model must beat. These are the
  headline numbers.
* ``val_ae_m_word_acc``, ``val_par_m_word_acc``, ``unigram_m_word_acc`` (and ``val_m_word_tokens``):
  the same accuracies on the ``[M]`` tokens that are part of a word, punctuation left out
  (:func:`pmlm.metrics.word_pieces`); the baseline guesses the most frequent word piece.
* ``val_ae_loss``, ``val_ae_acc``, ``val_par_loss``, ``val_par_acc``: over every labelled position,
  the 10% kept and 10% random ones included (what training optimises).

Choices where the paper is silent, and why:

* Validation always lays out AE *and* PAR (the context half is BERT's masked LM whatever is
  appended, see :mod:`pmlm.attention`), so every Table 6 row reports both AE and PAR numbers; it
  uses a fixed set of examples and fixed masks (the loop builds the batches once, with a seeded
  generator), so successive evaluations are comparable.
* Loss and accuracy are means over tokens, not over batches: a batch with few masked tokens
  counts for few.
"""

from __future__ import annotations

import torch

from pmlm.data import Corpus, unigram_log_probs
from pmlm.metrics import MetricSums, piece_characters, row_scores, shown_as_mask, word_pieces
from pmlm.model import PMLMModel
from pmlm.tokenizer import SPECIAL_TOKENS, make_collator, special_ids
from pmlm.train.batches import to_device
from pmlm.train.config import TrainConfig


@torch.no_grad()
def evaluate(model: PMLMModel, batches: list[dict[str, torch.Tensor]], device: torch.device,
             autocast: bool, *, mask_id: int, unigram_log_probs: torch.Tensor,
             piece_chars: torch.Tensor, is_word: torch.Tensor | None = None) -> dict[str, float]:
    """Token-weighted scores over fixed validation batches (see the module docstring for the keys).

    ``unigram_log_probs`` (V,) are the training split's log word-piece frequencies
    (:func:`pmlm.data.unigram_log_probs`), ``piece_chars`` (V,) the characters of each piece
    (:func:`pmlm.metrics.piece_characters`), ``is_word`` (V,) bool the pieces that are part of a
    word (:func:`pmlm.metrics.word_pieces`; without it no word accuracy is reported).
    """
    if is_word is not None and (is_word.dtype != torch.bool or is_word.shape != unigram_log_probs.shape):
        raise ValueError(f"is_word must be a bool tensor of the vocabulary's size {tuple(unigram_log_probs.shape)}, "
                         f"got {is_word.dtype} {tuple(is_word.shape)}: use pmlm.metrics.word_pieces(vocab)")
    was_training = model.training
    model.eval()
    log_p = unigram_log_probs.double().cpu()
    guess = int(log_p.argmax())
    chars_of = piece_chars.cpu()
    words_of = None if is_word is None else is_word.cpu()
    word_guess = None if words_of is None else int(log_p.masked_fill(~words_of, -float("inf")).argmax())
    sums = {name: MetricSums() for name in ("ae", "par", "ae_m", "par_m", "unigram_m")}
    words = None if words_of is None else {name: MetricSums() for name in ("ae_m", "par_m", "unigram_m")}
    for batch in batches:
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits, labels, is_ae, rows = model.labelled_logits(batch)  # (N, V), (N,), (N,), (B, L)
        nats, correct = row_scores(logits.float(), labels)  # (N,) each
        nats, correct, labels, is_ae = nats.cpu(), correct.cpu(), labels.cpu(), is_ae.cpu()
        masked = shown_as_mask(batch["input_ids"], batch["position_ids"], mask_id)[rows].cpu()  # (N,)
        chars = chars_of[labels]  # (N,)
        for name, keep in (("ae", is_ae), ("par", ~is_ae), ("ae_m", is_ae & masked),
                           ("par_m", ~is_ae & masked)):
            sums[name].add(nats[keep], correct[keep], chars[keep])
        keep = is_ae & masked  # each [M] token once: the same tokens as the [M]-only PAR rows
        sums["unigram_m"].add(-log_p[labels[keep]], labels[keep] == guess, chars[keep])
        if words is not None:
            word = masked & words_of[labels]  # (N,): the [M]-only rows whose token is part of a word
            for name, keep in (("ae_m", is_ae & word), ("par_m", ~is_ae & word)):
                words[name].add(nats[keep], correct[keep], chars[keep])
            keep = is_ae & word
            words["unigram_m"].add(-log_p[labels[keep]], labels[keep] == word_guess, chars[keep])
    model.train(was_training)
    out = {}
    for name, s in sums.items():
        r = s.result()
        prefix = name if name.startswith("unigram") else f"val_{name}"
        out[f"{prefix}_loss"], out[f"{prefix}_acc"] = r["loss"], r["acc"]
        if name != "ae" and name != "par":
            out[f"{prefix}_bpc"] = r["bpc"]
    for name, s in (words or {}).items():
        out[f"{name if name.startswith('unigram') else 'val_' + name}_word_acc"] = s.result()["acc"]
    out["val_m_tokens"] = sums["ae_m"].result()["count"]
    if words is not None:
        out["val_m_word_tokens"] = words["ae_m"].result()["count"]
    return out


class Evaluator:
    """``evaluator(step)`` -> the val record: fixed examples, fixed masks, built once on rank 0."""

    def __init__(self, cfg: TrainConfig, corpus: Corpus, model: PMLMModel, device: torch.device,
                 autocast: bool) -> None:
        tok = corpus.tokenizer
        val = corpus.validation
        examples = [val[i] for i in range(min(cfg.eval_examples, len(val)))]
        self.batches = fixed_batches(tok, examples, seed=cfg.seed + 12345, batch_size=cfg.batch_size,
                                     factorization=cfg.factorization)
        self.model, self.device, self.autocast = model, device, autocast
        self.kw = scoring_inputs(tok, unigram_log_probs(corpus))

    def __call__(self, step: int) -> dict:
        return {"step": step, "split": "val",
                **evaluate(self.model, self.batches, self.device, self.autocast, **self.kw)}


def describe_val(val: dict) -> str:
    """One line for the progress bar: the [M]-only scores beside the unigram baseline."""
    f = lambda key: "-" if val.get(key) is None else f"{val[key]:.3f}"  # noqa: E731  (no [M] token: -)
    return (f"step {val['step']}: [M]-only AE acc {f('val_ae_m_acc')} bpc {f('val_ae_m_bpc')} "
            f"| PAR acc {f('val_par_m_acc')} bpc {f('val_par_m_bpc')} "
            f"| unigram acc {f('unigram_m_acc')} bpc {f('unigram_m_bpc')}")


def score_examples(model: PMLMModel, tok, examples: list[list[int]], *, unigram: torch.Tensor,
                   seed: int = 0, batch_size: int = 32, factorization: str = "block",
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """:func:`evaluate` on packed ``examples`` with fixed masks drawn from ``seed``: the scores of
    any held-out text (another corpus, a task's validation split) with the same definitions.

    ``unigram`` (V,) are the log word-piece frequencies of the *training* text of the model
    (:func:`pmlm.data.unigram_log_probs`), the baseline it is compared with.
    """
    if not examples:
        raise ValueError("no examples to score: pack some text first (pmlm.data.pack_documents)")
    batches = fixed_batches(tok, examples, seed=seed, batch_size=batch_size, factorization=factorization)
    return evaluate(model, batches, torch.device(device), False, **scoring_inputs(tok, unigram))


def fixed_batches(tok, examples: list[list[int]], *, seed: int, batch_size: int,
                  factorization: str = "block") -> list[dict[str, torch.Tensor]]:
    """Validation batches of ``examples`` with AE and PAR laid out and masks fixed by ``seed``."""
    collator = make_collator(tok, objective="ae+par", factorization=factorization,
                             max_length=max(len(e) for e in examples), generator=torch.Generator().manual_seed(seed))
    return [collator(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]


def scoring_inputs(tok, unigram: torch.Tensor) -> dict:
    """The keyword arguments of :func:`evaluate` that come from the tokenizer and the unigram model."""
    return dict(mask_id=special_ids(tok)["mask"], unigram_log_probs=unigram,
                piece_chars=piece_characters(tok.get_vocab(), set(SPECIAL_TOKENS)),
                is_word=word_pieces(tok.get_vocab(), set(SPECIAL_TOKENS)))


@torch.no_grad()
def accuracy_by_step(model: PMLMModel, batches: list[dict[str, torch.Tensor]], mask_id: int,
                     max_step: int = 8) -> list[dict]:
    """AE and PAR ``[M]``-only accuracy of the same tokens, grouped by their factorization step.

    A token of step i is predicted by PAR from its ``[P]``, which has seen the originals of steps
    1..i-1 (Eq. 5), and by AE from its ``[M]``, which sees none of them (Eq. 4): does a later step,
    which sees more, predict better? Steps from ``max_step`` on are pooled. Returns one dict per
    step: ``step``, ``tokens``, ``ae_acc``, ``par_acc``.
    """
    was_training = model.training
    model.eval()
    sums: dict[int, list[float]] = {}
    for batch in batches:
        logits, labels, is_ae, rows = model.labelled_logits(batch)  # (N, V), (N,), (N,), (B, L)
        correct = logits.argmax(-1) == labels  # (N,)
        shown = shown_as_mask(batch["input_ids"], batch["position_ids"], mask_id)[rows]  # (N,)
        # each masked token's step: its [P]'s step id, and for its AE row that of the [P] at its position
        step_ids = batch["step_ids"]
        B, L = step_ids.shape
        pseudo = step_ids < 0  # (B, L)
        pos = batch["position_ids"].masked_fill(~pseudo, L)  # (B, L): positions of [P]s, L elsewhere
        step_at = torch.zeros(B, L + 1, dtype=torch.long, device=step_ids.device).scatter_(
            1, pos, -step_ids.masked_fill(~pseudo, 0))
        row_step = torch.where(pseudo, -step_ids, step_at[:, :L].gather(1, batch["position_ids"]))[rows]  # (N,)
        for name, keep in (("ae", is_ae & shown), ("par", ~is_ae & shown)):
            for s, c in zip(row_step[keep].clamp(max=max_step).tolist(), correct[keep].tolist()):
                entry = sums.setdefault(s, [0.0, 0.0, 0.0, 0.0])
                entry[0 if name == "ae" else 2] += c
                entry[1 if name == "ae" else 3] += 1
    model.train(was_training)
    return [{"step": s, "tokens": int(v[3]), "ae_acc": v[0] / max(v[1], 1), "par_acc": v[2] / max(v[3], 1)}
            for s, v in sorted(sums.items())]
