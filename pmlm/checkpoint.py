"""Checkpoints: written atomically, read with clear errors, loaded back into a model and tokenizer.

A run directory written by :func:`pmlm.train.pretrain` holds::

    <run>/checkpoint.pt    model, optimizer, scheduler, RNG states, step, PMLMConfig and TrainConfig
    <run>/tokenizer.json   the WordPiece tokenizer trained on the run's training split
    <run>/metrics.jsonl    one JSON object per logged step (train) and per evaluation (val)

The checkpoint also embeds the tokenizer (as its JSON text), so it stays usable alone.

Choices: a checkpoint is written to ``checkpoint.pt.tmp`` and renamed over ``checkpoint.pt``
(``os.replace`` is atomic on POSIX), so a run killed while saving leaves the previous checkpoint
intact; a full or read-only disk is one :class:`CheckpointWriteError` line, the previous
checkpoint still intact. Reading uses ``torch.load(weights_only=True)``: only tensors and plain
Python containers, never arbitrary pickled objects, so a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer

from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
FORMAT_VERSION = 1


class MissingFileError(FileNotFoundError, ValueError):
    """A file the run directory should hold is not there (both a FileNotFoundError and a ValueError)."""


class CheckpointWriteError(OSError, ValueError):
    """A checkpoint could not be written (a full or read-only disk): an OSError and a ValueError, so
    that the command line ends with one line."""


def checkpoint_path(run: str | Path) -> Path:
    """``run`` itself if it is a file, else ``run/checkpoint.pt``."""
    run = Path(run)
    return run if run.suffix == ".pt" or run.is_file() else run / CHECKPOINT_FILE


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file, flushed, then renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        # torch's zip writer may answer a failed write with a RuntimeError of its own: the OSError is its context
        cause = err if isinstance(err, OSError) else err.__context__
        if not isinstance(cause, OSError):
            raise
        with contextlib.suppress(OSError):
            tmp.unlink()
        kept = "the previous checkpoint is intact" if path.is_file() else "no checkpoint was written"
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {cause.strerror or cause}; {kept}") from None
    return path


def read_checkpoint(run: str | Path, map_location="cpu") -> dict:
    """The checkpoint dict of a run directory (or checkpoint file), with clear errors."""
    path = checkpoint_path(run)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint at {path}: pre-train first (python -m pmlm.train) or "
                               "point to a run directory written by pmlm.train")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes): the file is corrupt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, foreign pickles: all one message
        raise ValueError(f"checkpoint {path} cannot be read (corrupt, truncated or not written by "
                         f"pmlm): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                         ) from None
    missing = [k for k in ("model", "model_config", "step") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}: it was not written by pmlm.train")
    return state


def config_differences(saved: dict, wanted: dict) -> list[str]:
    """Human-readable ``name: saved -> wanted`` for every field that differs."""
    names = sorted(set(saved) | set(wanted))
    return [f"{n}: checkpoint {saved.get(n)!r} vs {wanted.get(n)!r}" for n in names
            if saved.get(n) != wanted.get(n)]


# PMLMConfig fields that pick a kernel, not the function the weights compute: free to differ.
KERNEL_FIELDS = {"attention_backend", "split_context_attention"}


def load_model_state(model: PMLMModel, state: dict, where: str = "checkpoint") -> None:
    """Load the model weights of ``state`` into ``model``; a clear error if the configs differ."""
    try:
        saved = PMLMConfig.from_dict(state["model_config"]).to_dict()  # fills fields added since
    except (TypeError, ValueError) as err:
        raise ValueError(f"the {where} holds an invalid model config: {err}") from None
    wanted = model.config.to_dict()
    diffs = config_differences({k: v for k, v in saved.items() if k not in KERNEL_FIELDS},
                               {k: v for k, v in wanted.items() if k not in KERNEL_FIELDS})
    if diffs:
        raise ValueError(f"the {where} was trained with a different model configuration; "
                         "differences: " + "; ".join(diffs))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"the {where}'s weights do not fit the model: {str(err).splitlines()[0]}") from None


def checkpoint_tokenizer(run: str | Path, state: dict) -> Tokenizer:
    """The run's tokenizer: ``tokenizer.json`` beside the checkpoint, else the embedded copy."""
    path = checkpoint_path(run).parent / TOKENIZER_FILE
    if path.is_file():
        tok = load_tokenizer(path)
    elif state.get("tokenizer"):
        tok = Tokenizer.from_str(state["tokenizer"])
    else:
        raise MissingFileError(f"no tokenizer beside {checkpoint_path(run)} and none inside it")
    vocab = state["model_config"]["vocab_size"]
    if tok.get_vocab_size() != vocab:
        raise ValueError(f"the tokenizer at {path} has {tok.get_vocab_size()} entries but the model "
                         f"was trained with a vocabulary of {vocab}: they come from different runs")
    return tok


def load_pretrained(run_dir: str | Path, map_location="cpu") -> tuple[PMLMModel, Tokenizer]:
    """The pre-trained model (in eval mode) and its tokenizer from a run directory.

    The run's ``checkpoint.pt`` when there is one (the latest step, also of a run still training);
    else the model files of ``save_pretrained`` (``config.json``, ``model.safetensors``,
    ``tokenizer.json``), e.g. the shipped reference model; ``"reference"`` names that one.
    """
    from pmlm.pretrained import load_model, reference_dir

    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    if str(run_dir) == "reference" and not Path(run_dir).exists():
        run_dir = reference_dir()
    if not checkpoint_path(run_dir).is_file() and (Path(run_dir) / "model.safetensors").is_file():
        model, tok = load_model(run_dir)
        return model.to(device), tok
    state = read_checkpoint(run_dir, map_location)
    try:
        config = PMLMConfig.from_dict(state["model_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {checkpoint_path(run_dir)} holds an invalid model config: {err}") from None
    tok = checkpoint_tokenizer(run_dir, state)
    model = PMLMModel(config)
    load_model_state(model, state)
    return model.to(device).eval(), tok


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``<run>/metrics.jsonl`` (a partly written last line is skipped)."""
    path = Path(run_dir)
    path = path if path.is_file() else path / METRICS_FILE
    if not path.is_file():
        raise MissingFileError(f"no metrics file at {path}")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves a partial last line
    return records
