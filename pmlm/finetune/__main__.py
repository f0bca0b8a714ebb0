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
classes. Metrics are printed as JSON and written to ``--out`` if given, before ``--save DIR`` keeps the
fine-tuned model (``pmlm.finetune.saved``) for ``python -m pmlm.predict``. Bad input (a missing or
corrupt checkpoint, a label outside the classes, another vocabulary, a setting that cannot train
such as ``--lr 0`` or ``--epochs 0``, a device that is not there, a data row that does not parse,
data of one class, a loss that stops being finite) ends with one error line, naming the file and
line where a file is at fault. ``--threads N`` sets torch's threads on the CPU (default: one per
core free at the start, :func:`pmlm.machine.choose_threads`).
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
from pmlm.machine import check_device, choose_threads, threads_for_run
from pmlm.model_files import ModelWriteError


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a .tsv/.csv (header line) or .jsonl file, optionally gzipped.

    Strict, since a row read wrong trains on the wrong text: a row with more or fewer fields than
    the header, a line that is not a JSON object, bytes that are not UTF-8 or a file that is not
    the gzip its name says are each a ValueError naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    suffix = path.with_suffix("").suffix if path.suffix == ".gz" else path.suffix
    if suffix not in (".jsonl", ".tsv", ".csv"):
        raise ValueError(f"{path}: expected a .tsv, .csv or .jsonl file (optionally .gz)")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:  # not gzip at all, or cut short
            raise ValueError(f"{path} cannot be read as gzip ({err}): a truncated download, or not "
                             "compressed (rename it without .gz)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: byte 0x{raw[err.start]:02x} is not UTF-8 text: convert the file, "
                         f"e.g. iconv -f latin1 -t utf-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ValueError(f"{path}:{line}: a NUL byte: binary data, not a text file of rows")
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: a JSON {type(row).__name__}, not an object with label and text")
            rows.append(row)
        return rows
    reader = csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
    rows = []
    try:
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: no header line (label and text column names) on line 1")
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(header):
                raise ValueError(f"{path}:{reader.line_num}: {len(fields)} field{'s' if len(fields) != 1 else ''} "
                                 f"where the header has {len(header)} ({', '.join(header)}); quote a text that "
                                 f"holds the {'tab' if suffix == '.tsv' else 'comma'}")
            rows.append(dict(zip(header, fields)))
    except csv.Error as err:
        raise ValueError(f"{path}:{reader.line_num}: {err}") from None
    return rows


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
        s.add_argument("--threads", type=int, metavar="N",
                       help="torch threads on the CPU (default: one per core free at the start)")
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
    except ModelWriteError as err:  # --save on a full or read-only disk: the metrics are printed above
        raise SystemExit(f"python -m pmlm.finetune {args.task}: error: {err} (the metrics printed above "
                         "are complete; --save to another folder)") from None
    except (ValueError, FileNotFoundError) as err:  # bad input: one line a user can act on
        raise SystemExit(f"python -m pmlm.finetune {args.task}: error: {err}") from None


def run(args: argparse.Namespace) -> dict:
    preset = args.preset or ("smoke" if smoke_mode() else "tiny")
    common = {"seed": "seed", "lr": "lr", "batch_size": "batch_size", "epochs": "epochs",
              "max_steps": "max_steps", "train_limit": "train_limit", "eval_limit": "eval_limit"}
    extra: dict = {"save": args.save}
    # every setting first (the configs check themselves), the device and threads, then the data
    if args.task == "classify":
        cfg = ClassifyConfig.preset(preset, **overrides(args, common))
    else:
        cfg = Seq2SeqConfig.preset(preset, **overrides(args, {**common, "word_drop": "word_drop",
                                                             "factorization": "factorization"}))
        decode = overrides(args, {"beam": "beam_size", "length_penalty": "length_penalty",
                                  "min_length": "min_length", "no_repeat_ngram": "no_repeat_ngram_size"})
        if decode:
            cfg.decode = DecodeConfig(**{**cfg.decode.__dict__, **decode})
    device = check_device(args.device)
    threads, why = choose_threads(args.threads) if device.type == "cpu" else (torch.get_num_threads(), "")
    if device.type == "cpu":
        print(f"torch threads: {threads} ({why})", file=sys.stderr)
    with threads_for_run(threads):  # given back at the end, for a caller that runs more
        return run_task(args, cfg, device, extra)


def run_task(args: argparse.Namespace, cfg, device: torch.device, extra: dict) -> dict:
    if args.task == "classify":
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        rows = read_rows(args.data) if args.data else None
        if rows is not None and len({r.get("label") for r in rows}) == 1:
            raise ValueError(f"{args.data}: every row has label {rows[0].get('label')!r}: a classifier needs "
                             "examples of at least two classes")
        splits = sentiment_splits(rows, labels)
        texts = [r["text"] for r in splits["train"]]
        extra.update(class_names=labels, num_classes=len(labels))
    else:
        splits = bible_splits()
        texts = [r[k] for r in splits["train"] for k in ("source", "target")]
    model, tok = load_backbone(args.pretrained, texts=texts, size=args.size, tokenizer=args.tokenizer)
    model.to(device)
    finetune = finetune_classify if args.task == "classify" else finetune_seq2seq

    def show(metrics: dict) -> None:  # before --save writes: a full or read-only disk loses nothing computed
        metrics["pretrained"] = args.pretrained
        print(json.dumps({k: v for k, v in metrics.items() if k != "config"}, indent=2), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(metrics, indent=2))

    return finetune(model, tok, splits, cfg, log=lambda line: print(line, file=sys.stderr), on_metrics=show,
                    **extra)


if __name__ == "__main__":
    main()
