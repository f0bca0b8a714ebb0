"""Use a fine-tuned model: ``python -m pmlm.predict classify|generate --model DIR``.

    python -m pmlm.finetune classify --pretrained reference --save runs/sentiment
    echo "a gorgeous, witty film" | python -m pmlm.predict classify --model runs/sentiment
    python -m pmlm.finetune seq2seq --pretrained reference --save runs/verses
    python -m pmlm.predict generate --model runs/verses --file kjv.txt --out preds.txt --beam 4
    python -m pmlm.evaluate --pred preds.txt --gold web.txt --metric bleu chrf

    # s2s-ft's XSum decoding (its README), flag for flag
    python -m pmlm.predict generate --model runs/xsum --file test.jsonl --out preds.txt --beam 5 \
        --length-penalty 0 --forbid-duplicate-ngrams --forbid-ignore-word "." --max-target-length 48 \
        --batch-size 32

Input: one text per line, from ``--file`` or standard input; for ``generate`` also a ``.jsonl``
file with a ``src`` field on every line, a text or a list of tokens (s2s-ft's ``decode_seq2seq.py``
input: a list is taken as tokens of the vocabulary, a string is tokenized). Output: one line per
input, in the input's order, ``label<TAB>probability`` (classify) or the generated text (generate),
on standard output or, for ``generate``, written whole into ``--out``. ``classify`` skips blank
lines; ``generate`` refuses them, since its output lines must match its sources line for line.

Decoding (:mod:`pmlm.finetune.decode_flags` lists the flags, each named as in s2s-ft) defaults to
the settings saved with the model; each flag given overrides its field. Sources are decoded in
batches sorted by length, with a progress bar on standard error. The same as Python functions:
:func:`classify_texts`, :func:`generate_texts` on a :func:`pmlm.finetune.saved.load_finetuned`
model. Bad input ends with one error line, naming the file and line where a line is at fault.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from pmlm.evaluate import decode_input
from pmlm.finetune.classify import encode_sentences
from pmlm.finetune.common import encode_texts, pad_ids
from pmlm.finetune.decode_flags import add_decode_arguments, decode_config
from pmlm.finetune.decoding import DecodeConfig, check_decode_memory, generate
from pmlm.finetune.saved import FineTuned, load_finetuned
from pmlm.model_files import write_atomic
from pmlm.tokenizer import special_ids

Source = str | list[str]  # a text, or its tokens (s2s-ft's pre-tokenized input)


def _check(ft: FineTuned, task: str) -> None:
    if ft.task != task:
        raise ValueError(f"the model was fine-tuned for {ft.task!r}, not {task!r}: use "
                         f"python -m pmlm.predict {'classify' if ft.task == 'classify' else 'generate'}")


@torch.no_grad()
def classify_texts(ft: FineTuned, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
    """``(label, probability)`` of the most likely class for each text."""
    _check(ft, "classify")
    pad = special_ids(ft.tokenizer)["pad"]
    seqs = encode_sentences(ft.tokenizer, texts, ft.meta["max_length"], ft.model.backbone.config.max_positions)
    out = []
    for i in range(0, len(seqs), batch_size):
        input_ids, valid = pad_ids(seqs[i:i + batch_size], pad)
        probs = ft.model(input_ids, valid).softmax(-1)  # (B, C)
        p, k = probs.max(-1)
        out += [(ft.meta["labels"][int(c)], float(q)) for c, q in zip(k, p)]
    return out


def encode_sources(ft: FineTuned, sources: list[Source], *, truncate: bool = False) -> list[list[int]]:
    """Token ids of each source: a text is tokenized, a list of tokens looked up (``[UNK]`` for a
    token not in the vocabulary, as s2s-ft's ``convert_tokens_to_ids``).

    A source longer than the model was fine-tuned on (``max_source_len`` of its ``task.json``) is a
    ValueError, since the model never learned from such positions (notebook 5 shows what it then
    writes); ``truncate=True`` cuts it to that length instead.
    """
    tok = ft.tokenizer
    unk, vocab = special_ids(tok)["unk"], tok.get_vocab()
    encoded = iter(encode_texts(tok, [s for s in sources if isinstance(s, str)]))
    ids = [next(encoded) if isinstance(s, str) else [vocab.get(t, unk) for t in s] for s in sources]
    limit = ft.meta["max_source_len"] - 2  # [SOS] and [EOS] come on top
    for i, s in enumerate(ids):
        if len(s) > limit and not truncate:
            raise ValueError(f"source {i + 1} has {len(s)} word pieces; the model was fine-tuned on sources of at "
                             f"most {limit}: shorten it, or truncate (--truncate)")
    return [s[:limit] for s in ids]


def generate_texts(ft: FineTuned, sources: list[Source], *, truncate: bool = False, progress: bool = False,
                   **decode) -> list[str]:
    """The generated text for each source, one line each; ``decode`` overrides the saved
    :class:`DecodeConfig` fields. ``progress`` shows a bar on standard error (in sources a second)
    once the sources and the settings have passed their checks."""
    _check(ft, "seq2seq")
    tok = ft.tokenizer
    ids = encode_sources(ft, sources, truncate=truncate)
    cfg = DecodeConfig(**{**ft.meta["decode"].__dict__, **decode})
    if ids:  # refused before the bar starts, so that the error is the only line
        check_decode_memory(ft.model, cfg, len(ids), 2 + max(len(s) for s in ids))
    with tqdm(total=len(ids), unit="source", desc="decoding", file=sys.stderr, disable=not progress) as bar:
        out = generate(ft.model, ids, special_ids(tok), cfg, progress=bar.update)
    return [" ".join(text.splitlines()) for text in tok.decode_batch(out, skip_special_tokens=True)]


def read_lines(path: str | None) -> list[str]:
    """The non-blank lines of ``path`` or of standard input, read as UTF-8 whatever the locale."""
    lines = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not lines:
        raise ValueError("no input: give one text per line (--file FILE or standard input)")
    return lines


def _read_text(path: str | None) -> str:
    if path is None:
        stdin = getattr(sys.stdin, "buffer", None)
        return decode_input(stdin.read(), "standard input") if stdin is not None else sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no input file {p}")
    return decode_input(p.read_bytes(), str(p))


def _json_source(line: str, where: str) -> Source:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a JSON {type(row).__name__}, not an object with a src field")
    if "src" not in row:
        keys = ", ".join(map(str, row)) or "none"
        raise ValueError(f"{where}: no \"src\" field (its keys: {keys}): give each source as {{\"src\": ...}}")
    src = row["src"]
    if isinstance(src, list) and all(isinstance(t, str) for t in src):
        src = [t for t in src if t.strip()]
    elif isinstance(src, str):
        src = src.strip()
    else:
        raise ValueError(f"{where}: src is a JSON {type(src).__name__}: give a text or a list of tokens (strings)")
    if not src:
        raise ValueError(f"{where}: src is empty: every line needs a source to decode")
    return src


def read_sources(path: str | None) -> list[Source]:
    """The sources to decode, one a line, read as UTF-8: a ``.jsonl`` file's ``src`` fields (a text,
    or a list of tokens), or the lines of any other file or of standard input. Every line counts,
    since the output has a line for each: an empty line, a line that is not JSON or lacks ``src``
    is a ValueError naming the file and the line."""
    name = "standard input" if path is None else str(path)
    lines = _read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise ValueError(f"no input ({name} is empty): give one source per line (--file FILE or standard input)")
    jsonl = path is not None and Path(path).suffix == ".jsonl"
    sources: list[Source] = []
    for n, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            raise ValueError(f"{name}:{n}: an empty line: every line is a source (one output line each); remove "
                             "it or write a source there")
        sources.append(_json_source(line, f"{name}:{n}") if jsonl else line.strip())
    return sources


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pmlm.predict", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="task", required=True)
    for name in ("classify", "generate"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True, help="directory written by python -m pmlm.finetune ... --save")
        s.add_argument("--file", help="input texts, one per line (default: standard input); generate also "
                                      "reads a .jsonl with a src field")
    g = sub.choices["generate"]
    g.add_argument("--out", help="write the generated texts here, one line per source (default: standard output)")
    g.add_argument("--truncate", action="store_true", help="cut sources longer than the fine-tuning ones")
    add_decode_arguments(g)
    args = p.parse_args(argv)
    try:
        ft = load_finetuned(args.model)
        _check(ft, "classify" if args.task == "classify" else "seq2seq")  # before reading any input
        if args.task == "classify":
            for label, prob in classify_texts(ft, read_lines(args.file)):
                print(f"{label}\t{prob:.4f}")
            return
        cfg = decode_config(ft.meta["decode"], args, ft.tokenizer)
        out = None if args.out is None else _check_out(Path(args.out))
        sources = read_sources(args.file)
        start = time.perf_counter()
        lines = generate_texts(ft, sources, truncate=args.truncate, progress=True, **cfg.__dict__)
        seconds = time.perf_counter() - start
        if out is None:
            for line in lines:
                print(line)
        else:
            write_atomic(out, "".join(line + "\n" for line in lines))
        print(f"{len(lines)} source{'s' if len(lines) != 1 else ''} decoded in {seconds:.1f} s "
              f"({len(lines) / max(seconds, 1e-9):.2f} a second; beam {cfg.beam_size}, batches of {cfg.batch_size})"
              + (f", written to {out}" if out else ""), file=sys.stderr)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"python -m pmlm.predict {args.task}: error: {err}") from None
    except OSError as err:  # --out on a full or read-only disk
        raise SystemExit(f"python -m pmlm.predict {args.task}: error: cannot write {args.out}: "
                         f"{err.strerror or err}") from None


def _check_out(out: Path) -> Path:
    """``--out``, checked before any decoding: a file in a folder that exists and can be written."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give a file name, e.g. {out / 'preds.txt'}")
    folder = out.parent
    if not folder.is_dir():
        raise ValueError(f"--out {out}: there is no folder {folder}: create it first")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--out {out}: the folder {folder} cannot be written: choose another")
    return out


if __name__ == "__main__":
    main()
