"""Use a fine-tuned model: ``python -m pmlm.predict classify|generate --model DIR``.

    python -m pmlm.finetune classify --pretrained reference --save runs/sentiment
    echo "a gorgeous, witty film" | python -m pmlm.predict classify --model runs/sentiment
    python -m pmlm.finetune seq2seq --pretrained reference --save runs/verses
    python -m pmlm.predict generate --model runs/verses --file kjv.txt --beam 4

Input: one text per line, from ``--file`` or standard input (blank lines are skipped). Output: one
line per input, ``label<TAB>probability`` (classify) or the generated text (generate). The same
as Python functions: :func:`classify_texts`, :func:`generate_texts` on a
:func:`pmlm.finetune.saved.load_finetuned` model. Decoding defaults to the settings saved with
the model; ``--greedy`` or ``--beam N`` override them. Bad input ends with one error line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pmlm.finetune.classify import encode_sentences
from pmlm.finetune.common import encode_texts, pad_ids
from pmlm.finetune.decoding import DecodeConfig, generate
from pmlm.finetune.saved import FineTuned, load_finetuned
from pmlm.tokenizer import special_ids


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


def generate_texts(ft: FineTuned, sources: list[str], *, truncate: bool = False, **decode) -> list[str]:
    """The generated text for each source; ``decode`` overrides the saved :class:`DecodeConfig` fields.

    A source longer than the model was fine-tuned on (``max_source_len`` of its ``task.json``) is a
    ValueError, since the model never learned from such positions (notebook 5 shows what it then
    writes); ``truncate=True`` cuts it to that length instead.
    """
    _check(ft, "seq2seq")
    tok = ft.tokenizer
    limit = ft.meta["max_source_len"] - 2  # [SOS] and [EOS] come on top
    ids = encode_texts(tok, sources)
    for i, s in enumerate(ids):
        if len(s) > limit and not truncate:
            raise ValueError(f"source {i + 1} has {len(s)} word pieces; the model was fine-tuned on sources of at "
                             f"most {limit}: shorten it, or truncate (--truncate)")
    ids = [s[:limit] for s in ids]
    cfg = DecodeConfig(**{**ft.meta["decode"].__dict__, **decode})
    out = generate(ft.model, ids, special_ids(tok), cfg)
    return tok.decode_batch(out, skip_special_tokens=True)


def decode_input(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8 text; a ValueError naming ``where`` and the line for binary or other bytes."""
    if b"\x00" in raw:
        line = raw[:raw.index(b"\x00")].count(b"\n") + 1
        raise ValueError(f"{where} holds binary data (a NUL byte on line {line}), not text: give one text per line")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{where} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}): convert it, "
                         "e.g. iconv -f latin1 -t utf-8") from None


def read_lines(path: str | None) -> list[str]:
    """The non-blank lines of ``path`` or of standard input, read as UTF-8 whatever the locale."""
    if path is None:
        stdin = getattr(sys.stdin, "buffer", None)
        text = decode_input(stdin.read(), "standard input") if stdin is not None else sys.stdin.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"no input file {p}")
        text = decode_input(p.read_bytes(), str(p))
    lines = text.splitlines()
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise ValueError("no input: give one text per line (--file FILE or standard input)")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pmlm.predict", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="task", required=True)
    for name in ("classify", "generate"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True, help="directory written by python -m pmlm.finetune ... --save")
        s.add_argument("--file", help="input texts, one per line (default: standard input)")
    g = sub.choices["generate"]
    g.add_argument("--greedy", action="store_true", help="greedy decoding (beam size 1)")
    g.add_argument("--beam", type=int, help="beam size")
    g.add_argument("--max-length", type=int, help="most generated tokens")
    g.add_argument("--truncate", action="store_true", help="cut sources longer than the fine-tuning ones")
    args = p.parse_args(argv)
    try:
        ft = load_finetuned(args.model)
        texts = read_lines(args.file)
        if args.task == "classify":
            for label, prob in classify_texts(ft, texts):
                print(f"{label}\t{prob:.4f}")
        else:
            decode = {}
            if args.greedy or args.beam is not None:
                decode["beam_size"] = 1 if args.greedy else args.beam
            if args.max_length is not None:
                decode["max_length"] = args.max_length
            for line in generate_texts(ft, texts, truncate=args.truncate, **decode):
                print(line)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"python -m pmlm.predict {args.task}: error: {err}") from None


if __name__ == "__main__":
    main()
