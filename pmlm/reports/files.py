"""Where results live, and the JSON-lines results files: read back (a torn last line skipped with
a warning), appended to one whole line at a time."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from pmlm.report_tables import RESULTS

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
__all__ = ["CHECKPOINTS", "RESULTS", "ROOT", "append_jsonl", "read_jsonl"]


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict]:
    """The records of a JSON-lines results file; none when it is not there yet.

    A last line that does not parse is a write cut off by a killed run: it is skipped with a
    warning, never a stop, so that the records before it still count (with ``repair`` it is also
    cut from the file, so that the next record appended starts on a line of its own). A bad line
    before the last is a ValueError naming the file and the line.
    """
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(numbered):
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if i < len(numbered) - 1:
                raise ValueError(f"{path}:{n}: not a JSON record ({str(err).splitlines()[0]}); the file is "
                                 "damaged: fix or remove that line") from None
            warnings.warn(f"{path}:{n}: the last line is cut off (a run killed while writing it?) and is "
                          f"skipped{'; removed from the file' if repair else ''}: {len(records)} records read",
                          stacklevel=2)
            if repair:
                from pmlm.model_files import write_atomic
                write_atomic(path, b"".join(raw + b"\n" for _, raw in numbered[:i]))
            break
        records.append(record)
    return records


def append_jsonl(path: Path, record: dict) -> None:
    """Add ``record`` as one line of the results file ``path``, on a line of its own whatever the
    file ended with (a record written whole by an older tool without its newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    newline = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if newline else "") + json.dumps(record) + "\n")
