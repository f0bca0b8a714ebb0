"""Sequence-to-sequence fine-tuning with pseudo masks (NLG, section 3.4).

The input is ``[SOS] source [EOS] target [EOS]``: the source is bidirectional context and the
target is generated left to right. Fine-tuning lays the target out as in pre-training, with every
target token its own factorization step (s2s-ft's layout, source | real target | pseudo masks)::

    token : [SOS] s1 s2 [EOS] | y1  y2  [EOS] | [P] [P] [P]
    pos   :   0   1  2   3    |  4   5    6   |  4   5   6       (position reuse)
    step  :   0   0  0   0    | +1  +2   +3   | -1  -2  -3
    label :                   |               |  y1  y2 [EOS]

so :func:`pmlm.pmlm_attention_mask` gives, with no second mask builder: the source sees the source
only; the real ``y_t`` (step +t) sees the source and ``y_{<=t}``; the ``[P]`` of step t sees the
source, ``y_{<t}`` and itself, never ``y_t`` (the s2s-ft ``create_attention_mask`` rule). The loss is
on the ``[P]`` states only, so one pass trains every target position, as PAR does in pre-training.
Segment ids: 0 for the source, 1 for the target (S1/S2 of pre-training).

Options and choices (s2s-ft's, unless marked ours):

* ``factorization="block"`` groups the target into spans (a span with probability ``span_prob``,
  its length uniform in 2..``max_span``, else one token; s2s-ft's ``span_len``): a ``[P]`` then sees
  the earlier spans only, and the real tokens of a span see each other. Decoding stays one token
  per step.
* Word drop: each *visible* real target token is replaced by ``[MASK]`` with probability
  ``word_drop``, so the model cannot lean on copying the previous token (s2s-ft keeps or randomises
  a share too; we only mask). Labels are never dropped.
* Label smoothing 0.1, in s2s-ft's form (``LabelSmoothingLoss`` of ``s2s_ft/modeling.py``): the
  target distribution q puts 1 - eps on the label and eps / (V - 2) on every other token but
  ``[PAD]``, and the loss is KL(q || p) = sum_v q_v (log q_v - log p_v), summed over the target tokens
  and divided by their number (its ``loss_mask_and_normalize``). It is the cross entropy against q
  less the entropy of q, a constant (about 1.2 nats at V = 8192): the number s2s-ft prints, lower
  than the plain cross entropy of the validation loss. Without smoothing it is cross entropy.
* Pairs that do not fit ``max_source_len`` / ``max_target_len`` are *left out* of training and
  evaluation (counted in the metrics) with ``truncate=False``, the verses' setting: a cut verse no
  longer says what its target says. ``truncate=True`` (``--data``) cuts them as s2s-ft does
  (``Seq2seqDatasetForBert.__trunk``): the first ``max_source_len - 2`` source tokens between
  ``[SOS]`` and ``[EOS]``, the first ``max_target_len - 1`` target tokens and ``[EOS]``; a
  summary's source is a long document, and leaving out every long one would bias the data. Building an
  example that does not fit the model's positions raises a ValueError, as does an empty target.
* The steps (:mod:`pmlm.finetune.loop`): ``batch_size`` pairs per optimizer step over all
  processes (``torchrun``) and ``grad_accum`` micro-batches, bf16 autocast on a GPU, linear warm-up
  over ``warmup_steps`` (or the ``warmup`` share) and linear decay, checkpoints every
  ``save_every`` steps into a run directory and exact resume.
* Metrics: sacrebleu's corpus BLEU and chrF on detokenised output against the reference passed
  through the same tokenizer (lowercased, ``[UNK]`` where the vocabulary lacks a piece), so the
  score measures the model, not the tokenizer; ``copy_bleu`` scores the source itself as output,
  the baseline to beat on a task where most words stay.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from tokenizers import Tokenizer

from pmlm.collator import pad_and_mask
from pmlm.finetune.common import check_settings, check_vocab, encode_texts, minibatches, set_seed
from pmlm.finetune.decoding import DecodeConfig, check_decode_memory, generate
from pmlm.finetune.loop import RunDir, example_rng, fingerprint, run_steps, total_steps
from pmlm.finetune.target import seq2seq_example, seq2seq_loss, to_device
from pmlm.layout import IGNORE_INDEX
from pmlm.model import PMLMModel
from pmlm.train.distributed import init_distributed


@dataclass
class Seq2SeqConfig:
    lr: float = 1e-4  # s2s-ft range (XSum 7e-5); the tiny models take more
    batch_size: int = 32  # pairs per optimizer step over all processes and micro-batches (XSum: 64)
    grad_accum: int = 1  # micro-batches per optimizer step (s2s-ft's --gradient_accumulation_steps)
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps (s2s-ft's --num_training_steps); None: epochs
    warmup: float = 0.1  # share of linear warm-up ...
    warmup_steps: int | None = None  # ... or this many steps (s2s-ft's --num_warmup_steps; XSum 1000)
    weight_decay: float = 0.01
    word_drop: float = 0.5  # s2s-ft: 0.4-0.8 by task; verse modernisation copies much, so mid-range
    label_smoothing: float = 0.1  # s2s-ft value
    factorization: str = "token"  # "token": left to right; "block": spans (s2s-ft's span_len)
    span_prob: float = 0.4  # "block" only: probability that a step is a span ...
    max_span: int = 3  # ... of length uniform in 2..max_span
    max_source_len: int = 64  # tokens with [SOS] and [EOS] (s2s-ft's --max_source_seq_length; XSum 464)
    max_target_len: int = 64  # tokens with the final [EOS] (s2s-ft's --max_target_seq_length; XSum 48)
    truncate: bool = False  # pairs too long: False leaves them out (the verses), True cuts them as s2s-ft
    train_limit: int | None = None  # fixed sample of this many training pairs
    eval_limit: int | None = None  # ... and of test pairs to decode
    decode: DecodeConfig = field(default_factory=lambda: DecodeConfig(beam_size=4, length_penalty=1.0))
    eval_every: int = 0  # steps between validation points of the learning curve (0: none)
    curve_examples: int = 100  # validation pairs decoded greedily at each point of the curve
    bf16: bool = True  # bf16 autocast on a GPU (s2s-ft: apex fp16); the CPU always computes in float32
    save_every: int = 0  # steps between checkpoints in the run directory (0: at the end only; s2s-ft 1500)
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.decode, dict):
            self.decode = DecodeConfig(**self.decode)
        check_settings(self)  # lr, batch size, epochs, step cap: refused before any work
        if not 0.0 <= self.word_drop < 1.0:
            raise ValueError(f"word_drop must lie in [0, 1), got {self.word_drop}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.factorization not in ("token", "block"):
            raise ValueError(f"factorization must be 'token' or 'block', got {self.factorization!r}")
        if self.max_span < 2:
            raise ValueError(f"max_span must be at least 2, got {self.max_span}")
        if self.eval_every < 0 or self.curve_examples < 1:
            raise ValueError(f"eval_every must be >= 0 and curve_examples >= 1, got {self.eval_every} "
                             f"and {self.curve_examples}")
        if self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise ValueError(f"grad_accum (--grad-accum) must be at least 1 and divide batch_size "
                             f"(--batch-size {self.batch_size}), the pairs of one step; got {self.grad_accum}")
        for name in ("warmup_steps", "save_every"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be >= 0, got {getattr(self, name)}")
        if self.max_source_len < 3 or self.max_target_len < 2:
            raise ValueError(f"max_source_len must be at least 3 ([SOS], a token, [EOS]) and max_target_len at "
                             f"least 2 (a token, [EOS]); got {self.max_source_len} and {self.max_target_len}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "Seq2SeqConfig":
        if name not in SEQ2SEQ_PRESETS:
            raise ValueError(f"unknown seq2seq preset {name!r}; choose one of {sorted(SEQ2SEQ_PRESETS)}")
        return replace(SEQ2SEQ_PRESETS[name], **overrides)


SEQ2SEQ_PRESETS = {
    # seconds on a CPU: short verses only, a few hundred steps, greedy decoding of 200 test verses
    "smoke": Seq2SeqConfig(lr=5e-4, max_steps=150, max_source_len=40, max_target_len=40,
                           train_limit=4800, eval_limit=200, decode=DecodeConfig(beam_size=1, max_length=40)),
    # minutes on 2 CPU cores
    "tiny": Seq2SeqConfig(lr=5e-4, max_steps=1500, max_source_len=48, max_target_len=48,
                          eval_limit=500, decode=DecodeConfig(beam_size=4, max_length=48)),
    # one GPU: every verse that fits 2 x 96 tokens, 3 epochs, beam 5 (paper's XSum beam)
    "small": Seq2SeqConfig(lr=2e-4, epochs=3, max_source_len=96, max_target_len=96,
                           decode=DecodeConfig(beam_size=5, max_length=96)),
}


def encode_side(tok: Tokenizer, values: list[str | list[str]]) -> list[list[int]]:
    """Token ids of texts (through the tokenizer) or of pre-tokenized pieces (looked up as they are,
    ``[UNK]`` for a piece the vocabulary lacks: s2s-ft's ``convert_tokens_to_ids``), without specials."""
    texts = iter(encode_texts(tok, [v for v in values if isinstance(v, str)]))
    unk = tok.token_to_id("[UNK]")
    lookup = lambda piece: (i if (i := tok.token_to_id(piece)) is not None else unk)  # noqa: E731
    return [next(texts) if isinstance(v, str) else [lookup(p) for p in v] for v in values]


def encode_pairs(tok: Tokenizer, rows: list[dict], cfg: Seq2SeqConfig, stats: dict | None = None
                 ) -> tuple[list[tuple[list[int], list[int]]], list[dict], int]:
    """Token ids of the pairs, the rows kept, and how many were left out.

    A pair too long for ``max_source_len`` / ``max_target_len`` is left out, or with
    ``cfg.truncate`` cut as s2s-ft cuts it (module docstring); a target with no token is always
    left out. ``stats``, if given, gets ``cut_sources`` and ``cut_targets``: how many were cut.
    """
    src, tgt = encode_side(tok, [r["source"] for r in rows]), encode_side(tok, [r["target"] for r in rows])
    S, T = cfg.max_source_len - 2, cfg.max_target_len - 1  # room left by [SOS] [EOS] and by [EOS]
    pairs, kept, cut = [], [], {"cut_sources": 0, "cut_targets": 0}
    for s, t, r in zip(src, tgt, rows):
        if not t or (not cfg.truncate and (len(s) > S or len(t) > T)):
            continue
        cut["cut_sources"] += len(s) > S
        cut["cut_targets"] += len(t) > T
        pairs.append((s[:S], t[:T]))
        kept.append(r)
    if stats is not None:
        stats.update(cut)
    return pairs, kept, len(rows) - len(pairs)


@torch.no_grad()
def validation_loss(model: PMLMModel, pairs, ids, cfg: Seq2SeqConfig) -> float:
    """Teacher-forced loss without word drop or label smoothing (a perplexity-like number)."""
    was_training = model.training
    model.eval()
    total, count, dev = 0.0, 0, next(model.parameters()).device
    for idx in minibatches(len(pairs), 64, shuffle=False):
        batch = to_device(pad_and_mask([seq2seq_example(*pairs[i], ids) for i in idx], ids["pad"]), dev)
        n = int((batch["par_labels"] != IGNORE_INDEX).sum())
        total += seq2seq_loss(model, batch, 0.0).item() * n
        count += n
    model.train(was_training)
    return total / max(1, count)


def evaluate_generation(model: PMLMModel, tok: Tokenizer, rows: list[dict], pairs, ids,
                        decode: DecodeConfig) -> dict:
    """Decode the sources; sacrebleu BLEU and chrF against the tokenizer-normalised references."""
    import sacrebleu

    out = generate(model, [s for s, _ in pairs], ids, decode)
    hyps = tok.decode_batch(out, skip_special_tokens=True)
    refs = tok.decode_batch([t for _, t in pairs], skip_special_tokens=True)
    copies = tok.decode_batch([s for s, _ in pairs], skip_special_tokens=True)
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            "copy_bleu": sacrebleu.corpus_bleu(copies, [refs]).score,
            "copy_chrf": sacrebleu.corpus_chrf(copies, [refs]).score,
            "examples": [{"ref": r.get("ref", ""), "source": c, "output": h, "target": t}
                         for r, c, h, t in list(zip(rows, copies, hyps, refs))[:5]]}


def learning_curve_point(model: PMLMModel, tok: Tokenizer, rows: list[dict], pairs, ids, cfg: Seq2SeqConfig,
                         step: int) -> dict:
    """One point of BLEU against fine-tuning steps: greedy BLEU/chrF and loss on validation pairs."""
    was_training = model.training
    greedy = replace(cfg.decode, beam_size=1)
    scores = evaluate_generation(model, tok, rows, pairs, ids, greedy)
    point = {"step": step, "val_bleu": scores["bleu"], "val_chrf": scores["chrf"],
             "val_copy_bleu": scores["copy_bleu"], "val_loss": validation_loss(model, pairs, ids, cfg)}
    model.train(was_training)
    return point


def finetune_seq2seq(model: PMLMModel, tok: Tokenizer, splits: dict[str, list[dict]],
                     cfg: Seq2SeqConfig, *, log=print, save: str | Path | None = None, on_metrics=None,
                     out_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
                     on_step=None) -> dict:
    """Fine-tune ``model`` (in place) on {split: [{"source", "target"}]} and decode the test split.

    Returns ``bleu``, ``chrf``, ``copy_bleu`` on test (left out when there is no test split),
    ``val_loss`` (None without a validation split), ``train_loss``, ``steps``, counts of pairs used,
    left out and cut, ``seconds`` and the config; with ``cfg.eval_every`` also ``curve``, BLEU
    against steps on ``cfg.curve_examples`` validation pairs (greedy decoding,
    :func:`learning_curve_point`), the model itself still the last step's. With ``save`` the
    fine-tuned model and its decoding settings are written there
    (:func:`pmlm.finetune.saved.save_seq2seq`), after ``on_metrics(metrics)``, so that a full or
    read-only disk loses nothing computed.

    Under ``torchrun`` every process calls this with the same arguments: each trains on its part of
    every batch (:mod:`pmlm.finetune.loop`), rank 0 alone evaluates, saves and returns the metrics
    (the others return ``{"rank", "steps"}``). ``out_dir``: the run directory of checkpoints
    (``cfg.save_every``); ``resume`` continues its checkpoint, ``overwrite`` replaces the run there.
    ``on_step(step, model)`` is called after every step (tests).
    """
    from pmlm.finetune.data import subsample

    ids = check_vocab(model, tok)
    if cfg.max_source_len + cfg.max_target_len > model.config.max_positions:
        raise ValueError(f"max_source_len + max_target_len = {cfg.max_source_len + cfg.max_target_len} "
                         f"exceeds the model's max_positions={model.config.max_positions}")
    dev = next(model.parameters()).device
    d = init_distributed(dev.type)
    try:
        set_seed(cfg.seed)
        cut: dict = {}
        train_pairs, _, left_train = encode_pairs(tok, splits["train"], cfg, cut)
        train_pairs = subsample(train_pairs, cfg.train_limit, cfg.seed)
        val_pairs, val_rows, _ = encode_pairs(tok, subsample(splits.get("validation", []), cfg.eval_limit, 0), cfg)
        curve_pairs, curve_rows = val_pairs[:cfg.curve_examples], val_rows[:cfg.curve_examples]
        test_pairs, test_rows, left_test = encode_pairs(tok, splits.get("test", []), cfg)
        keep = subsample(list(range(len(test_pairs))), cfg.eval_limit, 0)  # same test sample for every seed
        test_pairs, test_rows = [test_pairs[i] for i in keep], [test_rows[i] for i in keep]
        if not train_pairs or (splits.get("test") and not test_pairs):
            raise ValueError(f"no pair fits max_source_len={cfg.max_source_len}, max_target_len={cfg.max_target_len}")
        if cut["cut_sources"] or cut["cut_targets"]:
            log(f"seq2seq: {cut['cut_targets']} of {len(splits['train'])} training targets were longer than "
                f"--max-target-length {cfg.max_target_len} and {cut['cut_sources']} sources longer than "
                f"--max-source-length {cfg.max_source_len}: cut to fit, as s2s-ft cuts them (raise the limits "
                "to keep more)")
        if test_pairs:  # a beam that cannot fit in memory is refused now, not after the training it would throw away
            check_decode_memory(model, cfg.decode, len(test_pairs), cfg.max_source_len)
        start, curve = time.time(), []
        if cfg.eval_every and curve_pairs and d.main and not resume:
            curve.append(learning_curve_point(model, tok, curve_rows, curve_pairs, ids, cfg, 0))

        def batch_of(indices: list[int], epoch: int) -> dict[str, torch.Tensor]:
            examples = []
            for i in indices:
                rng = example_rng(cfg.seed, epoch, i)
                examples.append(seq2seq_example(*train_pairs[i], ids, word_drop=cfg.word_drop, rng=rng,
                                                factorization=cfg.factorization, span_prob=cfg.span_prob,
                                                max_span=cfg.max_span))
            return to_device(pad_and_mask(examples, ids["pad"]), dev)

        def record(step: int) -> dict | None:
            if not (cfg.eval_every and curve_pairs and (step % cfg.eval_every == 0 or step == total)):
                return None
            curve.append(learning_curve_point(model, tok, curve_rows, curve_pairs, ids, cfg, step))
            log(f"seq2seq step {step}: validation BLEU {curve[-1]['val_bleu']:.2f} (greedy, "
                f"{len(curve_pairs)} pairs; copying {curve[-1]['val_copy_bleu']:.2f})")
            return curve[-1]

        total = total_steps(cfg, len(train_pairs), d)
        run = RunDir(str(out_dir), resume=resume, overwrite=overwrite) if out_dir is not None else None
        data = {"fingerprint": fingerprint(train_pairs), "examples": len(train_pairs)}
        losses = run_steps(model, len(train_pairs), cfg, batch_of=batch_of,
                           loss_of=lambda m, batch, tokens: seq2seq_loss(m, batch, cfg.label_smoothing,
                                                                         tokens=tokens, pad_id=ids["pad"]),
                           d=d, run=run, data=data, extra_state={"task": "seq2seq", "tokenizer": tok.to_str()},
                           log=log, on_step=on_step, record=record)
        if not d.main:
            return {"rank": d.rank, "steps": total}
        model.eval()
        val = validation_loss(model, val_pairs, ids, cfg) if val_pairs else None
        metrics = {"task": "seq2seq"}
        if test_pairs:
            scores = evaluate_generation(model, tok, test_rows, test_pairs, ids, cfg.decode)
            log(f"seq2seq: test BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} "
                f"(copying the source: BLEU {scores['copy_bleu']:.2f})"
                + (f"; validation loss {val:.4f}" if val is not None else ""))
            metrics.update(scores)
        window = losses[-50:]
        metrics.update({"val_loss": val, "train_loss": sum(window) / len(window) if window else None,
                        "steps": total, "n_train": len(train_pairs), "n_test": len(test_pairs),
                        "left_out_train": left_train, "left_out_test": left_test,
                        "cut_train_sources": cut["cut_sources"], "cut_train_targets": cut["cut_targets"],
                        "seconds": round(time.time() - start, 1), "world_size": d.world, "config": asdict(cfg)})
        if curve:
            metrics["curve"] = curve
        if on_metrics is not None:
            on_metrics(metrics)
        if save is not None:
            from pmlm.finetune.saved import save_seq2seq
            save_seq2seq(model, tok, save, max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                         decode=cfg.decode, metrics={k: v for k, v in metrics.items() if k != "examples"})
            metrics["saved"] = str(save)
        return metrics
    finally:
        if d.owns_group:
            dist.destroy_process_group()
