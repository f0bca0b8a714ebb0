"""Command line: ``python -m pmlm.finetune classify|seq2seq [--pretrained RUN_DIR] [--preset tiny]``.

Examples (CPU)::

    python -m pmlm.train --preset tiny --out-dir runs/tiny           # pre-train first
    python -m pmlm.finetune classify --pretrained runs/tiny          # Rotten Tomatoes, test accuracy
    python -m pmlm.finetune seq2seq --pretrained runs/tiny --beam 4  # KJV -> WEB, BLEU and chrF
    python -m pmlm.finetune classify                                 # the control: no pre-training

Without ``--pretrained`` the model is the control: the ``--size`` preset, freshly initialised, with
a tokenizer trained on the task's training text. ``--preset smoke`` (also chosen by ``PMLM_SMOKE=1``
or ``CI``) runs in seconds; ``tiny`` in minutes on a CPU; ``small`` is the GPU recipe. Flags
override single fields of the preset. ``classify --data FILE`` reads a ``.tsv``/``.csv``
(optionally ``.gz``) or ``.jsonl`` with ``label`` and ``text`` columns; ``--labels`` names its
classes. ``seq2seq --data FILE [--validation FILE]`` reads s2s-ft's JSON lines or a TSV of pairs
(:mod:`pmlm.finetune.pairs`), cutting pairs longer than ``--max-source-length`` /
``--max-target-length`` as s2s-ft does (and saying how many). ``--pretrained`` also takes a
published UniLMv2 checkpoint or a Hugging Face export (:func:`pmlm.finetune.common.load_pretrained_model`).

Scaled as pre-training is (:mod:`pmlm.finetune.loop`): ``torchrun --nproc_per_node N -m
pmlm.finetune seq2seq ...`` gives each process its part of every batch; ``--batch-size`` counts
the pairs of one optimizer step over all processes and ``--grad-accum`` micro-batches;
``--steps``/``--warmup-steps`` set s2s-ft's linear schedule; bf16 autocast on a GPU
(``--no-bf16``: float32); ``--out-dir DIR --save-every N`` writes checkpoints, ``--resume``
continues one. For XSum on the published UniLMv2 (docs/interop.md)::

    torchrun --nproc_per_node 4 -m pmlm.finetune seq2seq --pretrained unilm2-base-uncased \\
        --data xsum/train.jsonl --preset small --max-source-length 464 --max-target-length 48 \\
        --batch-size 64 --grad-accum 2 --lr 7e-5 --warmup-steps 1000 --steps 48000 --word-drop 0.4 \\
        --out-dir runs/xsum-run --save-every 1500 --save runs/xsum

Metrics are printed as JSON and written to ``--out`` if given, before ``--save DIR`` keeps the
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
import io
import json
import math
import os
import sys
from pathlib import Path

import torch

from pmlm.finetune.classify import ClassifyConfig, finetune_classify
from pmlm.finetune.common import load_backbone, smoke_mode
from pmlm.finetune.data import SENTIMENT_LABELS, bible_splits, sentiment_splits
from pmlm.finetune.decode_flags import add_decode_arguments, decode_config
from pmlm.finetune.pairs import json_object, read_pairs, read_text
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq
from pmlm.machine import check_device, choose_threads, threads_for_run
from pmlm.model_files import ModelWriteError
from pmlm.train.distributed import Dist, init_distributed


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a .tsv/.csv (header line) or .jsonl file, optionally gzipped.

    Strict, since a row read wrong trains on the wrong text: a row with more or fewer fields than
    the header, a line that is not a JSON object, bytes that are not UTF-8 or a file that is not
    the gzip its name says are each a ValueError naming the file and the line.
    """
    path = Path(path)
    text, suffix = read_text(path, (".tsv", ".csv", ".jsonl"))
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            rows.append(json_object(line, f"{path}:{n}", "with label and text"))
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
        s.add_argument("--pretrained", help="a run directory of pmlm.train, a save_pretrained directory, a Hugging "
                                            "Face export (pmlm.export_hf), a UniLMv2 checkpoint (the directory of "
                                            "its .bin, config.json and vocab.txt, or the .bin), or 'reference' "
                                            "for the shipped model (default: none, the control)")
        s.add_argument("--tokenizer", help="tokenizer.json to use instead of the run's own")
        s.add_argument("--preset", choices=("smoke", "tiny", "small"),
                       help="fine-tuning recipe (default: smoke under PMLM_SMOKE/CI, else tiny)")
        s.add_argument("--size", default="tiny", help="model preset of the control (without --pretrained)")
        s.add_argument("--seed", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--batch-size", type=int)
        s.add_argument("--epochs", type=int)
        s.add_argument("--max-steps", "--steps", dest="max_steps", type=int,
                       help="optimizer steps (s2s-ft's --num_training_steps; default: the preset's epochs)")
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
    add_decode_arguments(s, lengths=False, batch=False)  # --batch-size here is fine-tuning's
    s.add_argument("--word-drop", type=float, help="probability of [MASK] on the visible target copy")
    s.add_argument("--factorization", choices=("token", "block"), help="target left to right, or in spans")
    s.add_argument("--data", metavar="FILE", help="training pairs: s2s-ft's JSON lines ({\"src\": ..., \"tgt\": ...}, "
                                                  "texts or word-piece lists) or a .tsv of source<TAB>target "
                                                  "(default: the bundled verses); pairs too long are cut as s2s-ft does")
    s.add_argument("--validation", metavar="FILE", help="validation pairs (with --data): loss, and BLEU/chrF on "
                                                        "--eval-limit of them after training")
    s.add_argument("--max-source-length", dest="max_source_len", type=int, metavar="N",
                   help="source tokens with [SOS] and [EOS] (s2s-ft's --max_source_seq_length; XSum 464)")
    s.add_argument("--max-target-length", dest="max_target_len", type=int, metavar="N",
                   help="target tokens with [EOS] (s2s-ft's --max_target_seq_length; XSum 48)")
    s.add_argument("--grad-accum", type=int, metavar="N", help="micro-batches per step (--batch-size counts all "
                                                               "pairs of a step, over processes and micro-batches)")
    s.add_argument("--warmup-steps", type=int, metavar="N", help="steps of linear warm-up (s2s-ft's --num_warmup_steps)")
    s.add_argument("--no-bf16", dest="bf16", action="store_false", default=None,
                   help="float32 on a GPU too (default: bf16 autocast there; the CPU is always float32)")
    s.add_argument("--out-dir", metavar="DIR", help="run directory: checkpoints every --save-every steps and at the end")
    s.add_argument("--save-every", type=int, metavar="N", help="steps between checkpoints in --out-dir")
    s.add_argument("--resume", action="store_true", help="continue the checkpoint in --out-dir")
    s.add_argument("--overwrite", action="store_true", help="replace the run in --out-dir")
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
        scale = {k: k for k in ("grad_accum", "warmup_steps", "max_source_len", "max_target_len", "save_every", "bf16")}
        cfg = Seq2SeqConfig.preset(preset, **overrides(args, {**common, **scale, "word_drop": "word_drop",
                                                             "factorization": "factorization"}),
                                   **({"truncate": True} if args.data else {}))  # s2s-ft's rule for s2s-ft's data
        if args.validation and not args.data:
            raise ValueError("--validation goes with --data (the bundled verses have their own validation books)")
        if (args.resume or args.overwrite or args.save_every) and not args.out_dir:
            raise ValueError("--resume, --overwrite and --save-every need --out-dir, the run directory of checkpoints")
        extra.update(out_dir=args.out_dir, resume=args.resume, overwrite=args.overwrite)
        cfg.decode = decode_config(cfg.decode, args)  # --forbid-ignore-word's ids once the tokenizer is loaded
    for name, value in vars(args).items():  # argparse's float() takes "nan" and "inf": no setting means them
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    device = check_device(args.device)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # torchrun: each process its GPU
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # torchrun's processes on this machine share its cores
    threads, why = (choose_threads(args.threads, processes=processes) if device.type == "cpu"
                    else (torch.get_num_threads(), ""))
    if device.type == "cpu":
        print(f"torch threads: {threads} ({why})", file=sys.stderr)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's communicator on this process's GPU
    d = init_distributed(device.type)  # torchrun: join its process group (alone: nothing)
    try:
        with threads_for_run(threads):  # given back at the end, for a caller that runs more
            return run_task(args, cfg, device, extra, d)
    finally:
        if d.owns_group:
            torch.distributed.destroy_process_group()


def run_task(args: argparse.Namespace, cfg, device: torch.device, extra: dict, d: Dist) -> dict:
    if args.task == "classify":
        if d.world > 1:
            raise ValueError("classify fine-tunes in one process: run it without torchrun (seq2seq takes torchrun)")
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        rows = read_rows(args.data) if args.data else None
        if rows is not None and len({r.get("label") for r in rows}) == 1:
            raise ValueError(f"{args.data}: every row has label {rows[0].get('label')!r}: a classifier needs "
                             "examples of at least two classes")
        splits = sentiment_splits(rows, labels)
        texts = [r["text"] for r in splits["train"]]
        extra.update(class_names=labels, num_classes=len(labels))
    elif args.data:
        train = read_pairs(args.data)
        validation = read_pairs(args.validation) if args.validation else []
        splits = {"train": train, "validation": validation, "test": validation}  # scored on the validation pairs
        texts = [r[k] for r in train for k in ("source", "target") if isinstance(r[k], str)]
        if len(texts) < 2 * len(train) and args.pretrained is None and args.tokenizer is None:
            raise ValueError(f"{args.data} holds pre-tokenized pairs (lists of word pieces): they need the "
                             "vocabulary they were split with; give --pretrained (or --tokenizer)")
    else:
        splits = bible_splits()
        texts = [r[k] for r in splits["train"] for k in ("source", "target")]
    model, tok = load_backbone(args.pretrained, texts=texts, size=args.size, tokenizer=args.tokenizer, d=d)
    if args.task == "seq2seq":
        cfg.decode = decode_config(cfg.decode, args, tok)
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
