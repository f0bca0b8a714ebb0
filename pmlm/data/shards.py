"""A prepared directory: packed examples of any corpus, memory-mapped from token shards.

``python -m pmlm.prepare`` (:mod:`pmlm.prepare`) writes it once; every training run, on every rank
of every node, maps it (:func:`open_prepared`): memory and start time do not depend on the size of
the corpus. The layout, readable in one sitting (Megatron-LM's ``.bin`` + index, with numpy's
self-describing ``.npy`` for the index)::

    DIR/manifest.json                   what is here: sources, weights, tokenizer hash, counts, command
    DIR/tokenizer.json                  the tokenizer every shard was encoded with
    DIR/train-00000.bin                 token ids, flat, uint16 (uint32 if the vocabulary needs it)
    DIR/train-00000.docs.npy            (d + 1,) where each document starts in the .bin, and the end
    DIR/train-00000.paragraphs.npy      (p,) where each paragraph ends
    DIR/train-00000.cuts.npy            (c,) the sentence and paragraph ends the packer may cut at
    DIR/train-00000.examples-128.npy    (e, 3) (start, split, end) of each example of max_length 128
    DIR/train-00000.counts-128.npy      (V,) how often each token id occurs in those examples
    DIR/validation-00000.*              the same for the held-out documents

Example i of a shard is ``[SOS] bin[start:split] [EOS] bin[split:end] [EOS]``: the spans are the
in-memory packer's (:func:`pmlm.data.packing.pack_spans`), so a prepared directory gives exactly
the examples :func:`pmlm.data.prepare_corpus` packs from the same text and tokenizer.

Why this format (measured in ``benchmarks/data_scale.py``, ``results/data_scale.json``): a flat
token file read through ``np.memmap`` costs one page-cache read per example and no Python object
per token, and the index is a handful of small arrays. ``datasets``' Arrow files would do as well
for reading, but writing them holds each shard's rows as Python lists on the way, and nanoGPT's
single flat file has no document or sentence index, which the packer needs.

Choices, and why:

* Offsets inside a shard are uint32 (a shard holds at most ``2**32`` tokens), so an index costs
  4 bytes an entry; shards are cut every ``shard_tokens`` training tokens (default 32M: 64 MB of
  uint16, MosaicML's shard size), which is also how much a killed ``prepare`` redoes.
* Each file's size is in the manifest and checked when the directory is opened, so a truncated
  shard is refused at start, not met as garbage at step 100,000; ``python -m pmlm.prepare --verify``
  also checks each file's SHA-256.
* Sources are blended by weight (:class:`Blend`): weight w gives a source's examples w times per
  epoch on average (0.5: a seeded half of them; 2: each twice), so a source's share of training is
  ``w * n / sum(w * n)``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from pmlm.tokenizer import TOKENIZER_FILE, special_ids

FORMAT, VERSION = "pmlm-prepared", 1
MANIFEST, PROGRESS, LOCK = "manifest.json", "progress.json", "prepare.lock"
SPLITS = ("train", "validation")


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 where every id fits (BERT's 30,522 do), else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def tokenizer_hash(tok: Tokenizer) -> str:
    """SHA-256 of what decides the ids: the vocabulary, the normalizer and the pre-tokenizer."""
    spec = json.loads(tok.to_str())
    key = {"vocab": sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1]),
           "normalizer": spec.get("normalizer"), "pre_tokenizer": spec.get("pre_tokenizer"),
           "model": (spec.get("model") or {}).get("type")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def shard_files(name: str, max_lengths) -> list[str]:
    """The file names of shard ``name`` (e.g. ``train-00003``)."""
    return ([f"{name}.bin", f"{name}.docs.npy", f"{name}.paragraphs.npy", f"{name}.cuts.npy"]
            + [f"{name}.{kind}-{n}.npy" for n in max_lengths for kind in ("examples", "counts")])


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a finished prepared directory, or a one-line error saying what to do."""
    from pmlm.locks import holder  # who is writing it, if anyone

    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"--data {root}: no such directory; make one with python -m pmlm.prepare SOURCE --out {root}")
    pid = holder(root / LOCK)
    if pid is not None:
        raise ValueError(f"{root} is being written by a running prepare (pid {pid}); wait for it to finish")
    path = root / MANIFEST
    if not path.is_file():
        if (root / PROGRESS).is_file():
            command = json.loads((root / PROGRESS).read_text()).get("command") or "the same prepare command"
            raise ValueError(f"{root} is not finished (its prepare was stopped); run {command} again to continue it")
        raise ValueError(f"{root} holds no {MANIFEST}: not a directory written by python -m pmlm.prepare")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); prepare the corpus again") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{root} was prepared as {manifest.get('format')} version {manifest.get('version')}; "
                         f"this pmlm reads {FORMAT} version {VERSION}: prepare it again with this version")
    return manifest


class PreparedSplit(torch.utils.data.Dataset):
    """One split of a prepared directory at one ``max_length``: item i = example i as a list of ids."""

    def __init__(self, root: Path, manifest: dict, split: str, max_length: int, sos_id: int, eos_id: int) -> None:
        self.sos, self.eos = sos_id, eos_id
        self.dtype = np.dtype(manifest["dtype"])
        self.shards = [s for s in manifest["splits"][split]["shards"] if s["examples"][str(max_length)] > 0]
        self.root, self.max_length = root, max_length
        counts = [s["examples"][str(max_length)] for s in self.shards]
        self.starts = [0, *np.cumsum(counts).tolist()]  # first example of each shard, and the end
        # np.asarray: plain arrays over the same mapped pages (slicing a np.memmap costs more)
        self.tokens = [np.asarray(np.memmap(root / f"{s['name']}.bin", dtype=self.dtype, mode="r", shape=(s["tokens"],)))
                       for s in self.shards]
        self.spans = [np.asarray(np.load(root / f"{s['name']}.examples-{max_length}.npy", mmap_mode="r"))
                      for s in self.shards]

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> list[int]:
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} of {len(self)}")
        k = bisect.bisect_right(self.starts, i) - 1  # the shard holding example i
        start, split, end = self.spans[k][i - self.starts[k]].tolist()
        text = self.tokens[k][start:end].tolist()  # one read of the example's tokens
        cut = split - start
        return [self.sos, *text[:cut], self.eos, *text[cut:], self.eos]

    def num_tokens(self) -> int:
        """Tokens in all examples, special tokens included (as :class:`PackedDataset` counts)."""
        return int(sum(s["example_tokens"][str(self.max_length)] for s in self.shards))

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """(V,) int64 count of each token id over all examples, from the counts stored per shard."""
        total = np.zeros(vocab_size, dtype=np.int64)
        for s in self.shards:
            counts = np.load(self.root / f"{s['name']}.counts-{self.max_length}.npy")
            total[:len(counts)] += counts[:vocab_size]
        return total


class Blend(torch.utils.data.Dataset):
    """The training examples with each source weighted (see the module docstring).

    ``ranges[s] = (first, end)`` are source s's examples in ``base``; source s contributes
    ``round(w_s * n_s)`` items: ``floor(w_s)`` passes over its examples, then a seeded subset for the
    fraction. With every weight 1 it is ``base`` itself, item for item.
    """

    def __init__(self, base: PreparedSplit, ranges: list[tuple[int, int]], weights: list[float], seed: int) -> None:
        self.base, self.parts = base, []
        for s, ((first, end), w) in enumerate(zip(ranges, weights)):
            n = end - first
            whole, extra = int(w), int(round((w - int(w)) * n))
            subset = np.random.default_rng([seed, s]).permutation(n)[:extra] if extra else np.zeros(0, np.int64)
            self.parts.append((first, n, whole * n, subset))
        self.starts = np.cumsum([0, *(whole + len(sub) for _, _, whole, sub in self.parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> list[int]:
        s = int(np.searchsorted(self.starts, i, side="right")) - 1
        first, n, whole, subset = self.parts[s]
        j = i - int(self.starts[s])
        return self.base[first + (j % n if j < whole else int(subset[j - whole]))]

    def num_tokens(self) -> int:
        return self.base.num_tokens()

    def token_counts(self, vocab_size: int) -> np.ndarray:
        return self.base.token_counts(vocab_size)


def check_files(root: Path, manifest: dict, hashes: bool = False) -> None:
    """Every shard file there at its recorded size (and SHA-256 with ``hashes``), or a clear error."""
    for split in SPLITS:
        for shard in manifest["splits"][split]["shards"]:
            for name, record in shard["files"].items():
                path = root / name
                if not path.is_file():
                    raise ValueError(f"{path} is missing: the prepared directory is incomplete; prepare it again")
                if path.stat().st_size != record["bytes"]:
                    raise ValueError(f"{path} has {path.stat().st_size} bytes, the manifest says {record['bytes']}: "
                                     "truncated or replaced; prepare the corpus again")
                if hashes and file_sha256(path) != record["sha256"]:
                    raise ValueError(f"{path} does not match its SHA-256 in the manifest: corrupt; prepare it again")


def open_prepared(directory: str | Path, max_length: int, tokenizer: Tokenizer | None = None, seed: int = 0):
    """The corpus of a prepared directory at ``max_length``, as :class:`pmlm.data.Corpus` holds it.

    ``tokenizer``: the run's own (a resumed run's, or ``--tokenizer``); refused unless it is the
    one the directory was encoded with. None takes the directory's.
    """
    from pmlm.data.corpus import Corpus

    root = Path(directory)
    manifest = read_manifest(root)
    check_files(root, manifest)
    own = Tokenizer.from_file(str(root / TOKENIZER_FILE))
    if tokenizer is not None and tokenizer_hash(tokenizer) != manifest["tokenizer_sha256"]:
        raise ValueError(f"{root} was encoded with another tokenizer than this run's (hash "
                         f"{manifest['tokenizer_sha256'][:12]} vs {tokenizer_hash(tokenizer)[:12]}); "
                         "train with the directory's tokenizer, or prepare the corpus with --tokenizer")
    if str(max_length) not in {str(n) for n in manifest["max_lengths"]}:
        raise ValueError(f"{root} was packed for max_length {manifest['max_lengths']}, not {max_length}; "
                         f"pass --max-length {manifest['max_lengths'][0]} or prepare again with "
                         f"--max-length {max_length}")
    ids = special_ids(own)
    train, val = (PreparedSplit(root, manifest, s, max_length, ids["sos"], ids["eos"]) for s in SPLITS)
    sources = manifest["sources"]
    weights = [s["weight"] for s in sources]
    if any(w != 1 for w in weights):
        ranges = [tuple(s["train_examples"][str(max_length)]) for s in sources]
        train = Blend(train, ranges, weights, seed)
    for name, split in (("training", train), ("validation", val)):
        if len(split) == 0:
            raise ValueError(f"{root}: the {name} split holds no example of max_length {max_length}; "
                             "give more text")
    desc = f"prepared {root} ({', '.join(s['description'] for s in sources)})"
    return Corpus(own, train, val, None, None, desc, fingerprint(manifest))


def fingerprint(manifest: dict) -> str:
    """A prepared corpus's identity: SHA-256 of its shards' file hashes and its sources' weights."""
    key = [[f["sha256"] for sh in manifest["splits"][split]["shards"] for f in sh["files"].values()]
           for split in SPLITS] + [[s["weight"] for s in manifest["sources"]]]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()
