"""What classification and sequence-to-sequence fine-tuning share: the backbone, the optimiser, batches.

* :func:`load_backbone` gives a pre-trained :class:`pmlm.PMLMModel` and its tokenizer from what
  ``--pretrained`` names (:func:`load_pretrained_model`: a run directory, a saved model, a Hugging
  Face export, a published UniLMv2 checkpoint, ``reference``), or, for the *control* (no
  pre-training), a freshly initialised model of a named size with a tokenizer trained on the task's
  own training text. A tokenizer whose vocabulary does not match the checkpoint is refused with a
  ValueError.
* :func:`make_optimizer`: AdamW with linear warm-up and linear decay, as BERT and s2s-ft fine-tune
  (weight decay off for biases and LayerNorm weights).
* :func:`smoke_mode` (from :mod:`pmlm.train`): ``PMLM_SMOKE=1`` or ``CI`` in the environment picks
  the ``smoke`` recipes, which run in seconds.

Shape legend as in :mod:`pmlm.config`: B batch, L length, H hidden, V vocabulary, C classes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from pmlm.checkpoint import load_pretrained
from pmlm.config import PMLMConfig
from pmlm.model import PMLMModel
from pmlm.tokenizer import load_tokenizer, special_ids, train_tokenizer
from pmlm.train import smoke_mode  # noqa: F401  (re-exported: the package-wide switch)
from pmlm.train.distributed import Dist, rank0_decides


def check_settings(cfg) -> None:
    """A ValueError naming the first fine-tuning setting of ``cfg`` that cannot train: the learning
    rate finite and > 0, batch size, epochs and step cap >= 1, warm-up share in [0, 1)."""
    what = type(cfg).__name__
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"{what}.lr (--lr) must be a finite number > 0, got {cfg.lr}")
    for name in ("batch_size", "epochs", "eval_batch_size"):
        if getattr(cfg, name, 1) < 1:
            raise ValueError(f"{what}.{name} (--{name.replace('_', '-')}) must be at least 1, got {getattr(cfg, name)}")
    for name in ("max_steps", "train_limit", "eval_limit"):
        value = getattr(cfg, name, None)
        if value is not None and value < 1:
            raise ValueError(f"{what}.{name} (--{name.replace('_', '-')}) must be at least 1 (or left out), "
                             f"got {value}")
    if not 0.0 <= cfg.warmup < 1.0:
        raise ValueError(f"{what}.warmup is a share of the steps and must lie in [0, 1), got {cfg.warmup}")
    if not (math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0):
        raise ValueError(f"{what}.weight_decay must be a finite number >= 0, got {cfg.weight_decay}")


def check_finite_step(task: str, step: int, loss: float, norm: float, lr: float, saved: str | None = None) -> None:
    """Stop a fine-tuning run whose loss or gradient norm is not finite, before its optimizer step;
    ``saved`` names the last checkpoint written (it is good: written before this step)."""
    if not (math.isfinite(loss) and math.isfinite(norm)):
        kept = (f"the last good checkpoint is {saved}" if saved else
                "nothing was saved (a model is saved only at the end of a run)")
        raise ValueError(f"{task} fine-tuning diverged at step {step}: the loss is {loss:.4g} and the gradient "
                         f"norm {norm:.4g}, not finite, so the step was not taken; {kept}. Lower --lr (now {lr:g}) "
                         "and run again")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python's and torch's global RNGs; return a torch generator seeded the same way."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def check_vocab(model: PMLMModel, tok: Tokenizer) -> dict[str, int]:
    """The tokenizer's special ids, after checking that it matches the model's vocabulary."""
    ids = special_ids(tok)
    V_tok, V_model = tok.get_vocab_size(), model.config.vocab_size
    if V_tok != V_model:
        raise ValueError(f"the tokenizer has {V_tok} entries but the checkpoint's vocabulary has "
                         f"{V_model}: use the tokenizer.json saved with that checkpoint")
    return ids


def load_pretrained_model(spec: str | Path) -> tuple[PMLMModel, Tokenizer]:
    """``(model, tokenizer)`` of whatever ``--pretrained`` names, told apart by the files there:

    * ``reference``: the shipped reference model (:func:`pmlm.load_reference`);
    * a UniLMv2 checkpoint: a directory of ``pytorch_model.bin``, ``config.json``, ``vocab.txt`` (or
      the published ``unilm2-*`` names), or the ``.bin`` itself (:func:`pmlm.unilmv2.load_unilmv2`);
    * a Hugging Face export of :func:`pmlm.export_hf` (a ``config.json`` with ``pmlm_config``);
    * a run directory of ``pmlm.train`` or of a fine-tuning run (``checkpoint.pt``), or a directory
      written by ``save_pretrained`` (:func:`pmlm.checkpoint.load_pretrained`).
    """
    from pmlm.hf_export import import_hf
    from pmlm.unilmv2 import load_unilmv2, looks_like_unilmv2

    path = Path(spec)
    if looks_like_unilmv2(path):
        return load_unilmv2(path)
    if path.is_dir() and not (path / "checkpoint.pt").is_file() and hf_export_config(path):
        return import_hf(path)
    return load_pretrained(path)


def hf_export_config(directory: Path) -> bool:
    """Whether ``directory/config.json`` is that of a Hugging Face export (it holds ``pmlm_config``)."""
    import json

    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "pmlm_config" in config


def load_backbone(pretrained: str | Path | None, *, texts: Sequence[str] = (), size: str = "tiny",
                  vocab_size: int = 8192, tokenizer: str | Path | None = None,
                  config_overrides: dict | None = None, d: Dist | None = None) -> tuple[PMLMModel, Tokenizer]:
    """(model, tokenizer): a pre-trained model (:func:`load_pretrained_model`), or from scratch (the control).

    Args:
        pretrained: what :func:`load_pretrained_model` reads, or None for a fresh model.
        texts: training text of the task, for the control's tokenizer (ignored with ``pretrained``).
        size: model preset of the control (:data:`pmlm.PRESETS`).
        vocab_size: vocabulary of the control's tokenizer (it may keep fewer entries).
        tokenizer: optional tokenizer.json to use instead of the run directory's own; it must have
            the checkpoint's vocabulary size.
        config_overrides: PMLMConfig fields of the control (e.g. ``max_positions``).
        d: the processes of a torchrun run: rank 0 alone trains the control's tokenizer and sends it
            to the others (WordPiece training is not bit-deterministic).
    """
    if pretrained is not None:
        model, tok = load_pretrained_model(pretrained)
        if tokenizer is not None:
            tok = load_tokenizer(tokenizer)
    else:
        if tokenizer is not None:
            tok = load_tokenizer(tokenizer)
        elif texts:
            tok = Tokenizer.from_str(rank0_decides(lambda: train_tokenizer(texts, vocab_size).to_str(), d or Dist()))
        else:
            raise ValueError("a model from scratch needs the task's training texts for its tokenizer "
                             "(or a tokenizer file)")
        config = PMLMConfig.preset(size, vocab_size=tok.get_vocab_size(), **(config_overrides or {}))
        model = PMLMModel(config)
    check_vocab(model, tok)
    return model, tok


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float, total_steps: int, warmup: float,
                   warmup_steps: int | None = None) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (betas 0.9, 0.999, eps 1e-6) with linear warm-up over ``warmup_steps`` steps (None: the
    ``warmup`` share of ``total_steps``), then linear decay to 0 at ``total_steps`` (s2s-ft's
    ``get_linear_schedule_with_warmup``, except that its first step has learning rate 0 and ours
    ``lr / warm-up steps``)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 else decay).append(p)  # biases and LayerNorm weights: no decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, eps=1e-6)
    warm = max(1, int(warmup * total_steps) if warmup_steps is None else warmup_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def minibatches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
                ) -> Iterator[list[int]]:
    """Index lists of one pass over ``n`` examples (shuffled with ``generator`` if asked)."""
    order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id lists to (B, L); also return ``valid`` (B, L), False at padding."""
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)  # (B, L)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs])
    return ids, torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)  # (B, L), (B, L)


def encode_texts(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (the callers add ``[SOS]``/``[EOS]``)."""
    return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]
