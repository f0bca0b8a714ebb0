"""Fine-tuned models as files, so that they can be used afterwards (``pmlm.predict``).

A fine-tuned model is saved in the format of :meth:`pmlm.PMLMModel.save_pretrained` (the
backbone's ``config.json``, ``model.safetensors``, ``tokenizer.json``), plus:

* ``task.json``: ``{"task": "classify", "labels": [...], "max_length": ...}`` or ``{"task": "seq2seq",
  "max_source_len": ..., "max_target_len": ..., "decode": {...}}``, and the fine-tuning metrics;
* ``head.safetensors`` (classification only): the classifier head on the pooled state (``[SOS]`` or
  the mean, as ``task.json`` says).

All of them are one save (``files`` of ``save_pretrained``), written whole or not at all
(:func:`pmlm.model_files.write_directory`): a save killed over an earlier model leaves that model,
never the new backbone beside the old head; a full or read-only disk is one
:class:`~pmlm.model_files.ModelWriteError` with the earlier model untouched.

:func:`load_finetuned` reads it back, checking the task metadata, the head and the vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from pmlm.finetune.decoding import DecodeConfig
from pmlm.finetune.heads import PMLMClassifier
from pmlm.model import PMLMModel
from pmlm.model_files import read_json, read_tensors
from pmlm.pretrained import load_model

TASK_FILE = "task.json"
HEAD_FILE = "head.safetensors"
TASKS = ("classify", "seq2seq")


@dataclass
class FineTuned:
    """A loaded fine-tuned model: ``model`` is a PMLMClassifier (classify) or a PMLMModel (seq2seq)."""

    task: str
    model: torch.nn.Module
    tokenizer: Tokenizer
    meta: dict


def save_classifier(clf: PMLMClassifier, tok: Tokenizer, directory: str | Path, *, labels: list[str],
                    max_length: int, metrics: dict | None = None) -> Path:
    """Write a fine-tuned classifier: backbone files, ``head.safetensors`` and ``task.json``."""
    from safetensors.torch import save

    if len(labels) != clf.head[-1].out_features:
        raise ValueError(f"{len(labels)} class names for a head of {clf.head[-1].out_features} classes")
    meta = {"task": "classify", "labels": list(labels), "max_length": max_length,
            "head_dropout": clf.head[0].p, "pooling": clf.pooling, "metrics": metrics or {}}
    head = {k: v.detach().cpu().contiguous() for k, v in clf.head.state_dict().items()}
    return clf.backbone.save_pretrained(directory, tokenizer=tok, files={  # one save: backbone and head
        TASK_FILE: json.dumps(meta, indent=2) + "\n", HEAD_FILE: save(head, metadata={"format": "pt"})})


def save_seq2seq(model: PMLMModel, tok: Tokenizer, directory: str | Path, *, max_source_len: int,
                 max_target_len: int, decode: DecodeConfig, metrics: dict | None = None) -> Path:
    """Write a fine-tuned seq2seq model: the model files and ``task.json`` with its decoding settings."""
    meta = {"task": "seq2seq", "max_source_len": max_source_len, "max_target_len": max_target_len,
            "decode": asdict(decode), "metrics": metrics or {}}
    return model.save_pretrained(directory, tokenizer=tok, files={TASK_FILE: json.dumps(meta, indent=2) + "\n"})


def load_finetuned(directory: str | Path) -> FineTuned:
    """A model written by :func:`save_classifier` or :func:`save_seq2seq`, in eval mode."""
    directory = Path(directory)
    model, tok = load_model(directory)
    meta = read_json(directory / TASK_FILE, "not a fine-tuned model (save one with python -m pmlm.finetune ... --save DIR)")
    if meta.get("task") not in TASKS:
        raise ValueError(f"{directory / TASK_FILE} names task {meta.get('task')!r}; expected one of {TASKS}")
    needed = {"seq2seq": ("max_source_len", "max_target_len", "decode"), "classify": ("labels", "max_length")}
    missing = [k for k in needed[meta["task"]] if k not in meta]
    if missing:
        raise ValueError(f"{directory / TASK_FILE} lacks {missing}: the file is corrupt; save the model again")
    if meta["task"] == "seq2seq":
        try:
            meta["decode"] = DecodeConfig(**meta["decode"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{directory / TASK_FILE} holds invalid decoding settings: {err}") from None
        return FineTuned("seq2seq", model, tok, meta)
    labels = meta.get("labels") or []
    if len(labels) < 2:
        raise ValueError(f"{directory / TASK_FILE} lists {len(labels)} class names; a classifier needs two or more")
    path = directory / HEAD_FILE
    head = read_tensors(path, "the classifier head was not saved")
    try:
        clf = PMLMClassifier(model, len(labels), meta.get("head_dropout", 0.1), meta.get("pooling", "sos"))
    except ValueError as err:
        raise ValueError(f"{directory / TASK_FILE}: {err}; the file is corrupt, save the model again") from None
    try:
        clf.head.load_state_dict(head)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit a head of {len(labels)} classes on hidden size "
                         f"{model.config.hidden_size}: {str(err).splitlines()[0]}") from None
    return FineTuned("classify", clf.eval(), tok, meta)
