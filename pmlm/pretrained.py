"""Pre-trained models as files: a model directory with its tokenizer, and the shipped reference model.

:meth:`pmlm.PMLMModel.save_pretrained` writes ``config.json`` and ``model.safetensors``
(:mod:`pmlm.model_files`), with ``tokenizer.json`` and ``training.json`` beside them; every run of
``pmlm.train`` ends by writing them into its run directory. :func:`load_model` reads such a
directory back as ``(model, tokenizer)`` and checks that the two belong together. A directory is
written whole or not at all (:func:`pmlm.model_files.write_directory`): a save killed half-way
leaves the previous model, or in a run directory no model (its ``checkpoint.pt`` still loads), never
the weights of one save beside the tokenizer of another.

:func:`load_reference` loads the reference model that ships inside the package
(``pmlm/checkpoints/<name>/``): pre-trained by the project's own command, its ``training.json``
says which, with what data, for how long and to what validation numbers. Beside it ships its
AE-only twin, ``load_reference(REFERENCE_AE)``: the same recipe, tokenizer, data, seed and number
of steps with BERT's objective alone (Table 6 row 4), so that the two can be compared on the same
sentence (:func:`pmlm.viz.fill_in_widget`).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from pmlm.model import PMLMModel
from pmlm.model_files import MissingModelFileError, read_json
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer

CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
REFERENCE = "austen-tiny"  # the reference model's name under pmlm/checkpoints/
REFERENCE_AE = "austen-tiny-ae"  # its AE-only twin (BERT's objective, same steps, data and tokenizer)


def load_model(directory: str | Path) -> tuple[PMLMModel, Tokenizer]:
    """``(model, tokenizer)`` from a directory written by ``save_pretrained`` (eval mode, float32)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingModelFileError(f"{directory} is not a directory: point to one written by "
                                    "PMLMModel.save_pretrained (config.json, model.safetensors, tokenizer.json)")
    model = PMLMModel.from_pretrained(directory)
    path = directory / TOKENIZER_FILE
    if not path.is_file():
        raise MissingModelFileError(f"{path} is missing: save the model with its tokenizer "
                                    "(model.save_pretrained(dir, tokenizer=tok))")
    tok = load_tokenizer(path)
    if tok.get_vocab_size() != model.config.vocab_size:
        raise ValueError(f"the tokenizer in {path} has {tok.get_vocab_size()} entries but the model's "
                         f"vocabulary has {model.config.vocab_size}: they come from different models")
    return model, tok


def training_info(directory: str | Path) -> dict:
    """The ``training.json`` of a model directory: command, seed, data, time and final metrics."""
    return read_json(Path(directory) / "training.json", "the model directory has no training record")


def reference_dir(name: str = REFERENCE) -> Path:
    """The directory of a shipped reference model; a clear error naming the ones there are."""
    path = CHECKPOINTS_DIR / name
    if not (path / "model.safetensors").is_file():
        known = sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if p.is_dir()) if CHECKPOINTS_DIR.is_dir() else []
        raise MissingModelFileError(f"no reference model {name!r} under {CHECKPOINTS_DIR}; shipped: {known}")
    return path


def load_reference(name: str = REFERENCE) -> tuple[PMLMModel, Tokenizer]:
    """The shipped reference model and its tokenizer: ``model, tok = pmlm.load_reference()``."""
    return load_model(reference_dir(name))
