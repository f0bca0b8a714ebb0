"""Source/target pairs from your own file: ``python -m pmlm.finetune seq2seq --data train.jsonl``.

Two formats, optionally gzipped (``.gz``):

* **JSON lines** (``.jsonl`` or ``.json``), s2s-ft's format (its README, "Input File Format"): one
  object a line, ``{"src": ..., "tgt": ...}``, either two texts or two lists of word pieces already
  split with the model's WordPiece vocabulary. The format is detected per line as s2s-ft's
  ``load_and_cache_examples`` detects it (``s2s_ft/utils.py``: ``isinstance(example["src"], list)``):
  a list ``src`` is pre-tokenized, its pieces looked up in the vocabulary as they are (``[UNK]`` for
  a piece it lacks, as ``convert_tokens_to_ids``); a text goes through the tokenizer. Keys other
  than ``src`` and ``tgt`` are ignored.
* **TSV** (``.tsv``): ``source<TAB>target``, one pair a line. A first line ``src<TAB>tgt`` or
  ``source<TAB>target`` is a header and skipped.

Rows come back as ``{"source", "target", "ref"}`` (``ref`` = ``file:line``), the rows of
:func:`pmlm.finetune.seq2seq.encode_pairs`.

Choices: stricter than s2s-ft, which reads what ``json.loads`` accepts and fails later or not at
all. A pair read wrong trains on the wrong text, so each of these is a ValueError naming the file
and the line, and what to do: an empty line; a line that is not a JSON object; a missing ``src`` or
``tgt``; a ``src`` and ``tgt`` of different kinds (a list beside a text), or of another type; a
blank target; a TSV line without exactly one tab; bytes that are not UTF-8; a file that is not the
gzip its name says. Nothing is dropped silently: pairs too long for the limits are cut or left out
by :func:`~pmlm.finetune.seq2seq.encode_pairs`, which counts them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

PAIR_SUFFIXES = (".jsonl", ".json", ".tsv")
HEADERS = (["src", "tgt"], ["source", "target"])


def read_text(path: str | Path, suffixes: tuple[str, ...]) -> tuple[str, str]:
    """The UTF-8 text of a data file and its format suffix (``.gz`` looked through).

    A ValueError naming the file (and the line) for a file that is missing, of another kind than
    ``suffixes``, not the gzip its name says, not UTF-8, or binary (a NUL byte).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    suffix = path.with_suffix("").suffix if path.suffix == ".gz" else path.suffix
    if suffix not in suffixes:
        raise ValueError(f"{path}: expected a {', '.join(suffixes)} file (optionally .gz)")
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
    return text, suffix


def _side(value, key: str, where: str) -> str | list[str]:
    """One side of a JSON pair: a text, or a list of word pieces."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return value
    raise ValueError(f"{where}: {key!r} is a JSON {type(value).__name__}; give a text or a list of "
                     "word pieces (strings)")


def json_object(line: str, where: str, what: str) -> dict:
    """The JSON object of one line of a JSON-lines file; a ValueError naming ``where`` (``file:line``)
    otherwise, ``what`` saying what the object holds."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); each line is one "
                         f"object {what}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a JSON {type(row).__name__}, not an object {what}")
    return row


def _json_pair(line: str, where: str) -> tuple[str | list[str], str | list[str]]:
    row = json_object(line, where, '{"src": ..., "tgt": ...}')
    missing = [k for k in ("src", "tgt") if k not in row]
    if missing:
        raise ValueError(f"{where}: no {' and no '.join(repr(k) for k in missing)} key (it has "
                         f"{sorted(row)[:6]}); each line needs the source as \"src\" and the target as \"tgt\"")
    src, tgt = _side(row["src"], "src", where), _side(row["tgt"], "tgt", where)
    if isinstance(src, list) != isinstance(tgt, list):
        kinds = ("a list of word pieces", "a text")
        raise ValueError(f"{where}: \"src\" is {kinds[isinstance(src, str)]} but \"tgt\" {kinds[isinstance(tgt, str)]}: "
                         "give both as texts or both as pre-tokenized lists, as s2s-ft reads them")
    return src, tgt


def _tsv_pair(line: str, where: str) -> tuple[str, str]:
    fields = line.split("\t")
    if len(fields) != 2:
        raise ValueError(f"{where}: {len(fields)} tab-separated field{'s' if len(fields) != 1 else ''}, "
                         "expected source<TAB>target; a text holding a tab belongs in JSON lines "
                         '({"src": ..., "tgt": ...})')
    return fields[0], fields[1]


def read_pairs(path: str | Path) -> list[dict]:
    """``[{"source", "target", "ref"}]`` of a JSON-lines or TSV file of pairs (module docstring)."""
    text, suffix = read_text(path, PAIR_SUFFIXES)
    if not text.strip():
        raise ValueError(f"{path} holds no pairs: the file is empty")
    # lines end at "\n" alone, as Python's file iteration (and so s2s-ft) reads them: a text may hold
    # a U+2028 or a form feed, which str.splitlines would take for the end of a line
    lines: list[str | None] = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]
    if suffix == ".tsv" and lines and lines[0].strip().lower().split("\t") in HEADERS:
        lines[0] = None  # the header
    rows = []
    for n, line in enumerate(lines, start=1):
        if line is None:
            continue
        where = f"{path}:{n}"
        if not line.strip():
            raise ValueError(f"{where}: an empty line; every line must hold one pair: remove it")
        src, tgt = (_tsv_pair if suffix == ".tsv" else _json_pair)(line, where)
        if not (tgt if isinstance(tgt, list) else tgt.strip()):
            raise ValueError(f"{where}: the target is empty; a pair needs at least one target word: "
                             "remove the line or give its target")
        rows.append({"source": src, "target": tgt, "ref": f"{Path(path).name}:{n}"})
    if not rows:
        raise ValueError(f"{path} holds a header and no pairs")
    return rows
