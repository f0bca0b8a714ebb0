"""The ablation's results file: one JSON line per finished run, read back with a torn last line
repaired (a kill mid-append), appended to whole."""

from __future__ import annotations

from pathlib import Path


def read_results(path: Path, *, repair: bool = False) -> list[dict]:
    """The rows of a results file; a torn last line (a run killed while writing it) is skipped with a
    warning, and with ``repair`` cut from the file (:func:`pmlm.reports.read_jsonl`)."""
    from pmlm.reports import read_jsonl

    return read_jsonl(path, repair=repair)


def append_result(path: Path, row: dict) -> None:
    """Add ``row`` as one line of ``path``, on a line of its own whatever the file ended with."""
    from pmlm.reports import append_jsonl

    append_jsonl(path, row)
