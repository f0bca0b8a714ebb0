"""Command line: ``python -m pmlm.finetune classify|seq2seq [--pretrained RUN_DIR] [--preset tiny]``.

Examples (CPU)::

    python -m pmlm.train --preset tiny --out-dir runs/tiny           # pre-train first
    python -m pmlm.finetune classify --pretrained runs/tiny          # Rotten Tomatoes, test accuracy
    python -m pmlm.finetune seq2seq --pretrained runs/tiny --beam 4  # KJV -> WEB, BLEU and chrF
    python -m pmlm.finetune classify                                 # the control: no pre-training

Without ``--pretrained`` the model is the control: the ``--size`` preset, freshly initialised, with
a tokenizer trained on the task's training text. ``--preset smoke`` (also chosen by ``PMLM_SMOKE=1``
or ``CI``) runs in seconds; ``tiny`` in minutes on a CPU; ``small`` is the GPU recipe. Flags
override single fields of the preset. ``--data FILE`` (classify only) reads a ``.tsv``/``.csv``
(optionally ``.gz``) or ``.jsonl`` with ``label`` and ``text`` columns; ``--labels`` names its
classes. Metrics are printed as JSON and written to ``--out`` if given; ``--save DIR`` keeps the
fine-tuned model (``pmlm.finetune.saved``) for ``python -m pmlm.predict``. Bad input (a missing or
corrupt checkpoint, a label outside the classes, another vocabulary) ends with one error line.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from pathlib import Path

import torch

from pmlm.finetune.classify import ClassifyConfig, finetune_classify
from pmlm.finetune.common import load_backbone, smoke_mode
from pmlm.finetune.data import SENTIMENT_LABELS, bible_splits, sentiment_splits
from pmlm.finetune.decoding import DecodeConfig
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a .tsv/.csv (header line) or .jsonl file, optionally gzipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    suffix = path.with_suffix("").suffix if path.suffix == ".gz" else path.suffix
    text = raw.decode("utf-8")
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix in (".tsv", ".csv"):
        return list(csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ","))
    raise ValueError(f"{path}: expected a .tsv, .csv or .jsonl file (optionally .gz)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pmlm.finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="task", required=True)
    for name in ("classify", "seq2seq"):
        s = sub.add_parser(name)
        s.add_argument("--pretrained", help="run directory of pmlm.train, a save_pretrained directory, or "
                                            "'reference' for the shipped model (default: none, the control)")
        s.add_argument("--tokenizer", help="tokenizer.json to use instead of the run's own")
        s.add_argument("--preset", choices=("smoke", "tiny", "small"),
                       help="fine-tuning recipe (default: smoke under PMLM_SMOKE/CI, else tiny)")
        s.add_argument("--size", default="tiny", help="model preset of the control (without --pretrained)")
        s.add_argument("--seed", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--batch-size", type=int)
        s.add_argument("--epochs", type=int)
        s.add_argument("--max-steps", type=int)
        s.add_argument("--train-limit", type=int, help="use a fixed sample of this many training examples")
        s.add_argument("--eval-limit", type=int, help="... and of evaluation examples")
        s.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
        s.add_argument("--out", help="write the metrics as JSON here")
        s.add_argument("--save", metavar="DIR", help="save the fine-tuned model here (for python -m pmlm.predict)")
    c = sub.choices["classify"]
    c.add_argument("--data", help="a .tsv/.csv/.jsonl with label and text columns (default: bundled Rotten Tomatoes)")
    c.add_argument("--labels", default=",".join(SENTIMENT_LABELS), help="comma-separated class names")
    s = sub.choices["seq2seq"]
    s.add_argument("--beam", type=int, help="beam size (1 = greedy)")
    s.add_argument("--length-penalty", type=float, help="alpha of ((5 + len) / 6) ** alpha")
    s.add_argument("--min-length", type=int)
    s.add_argument("--no-repeat-ngram", type=int, help="n of n-gram blocking (3 = trigram), 0 = off")
    s.add_argument("--word-drop", type=float, help="probability of [MASK] on the visible target copy")
    s.add_argument("--factorization", choices=("token", "block"), help="target left to right, or in spans")
    return p.parse_args(argv)


def overrides(args: argparse.Namespace, names: dict[str, str]) -> dict:
    return {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg, None) is not None}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as err:  # bad input: one line a user can act on
        raise SystemExit(f"python -m pmlm.finetune {args.task}: error: {err}") from None


def run(args: argparse.Namespace) -> dict:
    preset = args.preset or ("smoke" if smoke_mode() else "tiny")
    common = {"seed": "seed", "lr": "lr", "batch_size": "batch_size", "epochs": "epochs",
              "max_steps": "max_steps", "train_limit": "train_limit", "eval_limit": "eval_limit"}
    extra: dict = {"save": args.save}
    if args.task == "classify":
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        splits = sentiment_splits(read_rows(args.data) if args.data else None, labels)
        cfg = ClassifyConfig.preset(preset, **overrides(args, common))
        texts = [r["text"] for r in splits["train"]]
        extra.update(class_names=labels, num_classes=len(labels))
    else:
        splits = bible_splits()
        cfg = Seq2SeqConfig.preset(preset, **overrides(args, {**common, "word_drop": "word_drop",
                                                             "factorization": "factorization"}))
        decode = overrides(args, {"beam": "beam_size", "length_penalty": "length_penalty",
                                  "min_length": "min_length", "no_repeat_ngram": "no_repeat_ngram_size"})
        if decode:
            cfg.decode = DecodeConfig(**{**cfg.decode.__dict__, **decode})
        texts = [r[k] for r in splits["train"] for k in ("source", "target")]
    model, tok = load_backbone(args.pretrained, texts=texts, size=args.size, tokenizer=args.tokenizer)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(torch.device(device))
    finetune = finetune_classify if args.task == "classify" else finetune_seq2seq
    metrics = finetune(model, tok, splits, cfg, log=lambda line: print(line, file=sys.stderr), **extra)
    metrics["pretrained"] = args.pretrained
    print(json.dumps({k: v for k, v in metrics.items() if k != "config"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
