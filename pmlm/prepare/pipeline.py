"""``prepare``: sources in, a prepared directory out (:mod:`pmlm.data.shards`), in three streamed passes.

1. **Count**: each source's documents are streamed once to learn their sizes, which is all the
   validation draw needs (:func:`pmlm.data.split.validation_indices`): the held-out documents are
   exactly those the in-memory path holds out from the same source and seed.
2. **Tokenizer**: reuse one (a ``tokenizer.json``, a run directory, or BERT's ``vocab.txt``), or
   train one on a bounded sample of the *training* documents (``tokenizer_sample_mb``): all of them
   when they fit, else a seeded draw of whole documents; a corpus under the bound gets the very
   tokenizer the in-memory path trains.
3. **Encode**: the documents are streamed again in batches to ``workers`` processes
   (:mod:`pmlm.prepare.encode`), at most two batches each in flight, so memory stays flat; their
   arrays are appended to the shards (:mod:`pmlm.prepare.writer`). Every ``shard_tokens`` training
   tokens a *segment* ends: its training and validation shards are finished and recorded in
   ``progress.json`` with the stream position after them. A killed ``prepare`` run again continues
   at the segment it was writing and never rewrites a finished one; batches restart at each segment,
   so the result is byte for byte the uninterrupted run's. ``manifest.json`` is written last.

Choices where the paper is silent, and why: a corpus of several sources is held out per source
(each keeps ``val_fraction`` of its text); text is measured in characters (MB = 10^6 characters);
``workers`` defaults to the cores that are free (:func:`pmlm.machine.free_cores`), since the
tokenizer is the work; one worker runs in this process, where ``tokenizers`` uses its own threads.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys
import time
from array import array
from collections import deque
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pmlm.data.shards import (FORMAT, LOCK, MANIFEST, PROGRESS, VERSION, SPLITS, save_npy, token_dtype,
                              tokenizer_hash, write_atomic)
from pmlm.data.sources import describe, iter_documents
from pmlm.data.split import document_chars, single_document_parts, validation_indices
from pmlm.locks import hold
from pmlm.machine import free_cores  # noqa: F401  (re-exported by pmlm.prepare)
from pmlm.prepare import encode as encode_module
from pmlm.prepare.writer import ShardWriter
from pmlm.tokenizer import TOKENIZER_FILE, load_tokenizer, save_tokenizer, train_tokenizer

BATCH_CHARS = 1_000_000  # characters of text per worker task: big enough to amortise the hand-off
BATCH_DOCS = 256  # and at most this many documents


@dataclass
class Source:
    """One input: what ``--dataset`` takes, with its blend weight and columns."""

    spec: str | None = None  # None or "austen": the bundled corpus
    weight: float = 1.0  # its examples are seen ``weight`` times an epoch on average (pmlm.data.shards.Blend)
    text_column: str | None = None
    doc_column: str | None = None


def units(source: Source, val_fraction: float, max_documents: int | None):
    """The documents of a source as the split sees them: a lone document is cut into parts."""
    it = iter_documents(source.spec, source.text_column, source.doc_column)
    if max_documents is not None:
        it = islice(it, max_documents)
    first = next(it, None)
    if first is None:
        raise ValueError(f"{describe(source.spec)} holds no text: every document is blank; give another source")
    second = next(it, None)
    if second is None:
        yield from single_document_parts(first, val_fraction)
        return
    yield first
    yield second
    yield from it


def bar(total: float | None, desc: str, show: bool):
    form = "{desc}: {n:.1f}/{total:.1f} MB [{elapsed}<{remaining}, {rate_noinv_fmt}]" if total else \
        "{desc}: {n:.1f} MB [{elapsed}, {rate_noinv_fmt}]"
    return tqdm(total=total, desc=desc, unit="MB", disable=not show, file=sys.stderr, bar_format=form)


def count_pass(sources: list[Source], val_fraction: float, seed: int, max_documents, show: bool) -> list[dict]:
    """Pass 1: each source's document sizes, and the indices it holds out."""
    out = []
    with bar(None, "counting", show) as b:
        for source in sources:
            sizes = array("q")
            for doc in units(source, val_fraction, max_documents):
                sizes.append(document_chars(doc))
                b.update(sizes[-1] / 1e6)
            held = validation_indices(list(sizes), val_fraction, seed)
            out.append({"documents": len(sizes), "characters": int(sum(sizes)), "sizes": sizes,
                        "validation": np.array(sorted(held), dtype=np.int64)})
    return out


def sample_paragraphs(sources: list[Source], counts: list[dict], sample_chars: float, seed: int,
                      val_fraction: float, max_documents):
    """Pass 2's text: paragraphs of the training documents chosen for the tokenizer."""
    chosen = []
    for s, c in enumerate(counts):
        held = set(c["validation"].tolist())
        chosen += [(s, i) for i in range(c["documents"]) if i not in held]
    total = sum(counts[s]["sizes"][i] for s, i in chosen)
    if total > sample_chars:  # a seeded draw of whole documents up to the bound
        random.Random(seed).shuffle(chosen)
        keep, size = [], 0
        for s, i in chosen:
            if size >= sample_chars:
                break
            keep.append((s, i))
            size += counts[s]["sizes"][i]
        chosen = sorted(keep)
    wanted: dict[int, set[int]] = {}
    for s, i in chosen:
        wanted.setdefault(s, set()).add(i)
    for s, source in enumerate(sources):
        if s not in wanted:
            continue
        for i, doc in enumerate(units(source, val_fraction, max_documents)):
            if i in wanted[s]:
                yield from doc


def batches(docs, held: set[int], start: int, batch_chars: int = BATCH_CHARS):
    """``[(paragraphs, held_out), ...]`` batches of documents ``start``, ``start + 1``, ...; each
    batch also gives the index of the document after it."""
    batch, chars, i = [], 0, start
    for doc in docs:
        batch.append((doc, i in held))
        chars += document_chars(doc)
        i += 1
        if chars >= batch_chars or len(batch) >= BATCH_DOCS:
            yield batch, i
            batch, chars = [], 0
    if batch:
        yield batch, i


def settings_of(sources, **kw) -> dict:
    return {"sources": [asdict(s) for s in sources], **kw}


def prepare(sources: list[str | None | Source], out: str | Path, *, weights: list[float] | None = None,
            text_column: str | None = None, doc_column: str | None = None, tokenizer: str | None = None,
            vocab_size: int = 8192, tokenizer_sample_mb: float = 200.0, val_fraction: float = 0.05,
            seed: int = 0, max_lengths: tuple[int, ...] = (128,), workers: int | None = None,
            shard_tokens: int = 2**25, max_documents: int | None = None, progress: bool = True,
            command: str | None = None) -> Path:
    """Prepare ``sources`` into the directory ``out``; returns it. See the module docstring.

    ``tokenizer``: a ``tokenizer.json`` (or a run directory holding one), or BERT's ``vocab.txt``;
    None trains one of ``vocab_size`` pieces on ``tokenizer_sample_mb`` MB of training text.
    """
    if not sources:
        raise ValueError("give at least one source to prepare")
    weights = list(weights) if weights is not None else [1.0] * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} sources: give one weight per source")
    if any(not (w > 0 and np.isfinite(w)) for w in weights):
        raise ValueError(f"weights must be positive numbers, got {weights}")
    srcs = [s if isinstance(s, Source) else Source(s, w, text_column, doc_column) for s, w in zip(sources, weights)]
    lengths = tuple(sorted({int(n) for n in max_lengths}))
    if not lengths or min(lengths) < 5:
        raise ValueError(f"max_lengths must be at least 5 tokens each, got {max_lengths}")
    if shard_tokens < 1 or not 0.0 < val_fraction < 1.0 or tokenizer_sample_mb <= 0:
        raise ValueError("shard_tokens must be >= 1, val_fraction in (0, 1) and tokenizer_sample_mb > 0")
    settings = settings_of(srcs, tokenizer=str(tokenizer) if tokenizer else None, vocab_size=vocab_size,
                           tokenizer_sample_mb=tokenizer_sample_mb, val_fraction=val_fraction, seed=seed,
                           max_lengths=list(lengths), shard_tokens=shard_tokens, max_documents=max_documents)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    with hold(root / LOCK, "prepare") as lock_fd:
        return _prepare(root, srcs, settings, workers or free_cores(), progress, command, lock_fd)


def _prepare(root: Path, sources: list[Source], settings: dict, workers: int, show: bool, command,
             lock_fd: int = -1) -> Path:
    if (root / MANIFEST).is_file():
        done = json.loads((root / MANIFEST).read_text())
        if done.get("settings") == settings:
            print(f"{root} is already prepared with these settings", file=sys.stderr)
            return root
        raise ValueError(f"{root} already holds a prepared corpus made with other settings; "
                         "choose another --out (nothing was changed)")
    state = json.loads((root / PROGRESS).read_text()) if (root / PROGRESS).is_file() else None
    if state is None and any(p.name != LOCK for p in root.iterdir()):
        raise ValueError(f"{root} is not empty and holds no prepare of ours; choose an empty or new --out")
    if state is not None and state["settings"] != settings:
        raise ValueError(f"{root} holds an unfinished prepare with other settings; run its own command "
                         f"({state.get('command')}) to finish it, or choose another --out")
    if state is None:
        t0 = time.time()
        counts = count_pass(sources, settings["val_fraction"], settings["seed"], settings["max_documents"], show)
        for s, c in enumerate(counts):
            save_npy(root / f"held-out-{s}.npy", c["validation"])
        t1 = time.time()
        tok = choose_tokenizer(sources, counts, settings, show)
        save_tokenizer(tok, root / TOKENIZER_FILE)
        state = {"format": FORMAT, "version": VERSION, "settings": settings, "command": command,
                 "tokenizer_sha256": tokenizer_hash(tok), "segments": [],
                 "sources": [{k: c[k] for k in ("documents", "characters")} for c in counts],
                 "seconds": {"count": round(t1 - t0, 2), "tokenizer": round(time.time() - t1, 2), "encode": 0.0}}
        write_atomic(root / PROGRESS, json.dumps(state, indent=1).encode())
    tok = load_tokenizer(root / TOKENIZER_FILE)
    t2, state["workers"] = time.time(), workers
    encode_pass(root, sources, state, tok, workers, show, lock_fd)
    state["seconds"]["encode"] = round(state["seconds"]["encode"] + time.time() - t2, 2)  # this process's share
    write_manifest(root, sources, state, tok)
    (root / PROGRESS).unlink()
    return root


def choose_tokenizer(sources, counts, settings: dict, show: bool):
    """The given tokenizer, or one trained on the bounded sample (pass 2)."""
    given = settings["tokenizer"]
    if given is not None:
        if str(given).endswith(".txt"):
            from pmlm.tokenizer import bert_pretraining_tokenizer

            return bert_pretraining_tokenizer(given)
        return load_tokenizer(given)
    text = sample_paragraphs(sources, counts, settings["tokenizer_sample_mb"] * 1e6, settings["seed"],
                             settings["val_fraction"], settings["max_documents"])
    if show:
        print(f"training a tokenizer of {settings['vocab_size']} pieces on up to "
              f"{settings['tokenizer_sample_mb']:g} MB of training text", file=sys.stderr)
    return train_tokenizer(text, vocab_size=settings["vocab_size"])


def stream_batches(root: Path, sources: list[Source], settings: dict, position: list[int]):
    """``(source, batch, next document)`` from ``position`` on; batches never span two sources.

    A batch is cut greedily from its first document, so batches started at a segment's end are the
    uninterrupted run's batches: a resumed run reads exactly what the first run would have.
    """
    for s in range(position[0], len(sources)):
        start = position[1] if s == position[0] else 0
        held = set(np.load(root / f"held-out-{s}.npy").tolist())
        docs = islice(units(sources[s], settings["val_fraction"], settings["max_documents"]), start, None)
        # a shard's worth of text is about 4 characters a token: several batches a shard at least
        for batch, after in batches(docs, held, start, min(BATCH_CHARS, settings["shard_tokens"])):
            yield s, batch, after


def encode_pass(root: Path, sources: list[Source], state: dict, tok, workers: int, show: bool,
                lock_fd: int = -1) -> None:
    """Pass 3: encode from the recorded position on, a segment at a time."""
    settings, segments = state["settings"], state["segments"]
    lengths = tuple(settings["max_lengths"])
    dtype, vocab = token_dtype(tok.get_vocab_size()), tok.get_vocab_size()
    position = segments[-1]["next"] if segments else [0, 0]
    per_source = [dict(d) for d in segments[-1]["source_examples"]] if segments else \
        [{str(n): 0 for n in lengths} for _ in sources]
    total = sum(s["characters"] for s in state["sources"])
    pool = None
    if workers > 1:
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=worker_init,
                                                        initargs=(tok.to_str(), lengths, lock_fd))
    else:
        encode_module.init(tok.to_str(), lengths)
    pause = float(os.environ.get("PMLM_PREPARE_TEST_PAUSE", 0))  # the fault tests' window to kill a segment

    def new_writers() -> dict[str, ShardWriter]:
        k = len(state["segments"])
        return {split: ShardWriter(root, f"{split}-{k:05d}", dtype, lengths, vocab) for split in SPLITS}

    writers, chars, after = new_writers(), 0, position
    stream, pending = stream_batches(root, sources, settings, position), deque()

    def submit() -> bool:
        item = next(stream, None)
        if item is None:
            return False
        s, batch, nxt = item
        job = pool.apply_async(encode_module.encode, (batch,)) if pool else encode_module.encode(batch)
        pending.append((job, s, nxt))
        return True

    try:
        with bar(total / 1e6, "encoding", show) as b:
            b.update(sum(seg["characters"] for seg in segments) / 1e6)
            while len(pending) < 2 * workers and submit():
                pass
            while pending:
                job, s, nxt = pending.popleft()
                submit()  # keep the workers busy while this result is written
                result = job.get() if pool else job
                for split in SPLITS:
                    writers[split].add(result[split])
                for n in lengths:
                    per_source[s][str(n)] += len(result["train"]["examples"][n])
                done = result["train"]["chars"] + result["validation"]["chars"]
                chars += done
                b.update(done / 1e6)
                after = [s, nxt]
                if writers["train"].tokens >= settings["shard_tokens"]:
                    finish_segment(root, state, writers, after, per_source, chars)
                    writers, chars = new_writers(), 0
                    if pause:
                        time.sleep(pause)
            if chars or not state["segments"]:
                finish_segment(root, state, writers, after, per_source, chars)
            else:
                for w in writers.values():
                    w.discard()
            writers = {}
    finally:
        for w in writers.values():
            w.discard()
        if pool is not None:
            pool.terminate()


def worker_init(tok_json: str, lengths, lock_fd: int = -1) -> None:
    """A worker: the lock stays its parent's alone, and the worker ends when its parent does."""
    if lock_fd >= 0:
        os.close(lock_fd)  # a killed prepare's lock must go with it, not live on in its workers
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the workers are the parallelism
    encode_module.init(tok_json, lengths)


def finish_segment(root: Path, state: dict, writers: dict, nxt: list[int], per_source, chars: int) -> None:
    """Finish both shards of a segment and record it, with the stream position after it."""
    records = {split: w.finish() for split, w in writers.items()}
    state["segments"].append({"shards": records, "next": nxt, "characters": chars,
                              "source_examples": [dict(d) for d in per_source]})
    write_atomic(root / PROGRESS, json.dumps(state, indent=1).encode())


def write_manifest(root: Path, sources: list[Source], state: dict, tok) -> None:
    import pmlm

    settings, segs = state["settings"], state["segments"]
    lengths = settings["max_lengths"]
    splits = {}
    for split in SPLITS:
        shards = [seg["shards"][split] for seg in segs]
        splits[split] = {"shards": shards, "documents": sum(s["documents"] for s in shards),
                         "tokens": sum(s["tokens"] for s in shards), "characters": sum(s["characters"] for s in shards),
                         "examples": {str(n): sum(s["examples"][str(n)] for s in shards) for n in lengths}}
    final = segs[-1]["source_examples"]  # each source's training examples
    starts, first = [], {str(n): 0 for n in lengths}  # sources follow each other in the shards
    for d in final:
        starts.append(dict(first))
        first = {n: first[n] + d[n] for n in first}
    source_records = []
    for s, (source, counted) in enumerate(zip(sources, state["sources"])):
        held = np.load(root / f"held-out-{s}.npy")
        source_records.append({**asdict(source), "description": describe(source.spec), **counted,
                               "validation_documents": int(len(held)),
                               "train_examples": {str(n): [starts[s][str(n)], starts[s][str(n)] + final[s][str(n)]]
                                                  for n in lengths}})
    manifest = {"format": FORMAT, "version": VERSION, "pmlm_version": pmlm.__version__,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": state["command"],
                "settings": settings, "tokenizer_sha256": state["tokenizer_sha256"],
                "vocab_size": tok.get_vocab_size(), "dtype": token_dtype(tok.get_vocab_size()).name,
                "max_lengths": lengths, "sources": source_records, "splits": splits,
                "seconds": state["seconds"], "workers": state.get("workers")}
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1).encode())
