"""Where pre-training text comes from: a source in, documents (lists of paragraphs) out, streamed.

A *source* is what ``--dataset`` (and each argument of ``python -m pmlm.prepare``) names:

* nothing, or ``austen``: the bundled Jane Austen corpus, one document per chapter;
* local files, a directory or a glob: ``.txt``/``.md`` are one document per file, paragraphs split
  at blank lines; ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet`` (optionally gzipped) give one
  paragraph per row;
* a directory written by ``datasets``' ``save_to_disk`` (read memory-mapped, ``load_from_disk``);
* a dataset name on the Hugging Face hub when online (``name`` or ``name:config``).

Rows form documents: rows sharing a value of the document column, consecutively, are one document
(``book`` + ``chapter`` for the bundled corpus); without one, contiguous chunks of about
``CHUNK_CHARS`` characters act as documents. :func:`iter_documents` streams them (memory does not
grow with the source: ``datasets`` streaming, or one text file at a time); :func:`load_documents`
is the same as a list, for corpora that fit in memory.

Choices where the paper is silent, and why: row formats go through ``datasets`` (its readers of
JSON, CSV and Parquet, compressed or not, are the field's); plain text files are read directly,
one at a time, since a file is a document. A failure names the file and says what to do; where
``datasets`` fails to parse a local row file, the file is read once more with the standard
library (:func:`find_bad_line`, on that error path only) to name the line: a line that is not
JSON, a CSV row with more fields than its header, bytes that are not UTF-8, a file that is not
the gzip or Parquet its name says.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK_CHARS = 10_000  # a pseudo-document when rows carry no document id: ~1.7k words of contiguous text
FILE_BUILDERS = {".txt": "text", ".md": "text", ".text": "text", ".jsonl": "json", ".json": "json",
                 ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
BATCH_ROWS = 1000  # rows read from ``datasets`` at a time


class SourceError(ValueError):
    """A source that cannot be read as asked (a column that is not there), said in words."""


def bundled_austen_file() -> Path:
    """Path of the bundled Austen corpus (``pmlm/corpora/austen.jsonl.gz``)."""
    path = Path(__file__).resolve().parent.parent / "corpora" / "austen.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"the bundled corpus {path} is missing; reinstall pmlm or pass --dataset")
    return path


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a directory written by ``datasets``' ``save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def local_files(spec: str) -> list[Path] | None:
    """The files a local source names (file, directory or glob); None if it names none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and builder_for(p) is not None)
        if not files:
            raise FileNotFoundError(f"directory {path} holds no text file ({', '.join(FILE_BUILDERS)})")
        return files
    if path.is_file():
        return [path]
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"no file matches {spec!r}")
        return files
    if path.suffix.lower() in FILE_BUILDERS or path.suffix.lower() in COMPRESSIONS or "/" in spec:
        raise FileNotFoundError(f"no such file or directory: {spec}")
    return None  # not a local path: a dataset name on the Hugging Face hub


def builder_for(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    return FILE_BUILDERS.get(suffixes[-1]) if suffixes else None


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a plain-text document: blocks separated by blank lines, lines re-joined."""
    paragraphs = (" ".join(block.split()) for block in re.split(r"\n\s*\n", text))
    return [p for p in paragraphs if p]


def iter_grouped(rows: Iterable[tuple[object, object]], by_key: bool) -> Iterator[list[str]]:
    """Documents from ``(text, key)`` rows: consecutive rows with the same key form one document;
    with ``by_key=False``, contiguous chunks of about ``CHUNK_CHARS`` characters."""
    doc: list[str] = []
    last, size = object(), 0
    for text, key in rows:
        text = " ".join(str(text).split()) if text is not None else ""
        if not text:
            continue
        new = (key != last) if by_key else (not doc or size >= CHUNK_CHARS)
        if new and doc:
            yield doc
        if new:
            doc, last, size = [], key, 0
        doc.append(text)
        size += len(text)
    if doc:
        yield doc


def group_rows(texts: list[str], keys: list | None) -> list[list[str]]:
    """:func:`iter_grouped` as a list, from a column of texts and one of keys (or None)."""
    return list(iter_grouped(zip(texts, keys if keys is not None else [None] * len(texts)), keys is not None))


def describe(spec: str | None) -> str:
    """How a source is named in messages and manifests."""
    if spec is None or spec == "austen":
        return "bundled Jane Austen novels"
    files = local_files(spec)
    if files is not None:
        return f"{len(files)} local file(s) under {spec}"
    if is_saved_dataset(Path(spec).expanduser()):
        return f"saved dataset {spec}"
    return f"dataset {spec!r}"


def read_text_file(path: Path) -> str:
    """One text file, decompressed by its extension; a clear error for bytes that are not UTF-8."""
    import fsspec

    try:
        with fsspec.open(str(path), mode="rt", encoding="utf-8", compression="infer") as f:
            return f.read()
    except UnicodeDecodeError:
        raise ValueError(find_bad_line(path, "text") or f"{path} is not UTF-8 text: convert it, e.g. "
                         "iconv -f latin1 -t utf-8") from None
    except (OSError, EOFError) as err:  # a fake .gz, a truncated archive
        raise ValueError(f"{path} cannot be read as {''.join(path.suffixes)}: {err}") from None


def rows_of(spec: str | None, text_column: str | None, doc_columns: tuple[str, ...]):
    """``(text, key)`` rows of a row source, streamed from ``datasets``."""
    import datasets

    datasets.disable_progress_bars()
    # its readers log a file they cannot parse before raising; the error below says it in words
    logging.getLogger("datasets.packaged_modules").setLevel(logging.CRITICAL)
    desc = describe(spec)
    path = Path(spec).expanduser() if spec not in (None, "austen") else None
    files = [bundled_austen_file()] if path is None else (None if is_saved_dataset(path) else local_files(spec))
    try:
        if files is not None:
            builder = builder_for(files[0])
            kwargs = {"delimiter": "\t"} if builder == "csv" and any(".tsv" in p.suffixes for p in files) else {}
            ds = datasets.load_dataset(builder, data_files=[str(p) for p in files], split="train",
                                       streaming=True, **kwargs)
        elif path is not None and is_saved_dataset(path):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds["train"]
        else:
            name, _, config = spec.partition(":")
            ds = datasets.load_dataset(name, config or None, split="train", streaming=True)
        column = text_column or "text"
        for batch in ds.iter(batch_size=BATCH_ROWS):
            missing = [c for c in (column, *doc_columns) if c not in batch]
            if missing:
                which = "" if missing[0] == column else "document "
                raise SourceError(f"{desc} has no {which}column {missing[0]!r}; columns: {sorted(batch)}"
                                  + (" (choose one with --text-column)" if not which else ""))
            keys = zip(*(batch[c] for c in doc_columns)) if doc_columns else [None] * len(batch[column])
            yield from zip(batch[column], keys)
    except SourceError:
        raise
    except FileNotFoundError as err:
        raise ValueError(f"could not load {desc}: {err}") from None
    except Exception as err:  # parsing, network: one clear message instead of a deep traceback
        for p in files or []:  # a local file: find the line at fault ourselves
            where = find_bad_line(p, builder_for(p))
            if where:
                raise ValueError(f"could not load {desc}: {where}") from None
        hint = "" if files is not None else " (offline? pass a local file or use the bundled corpus)"
        first = str(err).splitlines()[0] if str(err) else ""
        cause = err.__cause__ or err.__context__
        more = f" ({type(cause).__name__}: {str(cause).splitlines()[0]})" if cause is not None and str(cause) else ""
        raise ValueError(f"could not load {desc}{hint}: {type(err).__name__}: {first}{more}") from None


def find_bad_line(path: Path, builder: str | None) -> str | None:
    """Where a local file fails to parse, as ``"path:line: what"`` (``"path ..."`` for the whole
    file); None when the standard library reads it cleanly. A second, streamed read of the file that
    only the error paths of :func:`rows_of` and :func:`read_text_file` take."""
    import fsspec

    not_utf8 = "is not UTF-8 text: convert the file, e.g. iconv -f latin1 -t utf-8"
    if builder == "parquet":
        try:
            import pyarrow.parquet as pq

            pq.ParquetFile(str(path))
        except Exception as err:  # pyarrow's own errors: a fake or truncated file
            return f"{path} is not a Parquet file ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        return None
    try:
        with fsspec.open(str(path), mode="rb", compression="infer") as f:
            if builder == "csv":
                bad = _bad_csv_row(path, f)
                if bad is None or "UTF-8" not in bad:
                    return bad
                builder = "text"  # bytes that are not UTF-8: read it again, line by line, to name the line
                f.seek(0)
            head, skipped = f.read(1), 0  # leading blank lines skipped, and counted
            while head.isspace():
                skipped += head == b"\n"
                head = f.read(1)
            if builder == "json" and head == b"[":  # one JSON array: it has to fit in memory anyway
                raw = head + f.read()
                try:
                    json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    return f"{path}:{skipped + raw[:err.start].count(10) + 1}: byte 0x{raw[err.start]:02x} {not_utf8}"
                except json.JSONDecodeError as err:
                    return f"{path}:{skipped + err.lineno}: not valid JSON ({err.msg} at column {err.colno})"
                return None
            first = head + f.readline()
            for n, line in enumerate(_chain([first] if head else [], f), start=1 + skipped):
                try:
                    text = line.decode("utf-8")  # a UTF-8 sequence never spans a newline
                except UnicodeDecodeError as err:
                    return f"{path}:{n}: byte 0x{line[err.start]:02x} {not_utf8}"
                if builder != "json" or not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as err:
                    return f"{path}:{n}: not valid JSON ({err.msg} at column {err.colno})"
                if not isinstance(row, dict):
                    return f"{path}:{n}: a JSON {type(row).__name__}, not an object with a text field"
    except (OSError, EOFError) as err:  # a fake .gz, a truncated archive
        return (f"{path} cannot be read as {''.join(path.suffixes)} ({err}): a truncated download, "
                "or not compressed as its name says")
    return None


def _bad_csv_row(path: Path, f) -> str | None:
    """The first row of an open CSV/TSV file with more fields than its header (what ``datasets``'
    pandas reader refuses), or undecodable bytes, or a quoting error."""
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader, None) or []
        for fields in reader:
            if len(fields) > len(header):
                return (f"{path}:{reader.line_num}: {len(fields)} fields where the header has {len(header)} "
                        f"({', '.join(header)}); quote a text that holds the "
                        f"{'tab' if delimiter == chr(9) else 'comma'}")
    except UnicodeDecodeError as err:
        return f"{path}: byte 0x{err.object[err.start]:02x} is not UTF-8 text"
    except csv.Error as err:
        return f"{path}:{reader.line_num}: {err}"
    finally:
        text.detach()  # leave ``f`` open for the caller
    return None


def _chain(first, rest):
    yield from first
    yield from rest


def iter_documents(spec: str | None = None, text_column: str | None = None,
                   doc_column: str | None = None) -> Iterator[list[str]]:
    """Stream the documents (lists of paragraphs) of a source; see the module docstring."""
    files = local_files(spec) if spec not in (None, "austen") else None
    if files is not None:
        builders = {builder_for(p) for p in files}
        if None in builders or len(builders) != 1:
            raise ValueError(f"cannot read {spec!r}: files must all be one of {sorted(FILE_BUILDERS)} "
                             f"(optionally .gz), got {sorted({''.join(p.suffixes) for p in files})}")
        for p in files:
            if p.stat().st_size == 0:
                raise ValueError(f"{p} is empty: there is no text to pre-train on; remove it or give "
                                 "another source")
        if builders == {"text"}:
            for p in files:
                paragraphs = split_paragraphs(read_text_file(p))
                if paragraphs:
                    yield paragraphs
            return
    doc_columns: tuple[str, ...] = ("book", "chapter") if spec in (None, "austen") else ()
    if doc_column is not None:
        doc_columns = (doc_column,)
    yield from iter_grouped(rows_of(spec, text_column, doc_columns), bool(doc_columns))


def load_documents(dataset: str | None = None, text_column: str | None = None,
                   doc_column: str | None = None) -> tuple[list[list[str]], str]:
    """All documents of a source (:func:`iter_documents`) as a list, and its description.

    Args:
        dataset: None for the bundled Austen novels; a local file, directory or glob; a
            ``save_to_disk`` directory; or a dataset name on the Hugging Face hub (needs the network).
        text_column: the column holding the text (default ``text``).
        doc_column: rows sharing a value of this column, consecutively, form a document; by
            default ``book`` + ``chapter`` for the bundled corpus, else contiguous chunks of rows.
    """
    desc = describe(dataset)
    docs = list(iter_documents(dataset, text_column, doc_column))
    if not docs:
        raise ValueError(f"{desc} holds no text: every row of column {text_column or 'text'!r} is blank")
    return docs, desc
