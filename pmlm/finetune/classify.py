"""Classification fine-tuning (NLU, section 3.4 of the paper).

Input ``[SOS] text [EOS]``, fully bidirectional (every step id 0, so :func:`pmlm.pmlm_attention_mask`
gives "every real token sees every real token", padding seen by nobody); a classifier on the
top-layer state of ``[SOS]``::

    logits = W2 tanh(W1 dropout(h_[SOS]))        h_[SOS]: (B, H), logits: (B, C)

Choices where the paper is silent (ours): the head is BERT's pooler (dense + tanh, freshly
initialised, since PMLM pre-training has no sentence-level task) and a linear layer; texts longer
than ``max_length`` are truncated (standard for classification); the model kept is the epoch with
the best validation accuracy, and test accuracy is reported for that model only.

``finetune_classify(model, tok, splits, cfg)`` is the whole procedure; ``python -m pmlm.finetune
classify`` the command line (:mod:`pmlm.finetune.__main__`); the classifier itself is
:class:`pmlm.finetune.heads.PMLMClassifier`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from pmlm.finetune.common import (check_finite_step, check_settings, check_vocab, encode_texts, make_optimizer,
                                  minibatches, pad_ids, set_seed)
from pmlm.finetune.heads import POOLINGS, PMLMClassifier  # noqa: F401  (re-exported: the model this trains)
from pmlm.model import PMLMModel
from pmlm.tokenizer import special_ids


@dataclass
class ClassifyConfig:
    lr: float = 1e-4  # BERT/UniLM fine-tuning range (1e-5 .. 1e-4); small models take the upper end
    batch_size: int = 32  # BERT's GLUE value
    epochs: int = 3  # BERT's GLUE value; the best validation epoch is kept
    max_steps: int | None = None  # optional cap on optimiser steps (smoke runs)
    warmup: float = 0.1  # share of the steps with linear warm-up, BERT's value
    weight_decay: float = 0.01  # paper's pre-training value, kept for fine-tuning
    max_length: int = 64  # tokens with [SOS]/[EOS]; a Rotten Tomatoes sentence has ~25 words
    dropout: float = 0.1  # on the [SOS] state and the pooled state, BERT's value
    pooling: str = "sos"  # "sos": the top [SOS] state (the paper, BERT); "mean": mean of the real tokens' states
    train_limit: int | None = None  # use a fixed sample of this many training sentences
    eval_limit: int | None = None  # ... and of validation/test sentences
    eval_batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)  # lr, batch size, epochs, step cap: refused before any work
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "ClassifyConfig":
        if name not in CLASSIFY_PRESETS:
            raise ValueError(f"unknown classify preset {name!r}; choose one of {sorted(CLASSIFY_PRESETS)}")
        return replace(CLASSIFY_PRESETS[name], **overrides)


CLASSIFY_PRESETS = {
    # seconds on a CPU: a sample of the sentences, one epoch
    "smoke": ClassifyConfig(lr=3e-4, epochs=1, max_steps=60, train_limit=1920, eval_limit=400),
    # minutes on 2 CPU cores: all ~10k training sentences, 2 epochs
    "tiny": ClassifyConfig(lr=3e-4, epochs=2),
    # one GPU: the full recipe
    "small": ClassifyConfig(lr=1e-4, epochs=3),
}


def encode_sentences(tok: Tokenizer, texts: list[str], max_length: int, max_positions: int) -> list[list[int]]:
    """``[SOS] text [EOS]`` ids, the text truncated to fit ``min(max_length, max_positions)``."""
    ids = special_ids(tok)
    limit = min(max_length, max_positions)
    if limit < 3:
        raise ValueError(f"max_length={max_length} leaves no room for a token between [SOS] and [EOS]")
    return [[ids["sos"]] + t[:limit - 2] + [ids["eos"]] for t in encode_texts(tok, texts)]


@torch.no_grad()
def accuracy(clf: PMLMClassifier, seqs: list[list[int]], labels: list[int], pad_id: int,
             batch_size: int = 128) -> float:
    """Top-1 accuracy of ``clf`` on already encoded sequences."""
    was_training = clf.training
    clf.eval()
    correct, dev = 0, next(clf.parameters()).device
    for idx in minibatches(len(seqs), batch_size, shuffle=False):
        input_ids, valid = (t.to(dev) for t in pad_ids([seqs[i] for i in idx], pad_id))
        pred = clf(input_ids, valid).argmax(-1).cpu()  # (B,)
        correct += int((pred == torch.tensor([labels[i] for i in idx])).sum())
    clf.train(was_training)
    return correct / max(1, len(seqs))


def finetune_classify(model: PMLMModel, tok: Tokenizer, splits: dict[str, list[dict]],
                      cfg: ClassifyConfig, *, num_classes: int | None = None,
                      log=print, save: str | Path | None = None, class_names: list[str] | None = None,
                      on_metrics=None) -> dict:
    """Fine-tune ``model`` (changed in place) on ``splits`` ({split: [{"text", "label": int}]}).

    Returns metrics: ``test_acc`` and ``val_acc`` of the best-validation epoch (``best_epoch``, counted
    from 1; ``val_acc_by_epoch`` lists every epoch's), ``majority_acc``
    (test accuracy of always answering the most frequent training class), ``train_loss``
    (mean of the last epoch), ``steps``, ``seconds``, the config. With ``save`` the fine-tuned
    classifier (best validation epoch) is written there (:func:`pmlm.finetune.saved.save_classifier`),
    its classes named by ``class_names`` (default: their indices). ``on_metrics(metrics)`` is called
    before that write, so that a full or read-only disk loses nothing computed (the command line prints them).
    """
    from pmlm.finetune.data import subsample

    ids = check_vocab(model, tok)
    gen = set_seed(cfg.seed)
    data = {"train": subsample(splits["train"], cfg.train_limit, cfg.seed)}
    for name in ("validation", "test"):
        data[name] = subsample(splits.get(name, []), cfg.eval_limit, 0)  # same sample for every seed
    if num_classes is None:
        num_classes = 1 + max(r["label"] for s in data.values() for r in s)
    for name, rows in data.items():
        bad = [r["label"] for r in rows if not 0 <= r["label"] < num_classes]
        if bad:
            raise ValueError(f"{name} split has label {bad[0]!r}, outside the {num_classes} classes")
    seen = sorted({r["label"] for r in data["train"]})
    if len(seen) < 2:  # a classifier of one class learns nothing, and scores 100% on such data
        name = class_names[seen[0]] if class_names and seen else (seen[0] if seen else None)
        raise ValueError(f"the training data holds one class only ({name!r}, {len(data['train'])} rows): "
                         "a classifier needs examples of at least two classes")
    enc = {name: (encode_sentences(tok, [r["text"] for r in rows], cfg.max_length, model.config.max_positions),
                  [r["label"] for r in rows]) for name, rows in data.items()}
    dev = next(model.parameters()).device
    clf = PMLMClassifier(model, num_classes, cfg.dropout, cfg.pooling).to(dev)
    n_train = len(enc["train"][0])
    per_epoch = math.ceil(n_train / cfg.batch_size)
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    optimizer, scheduler = make_optimizer(clf, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                          total_steps=total, warmup=cfg.warmup)
    start, step, best, best_state, losses, by_epoch = time.time(), 0, -1.0, None, [], []
    clf.train()
    for epoch in range(cfg.epochs):
        losses = []
        for idx in minibatches(n_train, cfg.batch_size, shuffle=True, generator=gen):
            input_ids, valid = (t.to(dev) for t in pad_ids([enc["train"][0][i] for i in idx], ids["pad"]))
            labels = torch.tensor([enc["train"][1][i] for i in idx], device=dev)
            loss = F.cross_entropy(clf(input_ids, valid), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(clf.parameters(), 1.0))
            check_finite_step("classify", step + 1, loss.item(), norm, cfg.lr)  # before the step is taken
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step >= total:
                break
        val = accuracy(clf, *enc["validation"], ids["pad"], cfg.eval_batch_size) if enc["validation"][0] else 0.0
        log(f"classify epoch {epoch + 1}: step {step}, train loss {sum(losses) / max(1, len(losses)):.4f}, "
            f"validation acc {val:.4f}")
        by_epoch.append(val)
        if val > best:
            best, best_state = val, copy.deepcopy(clf.state_dict())
        if step >= total:
            break
    clf.load_state_dict(best_state)
    test = accuracy(clf, *enc["test"], ids["pad"], cfg.eval_batch_size)
    majority = max(range(num_classes), key=enc["train"][1].count)  # the baseline: always this class
    majority_acc = enc["test"][1].count(majority) / max(1, len(enc["test"][1]))
    log(f"classify: test acc {test:.4f} (best validation acc {best:.4f}; majority class {majority_acc:.4f})")
    metrics = {"task": "classify", "test_acc": test, "val_acc": best, "majority_acc": majority_acc,
               "best_epoch": 1 + by_epoch.index(best), "val_acc_by_epoch": by_epoch,
               "train_loss": sum(losses) / max(1, len(losses)), "steps": step,
               "n_train": n_train, "n_test": len(enc["test"][0]),
               "seconds": round(time.time() - start, 1), "config": asdict(cfg)}
    if on_metrics is not None:
        on_metrics(metrics)
    if save is not None:
        from pmlm.finetune.saved import save_classifier
        names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        save_classifier(clf, tok, save, labels=names, max_length=cfg.max_length, metrics=metrics)
        metrics["saved"] = str(save)
    return metrics
