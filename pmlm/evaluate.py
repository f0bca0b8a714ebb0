"""Score generated text against references: ROUGE-1/2/L, BLEU and chrF.

    python -m pmlm.predict generate --model runs/xsum --file test.src.jsonl --out preds.txt
    python -m pmlm.evaluate --pred preds.txt --gold test.tgt.txt --metric rouge bleu chrf [--json]

From Python: :func:`rouge`, :func:`bleu`, :func:`chrf`, or :func:`score` for several, each on two
lists of strings, one prediction and one reference per example; every score is out of 100.

Choices, and why:

* **ROUGE** (Lin, 2004) is computed by ``rouge-score``, Google Research's re-implementation of the
  ROUGE-1.5.5 Perl script (the one PEGASUS and Hugging Face's ``evaluate`` use);
  s2s-ft's ``evaluations/eval_for_xsum.py`` uses py-rouge, or the Perl script through pyrouge,
  after its own clean-up of the predictions (``fix_tokenization``), so its numbers and these can
  differ a little. ROUGE-N F1 is the harmonic mean of the clipped n-gram overlap divided by the
  prediction's and by the reference's n-gram count; ROUGE-L's uses the longest common subsequence
  instead. The F1 of each pair is averaged over the pairs. The tokenizer lowercases and keeps only
  ``a-z`` and ``0-9`` (text in another script scores 0: use chrF there); words longer than 3
  letters are Porter-stemmed (``use_stemmer=True``, the usual setting for XSum and CNN/DailyMail;
  ``stemmer=False`` turns it off). ROUGE-L is over the whole text (``rougeL``), not split into
  sentences (``rougeLsum``).
* **BLEU** and **chrF** are sacrebleu's corpus scores with its default settings (BLEU: 13a
  tokenization, exponential smoothing; chrF: character 6-grams, beta 2), as
  :mod:`pmlm.finetune.seq2seq` reports them; pass ``sacrebleu``'s signature along when you cite
  them.
* Files are read line for line as UTF-8: line ``i`` of ``--pred`` is scored against line ``i`` of
  ``--gold`` (an empty line is an empty prediction, and counts). Only ``\\n`` ends a line (a CRLF's
  ``\\r`` is dropped), so that a stray separator inside a text cannot shift every later pair.

Bad input is a ValueError that says what is wrong and what to do: lists or files of different
lengths, no examples, a missing file, bytes that are not UTF-8; the command line prints it as one
line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROUGE_KEYS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
METRICS = ("rouge", "bleu", "chrf")
NAMES = {**ROUGE_KEYS, "bleu": "BLEU", "chrf": "chrF"}


def _check_pairs(preds: list[str], golds: list[str]) -> None:
    for name, xs in (("predictions", preds), ("references", golds)):
        if isinstance(xs, str) or not all(isinstance(x, str) for x in xs):
            raise ValueError(f"the {name} must be a list of strings, one per example")
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions but {len(golds)} references: give one reference per "
                         "prediction, in the same order")
    if not preds:
        raise ValueError("no examples to score: give at least one prediction and its reference")


def rouge(preds: list[str], golds: list[str], *, stemmer: bool = True) -> dict[str, float]:
    """``{"rouge1", "rouge2", "rougeL"}``: mean F1 over the pairs, out of 100 (rouge-score)."""
    from rouge_score import rouge_scorer

    _check_pairs(preds, golds)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=stemmer)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for pred, gold in zip(preds, golds):
        for key, s in scorer.score(gold, pred).items():  # rouge-score takes (target, prediction)
            totals[key] += s.fmeasure
    return {key: 100 * total / len(preds) for key, total in totals.items()}


def bleu(preds: list[str], golds: list[str]) -> float:
    """sacrebleu's corpus BLEU, out of 100."""
    import sacrebleu

    _check_pairs(preds, golds)
    return sacrebleu.corpus_bleu(preds, [golds]).score


def chrf(preds: list[str], golds: list[str]) -> float:
    """sacrebleu's corpus chrF, out of 100."""
    import sacrebleu

    _check_pairs(preds, golds)
    return sacrebleu.corpus_chrf(preds, [golds]).score


def score(preds: list[str], golds: list[str], metrics: tuple[str, ...] | list[str] = METRICS, *,
          stemmer: bool = True) -> dict[str, float]:
    """Several metrics at once: keys ``rouge1 rouge2 rougeL`` (for ``"rouge"``), ``bleu``, ``chrf``."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}: choose from {', '.join(METRICS)}")
    out: dict[str, float] = {}
    for m in dict.fromkeys(metrics):  # each once, in the order given
        if m == "rouge":
            out.update(rouge(preds, golds, stemmer=stemmer))
        else:
            out[m] = (bleu if m == "bleu" else chrf)(preds, golds)
    return out


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


def read_lines(path: str | Path, role: str = "input") -> list[str]:
    """The lines of a text file, each without its ``\\n`` (and a CRLF's ``\\r``); empty lines kept."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no {role} file at {path}: check the path")
    if not path.is_file():
        raise ValueError(f"the {role} file {path} is a folder, not a file of lines")
    text = decode_input(path.read_bytes(), f"the {role} file {path}")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def score_files(pred: str | Path, gold: str | Path, metrics: tuple[str, ...] | list[str] = METRICS, *,
                stemmer: bool = True) -> dict[str, float]:
    """:func:`score` on two files of lines; a ValueError naming both files if their lengths differ."""
    preds, golds = read_lines(pred, "prediction"), read_lines(gold, "reference")
    if len(preds) != len(golds):
        raise ValueError(f"{pred} has {len(preds)} lines but {gold} has {len(golds)}: give one reference line per "
                         "prediction line (python -m pmlm.predict generate writes one line per source)")
    if not preds:
        raise ValueError(f"{pred} and {gold} are empty: nothing to score")
    return score(preds, golds, metrics, stemmer=stemmer)


def table(scores: dict[str, float]) -> str:
    """The scores as a small aligned table."""
    width = max(len(NAMES.get(k, k)) for k in scores)
    return "\n".join([f"{'metric':<{width}}   score", *(f"{NAMES.get(k, k):<{width}}  {v:6.2f}"
                                                         for k, v in scores.items())])


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(prog="python -m pmlm.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--pred", required=True, help="predictions, one per line (python -m pmlm.predict generate --out)")
    p.add_argument("--gold", required=True, help="references, one per line, in the same order")
    p.add_argument("--metric", nargs="+", action="extend", choices=METRICS, metavar="METRIC",
                   help=f"one or more of {', '.join(METRICS)} (default: all)")
    p.add_argument("--no-stemmer", action="store_true", help="ROUGE without Porter stemming")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object instead of a table")
    args = p.parse_args(argv)
    try:
        scores = score_files(args.pred, args.gold, args.metric or METRICS, stemmer=not args.no_stemmer)
    except ValueError as err:
        print(f"python -m pmlm.evaluate: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(scores) if args.json else table(scores))
    return scores


if __name__ == "__main__":
    main()
