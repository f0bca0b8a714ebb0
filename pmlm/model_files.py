"""A model as files: ``config.json`` and ``model.safetensors`` (``save_pretrained`` / ``from_pretrained``).

The format of :meth:`pmlm.PMLMModel.save_pretrained`, in a directory::

    config.json          {"model_type": "pmlm", "format_version": 1, "torch_dtype": ..., <PMLMConfig fields>}
    model.safetensors    the weights; the tied softmax matrix is stored once (as the token embedding)
    tokenizer.json       (when a tokenizer is given) the WordPiece tokenizer
    training.json        (when given) how the model was made: command, seed, data, time, metrics
    <name>               any further text files the caller passes (``files``), e.g. a task head's metadata

Choices, and why:

* safetensors, not pickle: loading a model from elsewhere can never run code; nothing else in the
  directory is executable either.
* Weights may be stored in float16 (``dtype=torch.float16``, half the bytes: the shipped reference
  model) and are loaded into float32.
* Every file is written to ``<name>.tmp`` and renamed over ``<name>``, so a save that is killed
  leaves the previous files whole.
* Loading checks everything a wrong directory could get wrong and says what in one sentence: a
  missing or corrupt file, a config with unknown or invalid fields, weights missing, unexpected or
  of another shape than the config implies (naming the keys).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pmlm.config import PMLMConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training.json"
FORMAT_VERSION = 1
TIED = ("head.embedding.weight",)  # the same tensor as token_embedding.weight: stored once


class MissingModelFileError(FileNotFoundError, ValueError):
    """A file the model directory should hold is not there (a FileNotFoundError and a ValueError)."""


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through ``path.tmp`` and a rename (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model_files(model: torch.nn.Module, directory: str | Path, *, tokenizer=None,
                     training: dict | None = None, dtype: torch.dtype | None = None,
                     files: dict[str, str] | None = None) -> Path:
    """Write ``model`` (and optionally its tokenizer, training record and more files) to ``directory``."""
    from safetensors.torch import save

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype or v.dtype).contiguous()
               for k, v in model.state_dict().items() if k not in TIED}
    config = {"model_type": "pmlm", "format_version": FORMAT_VERSION,
              "torch_dtype": str(dtype or torch.float32).removeprefix("torch."), **model.config.to_dict()}
    write_atomic(out / WEIGHTS_FILE, save(tensors, metadata={"format": "pt", "model_type": "pmlm"}))
    write_atomic(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    if tokenizer is not None:
        write_atomic(out / "tokenizer.json", tokenizer.to_str())
    if training is not None:
        write_atomic(out / TRAINING_FILE, json.dumps(training, indent=2) + "\n")
    for name, text in (files or {}).items():
        write_atomic(out / name, text)
    return out


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingModelFileError(f"{path} is missing: {what}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the file is corrupt") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object; the file is corrupt")
    return data


def read_config(directory: str | Path) -> PMLMConfig:
    """The :class:`PMLMConfig` of a model directory, with a clear error for a bad ``config.json``."""
    path = Path(directory) / CONFIG_FILE
    hint = "not a directory written by save_pretrained (config.json, model.safetensors)"
    data = read_json(path, hint)
    if "pmlm_config" in data or "auto_map" in data:
        raise ValueError(f"{path} is a Hugging Face export (pmlm.export_hf): load it with pmlm.import_hf")
    if data.get("model_type", "pmlm") != "pmlm":
        raise ValueError(f"{path} describes a {data['model_type']!r} model, not a pmlm one "
                         "(a Hugging Face export? load it with pmlm.import_hf)")
    fields_ = {k: v for k, v in data.items() if k not in ("model_type", "format_version", "torch_dtype")}
    try:
        return PMLMConfig.from_dict(fields_)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} holds an invalid model config: {err}") from None


def read_tensors(path: Path, missing: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, as stored; ``missing`` says what its absence means."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingModelFileError(f"{path} is missing: {missing}")
    try:
        return load_file(path)
    except Exception as err:  # truncated header, garbage bytes: one message
        raise ValueError(f"{path} cannot be read (corrupt or truncated safetensors file): "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``, in float32; a clear error for a missing or corrupt file."""
    tensors = read_tensors(Path(directory) / WEIGHTS_FILE, "the directory holds no weights")
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load ``tensors`` into ``model``, naming every missing, unexpected or mis-shaped key."""
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in TIED}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(expected[k])}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k]]
    problems = ([f"missing keys {missing}"] if missing else []) + \
        ([f"unexpected keys {unexpected}"] if unexpected else []) + \
        ([f"shapes that do not fit the config: {'; '.join(shapes)}"] if shapes else [])
    if problems:
        raise ValueError(f"the weights in {where} do not fit its config.json: " + "; ".join(problems))
    model.load_state_dict(tensors, strict=False)  # the tied matrix comes with token_embedding.weight
