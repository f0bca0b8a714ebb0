"""Writing one shard of a prepared directory (:mod:`pmlm.data.shards` describes the files).

Tokens are appended to ``NAME.bin.tmp`` batch by batch, so a shard never sits in memory; the index
arrays (a few bytes per sentence) are gathered and written at :meth:`ShardWriter.finish`, each to a
temporary file renamed into place, the ``.bin`` last. A shard is *finished* only when the
progress file lists it (:mod:`pmlm.prepare.pipeline`): a killed ``prepare`` rewrites the shard it
was writing and leaves the finished ones alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pmlm.data.shards import file_sha256, save_npy, shard_files


class ShardWriter:
    """Accumulates one split's arrays for shard ``name`` in ``root``."""

    def __init__(self, root: Path, name: str, dtype: np.dtype, max_lengths, vocab: int) -> None:
        self.root, self.name, self.dtype, self.max_lengths, self.vocab = root, name, dtype, tuple(max_lengths), vocab
        self.bin_tmp = root / f"{name}.bin.tmp"
        self.file = open(self.bin_tmp, "wb")
        self.tokens = 0
        self.doc_starts, self.paragraphs, self.cuts = [np.zeros(1, np.int64)], [], []
        self.examples = {n: [] for n in self.max_lengths}
        self.counts = {n: np.zeros(vocab, np.int64) for n in self.max_lengths}
        self.chars = 0

    def add(self, part: dict) -> None:
        """Append one batch's arrays (:func:`pmlm.prepare.encode.encode`'s output for this split)."""
        if len(part["doc_lengths"]) == 0:
            return
        if self.tokens + len(part["tokens"]) >= 2**32:
            raise ValueError("a shard would pass 2**32 tokens; lower --shard-tokens")
        self.file.write(part["tokens"].astype(self.dtype, copy=False).tobytes())
        base = self.tokens
        self.doc_starts.append(base + np.cumsum(part["doc_lengths"]))
        self.paragraphs.append(base + part["paragraphs"])
        self.cuts.append(base + part["cuts"])
        for n in self.max_lengths:
            self.examples[n].append(base + part["examples"][n])
            self.counts[n] += part["counts"][n]
        self.tokens += len(part["tokens"])
        self.chars += part["chars"]

    def finish(self) -> dict:
        """Write the index files and rename the tokens into place; returns the shard's record."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        u32 = np.uint32
        docs = np.concatenate(self.doc_starts).astype(u32)  # (d + 1,)
        save_npy(self.root / f"{self.name}.docs.npy", docs)
        save_npy(self.root / f"{self.name}.paragraphs.npy", np.concatenate([np.zeros(0, np.int64), *self.paragraphs]).astype(u32))
        save_npy(self.root / f"{self.name}.cuts.npy", np.concatenate([np.zeros(0, np.int64), *self.cuts]).astype(u32))
        examples, example_tokens = {}, {}
        for n in self.max_lengths:
            spans = np.concatenate([np.zeros((0, 3), np.int64), *self.examples[n]]).astype(u32)  # (e, 3)
            save_npy(self.root / f"{self.name}.examples-{n}.npy", spans)
            save_npy(self.root / f"{self.name}.counts-{n}.npy", self.counts[n])
            examples[str(n)] = len(spans)
            example_tokens[str(n)] = int(self.counts[n].sum())  # [SOS] and [EOS]s included
        os.replace(self.bin_tmp, self.root / f"{self.name}.bin")
        files = {f: {"bytes": (self.root / f).stat().st_size, "sha256": file_sha256(self.root / f)}
                 for f in shard_files(self.name, self.max_lengths)}
        return {"name": self.name, "tokens": self.tokens, "documents": len(docs) - 1, "characters": self.chars,
                "examples": examples, "example_tokens": example_tokens, "files": files}

    def discard(self) -> None:
        """Close and remove the unfinished tokens file (a finished shard has none)."""
        if not self.file.closed:
            self.file.close()
        self.bin_tmp.unlink(missing_ok=True)
