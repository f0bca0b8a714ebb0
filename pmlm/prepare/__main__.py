"""The command line of :func:`pmlm.prepare.prepare`; a bad input ends with one line, never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse(argv: list[str] | None):
    p = argparse.ArgumentParser(
        prog="python -m pmlm.prepare",
        description="Prepare pre-training text once into memory-mapped token shards (train with --data DIR).")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="austen (bundled), local files / directories / globs (txt md jsonl json csv tsv "
                        "parquet, optionally .gz), a save_to_disk directory, or a hub dataset name")
    p.add_argument("--out", required=True, help="the directory to write (new, or an unfinished prepare to continue)")
    p.add_argument("--weights", type=float, nargs="+", help="blend weight of each source (default 1 each)")
    p.add_argument("--text-column", help="column holding the text (default: text)")
    p.add_argument("--doc-column", help="rows sharing this column form one document")
    p.add_argument("--tokenizer", help="reuse a tokenizer.json, a run directory, or BERT's vocab.txt")
    p.add_argument("--vocab-size", type=int, default=8192, help="pieces of a trained tokenizer (default 8192)")
    p.add_argument("--tokenizer-sample-mb", type=float, default=200.0,
                   help="train the tokenizer on at most this many MB of training text (default 200)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of each source held out, in whole documents")
    p.add_argument("--seed", type=int, default=0, help="the validation draw and the tokenizer sample")
    p.add_argument("--max-length", type=int, nargs="+", default=[128], dest="max_lengths",
                   help="example lengths to pack for (default 128; the paper's is 512)")
    p.add_argument("--workers", type=int, help="tokenizing processes (default: the free cores)")
    p.add_argument("--shard-tokens", type=int, default=2**25, help="training tokens per shard (default 2^25)")
    p.add_argument("--max-documents", type=int, help="only the first N documents of each source")
    p.add_argument("--verify", action="store_true", help="check every file of --out against its SHA-256 and exit")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p, p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parser, args = parse(argv)
    from pmlm.data.shards import check_files, read_manifest
    from pmlm.prepare.pipeline import prepare

    try:
        if args.verify:
            manifest = read_manifest(args.out)
            check_files(Path(args.out), manifest, hashes=True)
            print(f"{args.out}: every file matches its manifest")
            return
        if not args.sources:
            parser.error("give at least one SOURCE")
        for name in ("vocab_size", "shard_tokens", "workers", "max_documents"):
            value = getattr(args, name)
            if value is not None and value < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        command = " ".join(["python -m pmlm.prepare", *(sys.argv[1:] if argv is None else argv)])
        out = prepare(args.sources, args.out, weights=args.weights, text_column=args.text_column,
                      doc_column=args.doc_column, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                      tokenizer_sample_mb=args.tokenizer_sample_mb, val_fraction=args.val_fraction,
                      seed=args.seed, max_lengths=tuple(args.max_lengths), workers=args.workers,
                      shard_tokens=args.shard_tokens, max_documents=args.max_documents,
                      progress=args.progress, command=command)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"pmlm.prepare: error: {err}") from None
    except OSError as err:  # a read-only or full disk: what is written stays, the next run continues
        raise SystemExit(f"pmlm.prepare: error: cannot write {err.filename or args.out}: {err.strerror or err}; "
                         "free space (or pick another --out) and run the same command again to continue"
                         ) from None
    except KeyboardInterrupt:
        raise SystemExit("pmlm.prepare: stopped; run the same command again to continue") from None
    manifest = read_manifest(out)
    train = manifest["splits"]["train"]
    print(f"prepared {out}: {train['documents']:,} training documents, {train['tokens']:,} tokens, "
          f"{manifest['splits']['validation']['documents']:,} held out; train with "
          f"python -m pmlm.train --data {out} --max-length {manifest['max_lengths'][0]}")


if __name__ == "__main__":
    main()
