"""Pre-training data: documents in, packed ``[SOS] S1 [EOS] S2 [EOS]`` examples out (section 2.2).

The paper pre-trains on Wikipedia and BookCorpus with examples ``[SOS] S1 [EOS] S2 [EOS]`` where S1
and S2 are *contiguous* text (no next-sentence prediction, no random second segment), up to 512
tokens. This module does the same on any text that ``datasets`` can load:

1. **Load** (:func:`load_documents`): the bundled Jane Austen corpus by default (one document per
   chapter), local files (``.txt``/``.md``: one document per file, paragraphs split at blank
   lines; ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet``, optionally gzipped: one paragraph per
   row), or any Hugging Face dataset name when online (``name`` or ``name:config``).
2. **Split** (:func:`split_documents`): validation takes *whole documents*, drawn with a seed, until
   it holds ``val_fraction`` of the characters. Rows without a document column are first grouped
   into contiguous chunks of about ``CHUNK_CHARS`` characters, which then act as documents. So no
   paragraph, and no sentence, is ever cut between the two splits: validation measures text the
   model has not seen, not a sentence whose neighbours it trained on.
3. **Pack** (:func:`pack_document`): a document's paragraphs are tokenized (without special tokens)
   and concatenated; greedy contiguous chunks of at most ``max_length - 3`` tokens are cut, each
   ending at a sentence or paragraph end when one lies in the chunk's second half; each chunk is
   split into S1 and S2 at the sentence end nearest its middle (or at the middle if it has none).

Choices where the paper is silent: examples never cross a document boundary; a document's tail
shorter than ``min_tokens`` tokens is dropped; S1/S2 boundaries prefer sentence ends (``.``, ``!``,
``?``, with a closing quote kept on the left); the packing is deterministic, the randomness of
pre-training lives in the masks (:class:`pmlm.PMLMCollator`), which are drawn anew every step.
"""

from __future__ import annotations

import bisect
import glob
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from pmlm.tokenizer import special_ids, train_tokenizer

CHUNK_CHARS = 10_000  # a pseudo-document when rows carry no document id: ~1.7k words of contiguous text
SENTENCE_ENDS = (".", "!", "?")
CLOSING_QUOTES = ('"', "'", "\u201d", "\u2019", ")")
FILE_BUILDERS = {".txt": "text", ".md": "text", ".text": "text", ".jsonl": "json", ".json": "json",
                 ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


# --------------------------------------------------------------------------------------- loading

def bundled_austen_file() -> Path:
    """Path of the bundled Austen corpus (``pmlm/corpora/austen.jsonl.gz``)."""
    path = Path(__file__).resolve().parent / "corpora" / "austen.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"the bundled corpus {path} is missing; reinstall pmlm or pass --dataset")
    return path


def local_files(spec: str) -> list[Path] | None:
    """The files a local ``--dataset`` names (file, directory or glob); None if it names none."""
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
    if path.suffix.lower() in FILE_BUILDERS or path.suffix.lower() == ".gz" or "/" in spec:
        raise FileNotFoundError(f"no such file or directory: {spec}")
    return None  # not a local path: a dataset name on the Hugging Face hub


def builder_for(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    return FILE_BUILDERS.get(suffixes[-1]) if suffixes else None


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a plain-text document: blocks separated by blank lines, lines re-joined."""
    paragraphs = (" ".join(block.split()) for block in re.split(r"\n\s*\n", text))
    return [p for p in paragraphs if p]


def group_rows(texts: list[str], keys: list | None) -> list[list[str]]:
    """Consecutive rows with the same key form one document; without keys, contiguous chunks."""
    docs: list[list[str]] = []
    last, size = object(), 0
    for i, text in enumerate(texts):
        text = " ".join(str(text).split()) if text is not None else ""
        if not text:
            continue
        key = keys[i] if keys is not None else None
        new = (key != last) if keys is not None else (not docs or size >= CHUNK_CHARS)
        if new:
            docs.append([])
            last, size = key, 0
        docs[-1].append(text)
        size += len(text)
    return docs


def load_documents(dataset: str | None = None, text_column: str | None = None,
                   doc_column: str | None = None) -> tuple[list[list[str]], str]:
    """Load text through ``datasets`` as documents (lists of paragraphs) and a description.

    Args:
        dataset: None for the bundled Austen novels; a local file, directory or glob; or a dataset
            name on the Hugging Face hub (``name`` or ``name:config``, needs the network).
        text_column: the column holding the text (default ``text``).
        doc_column: rows sharing a value of this column, consecutively, form a document; by
            default ``book`` + ``chapter`` for the bundled corpus, else contiguous chunks of rows.
    """
    import datasets

    datasets.disable_progress_bars()
    kwargs: dict = {}
    if dataset is None or dataset == "austen":
        files, builder, desc = [bundled_austen_file()], "json", "bundled Jane Austen novels"
        doc_columns: tuple[str, ...] = ("book", "chapter")
    else:
        files = local_files(dataset)
        doc_columns = ()
        if files is not None:
            builders = {builder_for(p) for p in files}
            if None in builders or len(builders) != 1:
                raise ValueError(f"cannot read {dataset!r}: files must all be one of "
                                 f"{sorted(FILE_BUILDERS)} (optionally .gz), got "
                                 f"{sorted({''.join(p.suffixes) for p in files})}")
            builder = builders.pop()
            desc = f"{len(files)} local file(s) under {dataset}"
            for p in files:
                if p.stat().st_size == 0:
                    raise ValueError(f"{p} is empty: there is no text to pre-train on")
            if builder == "text":
                kwargs["sample_by"] = "document"  # one row per file: a document
            if builder == "csv" and any(".tsv" in p.suffixes for p in files):
                kwargs["delimiter"] = "\t"
        else:
            builder, desc = dataset, f"dataset {dataset!r}"
    if doc_column is not None:
        doc_columns = (doc_column,)
    try:
        if files is not None:
            ds = datasets.load_dataset(builder, data_files=[str(p) for p in files], split="train", **kwargs)
        else:
            name, _, config = dataset.partition(":")
            ds = datasets.load_dataset(name, config or None, split="train")
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"could not load {desc}: {err}") from None
    except Exception as err:  # network, parsing: one clear message instead of a deep traceback
        hint = "" if files is not None else " (offline? pass a local file or use the bundled corpus)"
        raise ValueError(f"could not load {desc}{hint}: {type(err).__name__}: {err}") from None

    text_column = text_column or "text"
    if text_column not in ds.column_names:
        raise ValueError(f"{desc} has no column {text_column!r}; columns: {ds.column_names} "
                         "(choose one with --text-column)")
    for col in doc_columns:
        if col not in ds.column_names:
            raise ValueError(f"{desc} has no document column {col!r}; columns: {ds.column_names}")
    texts = ds[text_column]
    if builder == "text" and files is not None:
        docs = [split_paragraphs(t) for t in texts]
        docs = [d for d in docs if d]
    else:
        keys = list(zip(*(ds[c] for c in doc_columns))) if doc_columns else None
        docs = group_rows(texts, keys)
    if not docs:
        raise ValueError(f"{desc} holds no text: every row of column {text_column!r} is blank")
    return docs, desc


# ------------------------------------------------------------------------------------- splitting

def split_documents(docs: list[list[str]], val_fraction: float = 0.05,
                    seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """Train and validation documents: validation takes whole documents, never parts of one.

    Documents are drawn in a seeded random order until validation holds ``val_fraction`` of the
    characters (at least one document, and at least one is left for training). A single document
    is first cut into contiguous chunks of paragraphs (or, if it is one paragraph, of words).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    docs = [d for d in docs if any(p.strip() for p in d)]
    if not docs:
        raise ValueError("no text to split: every document is blank")
    if len(docs) == 1:
        docs = contiguous_chunks(docs[0], max(2, round(1 / val_fraction)))
    if len(docs) < 2:
        raise ValueError("the text is too short to split into training and validation parts")
    sizes = [sum(len(p) for p in d) for d in docs]
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    val, val_chars = set(), 0
    for i in order[:-1]:  # leave at least one document for training
        if val and val_chars >= val_fraction * sum(sizes):
            break
        val.add(i)
        val_chars += sizes[i]
    train_docs = [d for i, d in enumerate(docs) if i not in val]
    val_docs = [d for i, d in enumerate(docs) if i in val]
    return train_docs, val_docs


def contiguous_chunks(paragraphs: list[str], parts: int) -> list[list[str]]:
    """Cut one document into up to ``parts`` contiguous pieces (of paragraphs, else of words)."""
    if len(paragraphs) == 1:
        words = paragraphs[0].split()
        step = max(1, -(-len(words) // parts))
        return [[" ".join(words[i:i + step])] for i in range(0, len(words), step)]
    step = max(1, -(-len(paragraphs) // parts))
    return [paragraphs[i:i + step] for i in range(0, len(paragraphs), step)]


# --------------------------------------------------------------------------------------- packing

def boundary_ids(tok: Tokenizer) -> dict[str, set[int]]:
    """Ids of sentence-final punctuation, closing quotes and ``##`` word continuations."""
    vocab = tok.get_vocab()
    return {"ends": {vocab[t] for t in SENTENCE_ENDS if t in vocab},
            "quotes": {vocab[t] for t in CLOSING_QUOTES if t in vocab},
            "continuations": {i for t, i in vocab.items() if t.startswith("##")}}


def cut_points(ids: list[int], paragraph_ends: list[int], ends: set[int], quotes: set[int]) -> list[int]:
    """Sorted positions j where the text may be cut *before* token j: sentence or paragraph ends.

    E.g. ``she said . " yes`` gives a cut before ``yes`` (the closing quote stays on the left).
    """
    cuts, trailing = set(paragraph_ends), quotes | ends
    for i, t in enumerate(ids):
        if t in ends and not (i + 1 < len(ids) and ids[i + 1] in trailing):
            cuts.add(i + 1)
        elif t in quotes and i > 0 and ids[i - 1] in ends:
            cuts.add(i + 1)
    return sorted(c for c in cuts if 0 < c < len(ids))


def last_in(points: list[int], lo: int, hi: int) -> int | None:
    """The largest of the sorted ``points`` in (lo, hi], or None."""
    i = bisect.bisect_right(points, hi) - 1
    return points[i] if i >= 0 and points[i] > lo else None


def nearest_in(points: list[int], lo: int, hi: int, target: int) -> int | None:
    """The one of the sorted ``points`` strictly inside (lo, hi) nearest ``target``, or None."""
    i = bisect.bisect_left(points, target)
    near = [p for p in points[max(0, i - 1):i + 1] if lo < p < hi]
    return min(near, key=lambda p: abs(p - target)) if near else None


def pack_document(paragraph_ids: list[list[int]], *, max_length: int, sos_id: int, eos_id: int,
                  ends: set[int] = frozenset(), quotes: set[int] = frozenset(),
                  continuations: set[int] = frozenset(), min_tokens: int = 8) -> list[list[int]]:
    """Examples ``[SOS] S1 [EOS] S2 [EOS]`` of at most ``max_length`` tokens from one document.

    Walk-through with ``max_length = 10`` (budget 7 text tokens) and one paragraph
    ``a b . c d e . f g h`` (10 tokens, sentence ends after ``.``): the first chunk may take 7 tokens,
    ``a b . c d e .`` ends at a sentence end, so it is cut there; its middle sentence end splits it
    into ``a b .`` / ``c d e .``: ``[SOS] a b . [EOS] c d e . [EOS]``. The tail ``f g h`` has 3 < 8
    tokens and is dropped. Where no sentence end is at hand, cuts fall between words (never before
    a ``##`` continuation piece) when they can.
    """
    budget = max_length - 3  # [SOS], [EOS], [EOS]
    if budget < 2:
        raise ValueError(f"max_length={max_length} leaves no room for S1 and S2 beside 3 special tokens")
    ids, para_ends = [], []
    for p in paragraph_ids:
        ids.extend(p)
        para_ends.append(len(ids))
    cuts = cut_points(ids, para_ends, set(ends), set(quotes))
    words = [j for j in range(1, len(ids)) if ids[j] not in continuations]  # cuts between words
    examples, start = [], 0
    while len(ids) - start >= min_tokens:
        end = min(start + budget, len(ids))
        if end < len(ids):  # end at the last sentence end, else word start, of the second half
            end = last_in(cuts, start + budget // 2, end) or last_in(words, start + budget // 2, end) or end
        mid = (start + end) // 2  # S1 | S2 at the sentence end, else word start, nearest the middle
        split = nearest_in(cuts, start, end, mid) or nearest_in(words, start, end, mid) or mid
        s1, s2 = ids[start:split], ids[split:end]
        examples.append([sos_id] + s1 + [eos_id] + s2 + [eos_id])
        start = end
    return examples


class PackedDataset(torch.utils.data.Dataset):
    """Packed examples, each a list of token ids ``[SOS] S1 [EOS] S2 [EOS]``."""

    def __init__(self, examples: list[list[int]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[int]:
        return self.examples[i]

    def num_tokens(self) -> int:
        return sum(len(e) for e in self.examples)


def pack_documents(docs: list[list[str]], tok: Tokenizer, max_length: int,
                   min_tokens: int = 8) -> PackedDataset:
    """Tokenize every document (no special tokens) and pack it into examples."""
    ids = special_ids(tok)
    bounds = boundary_ids(tok)
    flat = [p for d in docs for p in d]
    encoded = [e.ids for e in tok.encode_batch(flat, add_special_tokens=False)] if flat else []
    examples, i = [], 0
    for d in docs:
        paragraph_ids, i = encoded[i:i + len(d)], i + len(d)
        examples += pack_document(paragraph_ids, max_length=max_length, sos_id=ids["sos"],
                                  eos_id=ids["eos"], min_tokens=min_tokens, **bounds)
    return PackedDataset(examples)


# ---------------------------------------------------------------------------------- all together

@dataclass
class Corpus:
    """Everything pre-training reads: the tokenizer, packed splits and the raw documents."""

    tokenizer: Tokenizer
    train: PackedDataset
    validation: PackedDataset
    train_documents: list[list[str]]
    validation_documents: list[list[str]]
    description: str


def task_training_documents(sentences_per_document: int = 20) -> list[list[str]]:
    """The *training* text of the two bundled tasks as documents, for pre-training on it.

    Verses: one document per chapter and version (KJV and WEB apart), verses as paragraphs, from
    the training books only. Sentiment: the training sentences in corpus order, in documents of
    ``sentences_per_document`` (labels dropped). Validation and test text of either task is never
    included (:mod:`pmlm.corpora.splits`).
    """
    from pmlm.corpora.splits import bible_splits, sentiment_splits

    docs: dict[tuple, list[str]] = {}
    for row in bible_splits()["train"]:
        chapter = row["ref"].rsplit(":", 1)[0]
        docs.setdefault(("kjv", chapter), []).append(row["source"])
        docs.setdefault(("web", chapter), []).append(row["target"])
    sentences = [row["text"] for row in sentiment_splits()["train"]]
    reviews = [sentences[i:i + sentences_per_document]
               for i in range(0, len(sentences), sentences_per_document)]
    return list(docs.values()) + reviews


EXTRA_TEXT = {"tasks": (task_training_documents, "the training splits of the sentiment and verse tasks")}


def prepare_corpus(dataset: str | None = None, *, text_column: str | None = None,
                   doc_column: str | None = None, val_fraction: float = 0.05, seed: int = 0,
                   max_length: int = 128, vocab_size: int = 8192, tokenizer: Tokenizer | None = None,
                   max_documents: int | None = None, extra_text: str | None = None) -> Corpus:
    """Load, split, train the tokenizer on the training split (unless given) and pack both splits.

    ``extra_text="tasks"`` adds :func:`task_training_documents` to the *training* split only, after
    the split: validation stays the held-out part of ``dataset``, so its numbers compare with runs
    on ``dataset`` alone.
    """
    if extra_text is not None and extra_text not in EXTRA_TEXT:
        raise ValueError(f"extra_text must be None or one of {sorted(EXTRA_TEXT)}, got {extra_text!r}")
    docs, desc = load_documents(dataset, text_column, doc_column)
    if max_documents is not None:
        docs = docs[:max_documents]
    train_docs, val_docs = split_documents(docs, val_fraction, seed)
    if extra_text is not None:
        more, what = EXTRA_TEXT[extra_text]
        train_docs = train_docs + more()
        desc = f"{desc} + {what} (training only)"
    if tokenizer is None:
        tokenizer = train_tokenizer((p for d in train_docs for p in d), vocab_size=vocab_size)
    train = pack_documents(train_docs, tokenizer, max_length)
    validation = pack_documents(val_docs, tokenizer, max_length)
    for name, split in (("training", train), ("validation", validation)):
        if len(split) == 0:
            raise ValueError(
                f"{desc}: the {name} split gives no example of {max_length} tokens or fewer "
                f"(each needs at least 8 text tokens); the text is shorter than one example per split "
                "- give more text")
    return Corpus(tokenizer, train, validation, train_docs, val_docs, desc)


def token_counts(split: PackedDataset, vocab_size: int) -> torch.Tensor:
    """(V,) float64 count of each token id in ``split``."""
    flat = torch.tensor([t for e in split.examples for t in e], dtype=torch.long)
    return torch.bincount(flat, minlength=vocab_size).double()


def unigram_log_probs(corpus: Corpus) -> torch.Tensor:
    """(V,) log-frequencies of the word pieces of the training split, add-one smoothed; special
    tokens, which are never predicted, get the lowest value."""
    tok = corpus.tokenizer
    special = torch.tensor(sorted(special_ids(tok).values()))
    counts = token_counts(corpus.train, tok.get_vocab_size()) + 1.0
    counts[special] = 0.0
    log_p = (counts / counts.sum()).log()  # (V,), -inf at special ids
    log_p[special] = log_p[torch.isfinite(log_p)].min()
    return log_p


def unigram_baseline(corpus: Corpus) -> dict[str, float]:
    """Loss and accuracy of guessing masked tokens from training-split word-piece frequencies alone.

    The reference a pre-trained model must beat: the cross entropy of the validation text tokens
    under the training unigram distribution (:func:`unigram_log_probs`), and the share of
    validation tokens equal to the most frequent training token. Masked tokens are a near uniform
    sample of the text tokens, so this is what "predict without context" scores.
    """
    log_p = unigram_log_probs(corpus)
    val = token_counts(corpus.validation, log_p.shape[0])
    val[torch.tensor(sorted(special_ids(corpus.tokenizer).values()))] = 0
    return {"unigram_val_loss": float(-(val * log_p).sum() / val.sum()),
            "unigram_val_acc": float(val[int(log_p.argmax())] / val.sum())}
