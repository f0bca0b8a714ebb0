"""pmlm.prepare and pmlm.data.shards: the prepared directory gives the in-memory path's examples,
the data order is DistributedSampler's, a killed prepare continues, and bad input says what to do."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmlm.data import Boundaries, cut_array, cut_points, load_documents, prepare_corpus
from pmlm.data.shards import MANIFEST, PROGRESS, open_prepared, read_manifest
from pmlm.prepare import prepare
from pmlm.tokenizer import train_tokenizer
from pmlm.train.batches import BatchOrder
from pmlm.train.distributed import Dist

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chapters(tmp_path_factory):
    """40 Austen chapters as .txt files, one document each."""
    docs, _ = load_documents()
    folder = tmp_path_factory.mktemp("chapters")
    for i, doc in enumerate(docs[:40]):
        (folder / f"c{i:03d}.txt").write_text("\n\n".join(doc) + "\n")
    return folder


@pytest.fixture(scope="module")
def prepared(chapters, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "austen40"
    prepare([str(chapters)], out, vocab_size=2000, max_lengths=(64, 128), workers=2, shard_tokens=20_000,
            progress=False)
    return out


def test_prepared_examples_equal_the_in_memory_packing(prepared, chapters):
    for n in (64, 128):
        disk = open_prepared(prepared, n)
        memory = prepare_corpus(str(chapters), max_length=n, tokenizer=disk.tokenizer)
        for name in ("train", "validation"):
            a, b = getattr(memory, name), getattr(disk, name)
            assert len(a) == len(b) > 0
            assert all(a[i] == b[i] for i in range(len(a)))  # token for token, in the same order
            assert a.num_tokens() == b.num_tokens()
            assert (a.token_counts(2000) == b.token_counts(2000)).all()
        decoded = disk.tokenizer.decode(disk.train[0], skip_special_tokens=False)
        assert decoded.startswith("[SOS]") and decoded.count("[EOS]") == 2


def test_several_shards_and_a_complete_manifest(prepared):
    manifest = read_manifest(prepared)
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) > 3  # 20k tokens a shard
    assert manifest["dtype"] == "uint16" and manifest["vocab_size"] <= 2000
    assert manifest["sources"][0]["documents"] == 40
    assert sum(s["documents"] for s in shards) + manifest["splits"]["validation"]["documents"] == 40
    assert manifest["command"] is None and manifest["tokenizer_sha256"]


def test_the_tokenizer_is_trained_on_a_bounded_sample_of_training_text(chapters, tmp_path, monkeypatch):
    import pmlm.prepare.pipeline as pipeline

    seen = []

    def spy(texts, vocab_size):
        texts = list(texts)
        seen.extend(texts)
        return train_tokenizer(texts, vocab_size)

    monkeypatch.setattr(pipeline, "train_tokenizer", spy)
    out = tmp_path / "p"
    prepare([str(chapters)], out, vocab_size=2000, tokenizer_sample_mb=0.05, progress=False, workers=1)
    memory = prepare_corpus(str(chapters), max_length=128, tokenizer=open_prepared(out, 128).tokenizer)
    training = {p for d in memory.train_documents for p in d}
    longest = max(sum(len(p) for p in d) for d in memory.train_documents)
    assert 50_000 <= sum(map(len, seen)) < 50_000 + longest  # whole documents up to the bound
    assert set(seen) <= training  # never a held-out paragraph


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=0, max_size=60), st.sets(st.integers(1, 59), max_size=5))
def test_vectorised_cut_points_equal_the_reference(ids, paragraph_ends):
    ends, quotes = {3, 4}, {5, 6}
    ref = cut_points(ids, sorted(paragraph_ends), ends, quotes)
    got = cut_array(np.array(ids, dtype=np.int64), np.array(sorted(paragraph_ends), dtype=np.int64),
                    Boundaries(ends, quotes, size=13))
    assert got.tolist() == ref


@pytest.mark.parametrize("n,world,batch", [(100, 1, 8), (101, 2, 5), (37, 3, 4)])
def test_batch_order_is_distributed_samplers_and_ranks_are_disjoint(n, world, batch):
    data = list(range(n))
    orders = [BatchOrder(data, batch, 7, Dist(rank=r, world=world)) for r in range(world)]
    for r, order in enumerate(orders):
        sampler = torch.utils.data.DistributedSampler(data, num_replicas=world, rank=r, shuffle=True, seed=7,
                                                      drop_last=True)
        for epoch in range(2):
            sampler.set_epoch(epoch)
            want = list(sampler)
            got = [i for m in range(epoch * order.per_epoch, (epoch + 1) * order.per_epoch) for i in order(m)]
            assert got == want[:order.per_epoch * batch]
    per_epoch = orders[0].per_epoch
    for epoch in range(2):
        seen = [i for o in orders for m in range(epoch * per_epoch, (epoch + 1) * per_epoch) for i in o(m)]
        assert len(seen) == len(set(seen)) == per_epoch * batch * world  # disjoint slices of every batch
    one = BatchOrder(data, batch * world, 7, Dist())
    for m in range(per_epoch):  # one process with the global batch sees the same examples
        assert sorted(one(m)) == sorted(i for o in orders for i in o(m))


def run_prepare(args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "pmlm.prepare", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, **kw)


@pytest.mark.slow
def test_a_killed_prepare_continues_at_its_segment_and_ends_byte_identical(chapters, prepared, tmp_path):
    out = tmp_path / "killed"
    # the uninterrupted run's tokenizer (a trained one may differ in a few tied pieces from run to run)
    args = [str(chapters), "--out", str(out), "--tokenizer", str(prepared / "tokenizer.json"), "--max-length",
            "64", "128", "--workers", "2", "--shard-tokens", "20000", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "pmlm.prepare", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PMLM_PREPARE_TEST_PAUSE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / PROGRESS).is_file() and len(json.loads((out / PROGRESS).read_text())["segments"]) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("train-0000[01].*")}
    assert not (out / MANIFEST).exists() and len(finished) >= 2 * 6
    with pytest.raises(ValueError, match="not finished.*again to continue"):
        open_prepared(out, 64)
    done = run_prepare(args)
    assert done.returncode == 0, done.stderr
    assert {p: (out / p).stat().st_mtime_ns for p in finished} == finished  # never rewritten
    a, b = read_manifest(out), read_manifest(prepared)
    assert a["splits"] == b["splits"]  # every file's SHA-256 equal to the uninterrupted run's


@pytest.mark.slow
def test_bad_inputs_get_one_line(tmp_path, prepared, chapters):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    cases = [([str(tmp_path / "nothing*.txt")], "no file matches"),
             ([str(tmp_path / "empty.txt")], "is empty"),
             ([str(tmp_path / "fake.jsonl.gz")], "could not load"),
             ([str(tmp_path / "latin.txt")], "not UTF-8"),
             ([str(chapters), "--weights", "1", "2"], "weights for 1 sources")]
    for i, (args, message) in enumerate(cases):
        r = run_prepare([*args, "--out", str(tmp_path / f"out{i}"), "--no-progress"])
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # a folder that holds something else is refused, and left as it was
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = run_prepare([str(chapters), "--out", str(other), "--no-progress"])
    assert r.returncode != 0 and "not empty" in r.stderr and (other / "notes.txt").read_text() == "keep me"


def test_bad_prepared_directories_are_refused_clearly(prepared, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    shard = sorted(copy.glob("train-*.bin"))[1]
    shard.write_bytes(shard.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match="truncated"):
        open_prepared(copy, 64)
    manifest = json.loads((prepared / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(ValueError, match="version 99.*prepare it again"):
        open_prepared(copy, 64)
    with pytest.raises(ValueError, match="max_length \\[64, 128\\], not 256"):
        open_prepared(prepared, 256)
    other = train_tokenizer(["some other text entirely, for another vocabulary"] * 50, vocab_size=200)
    with pytest.raises(ValueError, match="another tokenizer"):
        open_prepared(prepared, 64, other)
    with pytest.raises(ValueError, match="no such directory"):
        open_prepared(tmp_path / "nowhere", 64)


def test_a_directory_being_written_is_refused(prepared, tmp_path):
    import fcntl
    import shutil

    copy = tmp_path / "busy"
    shutil.copytree(prepared, copy)
    with open(copy / "prepare.lock", "w") as f:
        f.write(str(os.getpid()))
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match=f"being written by a running prepare \\(pid {os.getpid()}\\)"):
            open_prepared(copy, 64)
    assert open_prepared(copy, 64).train  # the lock went with its holder


def test_blend_weights_repeat_and_subsample_sources(chapters, tmp_path):
    out = tmp_path / "blend"
    files = sorted(chapters.glob("*.txt"))
    prepare([str(files[0].parent / "c00*.txt"), str(files[0].parent / "c01*.txt")], out, weights=[2, 0.5],
            vocab_size=2000, max_lengths=(64,), progress=False, workers=1)
    corpus = open_prepared(out, 64)
    ranges = [tuple(s["train_examples"]["64"]) for s in read_manifest(out)["sources"]]
    n0, n1 = (hi - lo for lo, hi in ranges)
    assert len(corpus.train) == 2 * n0 + round(0.5 * n1)
    items = [tuple(corpus.train[i]) for i in range(len(corpus.train))]
    base = corpus.train.base
    first = [tuple(base[i]) for i in range(*ranges[0])]
    assert items[:2 * n0] == first + first  # weight 2: each example twice
    second = {tuple(base[i]) for i in range(*ranges[1])}
    tail = items[2 * n0:]
    assert len(set(tail)) == len(tail) and set(tail) <= second  # weight 0.5: a subset, no repeats


def test_a_corrupt_shard_fails_verify_with_one_line(prepared, tmp_path):
    import shutil

    copy = tmp_path / "corrupt"
    shutil.copytree(prepared, copy)
    shard = sorted(copy.glob("train-*.bin"))[0]
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    ok = run_prepare(["--verify", "--out", str(prepared)])
    assert ok.returncode == 0 and "matches" in ok.stdout
    bad = run_prepare(["--verify", "--out", str(copy)])
    assert bad.returncode != 0 and "SHA-256" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_saved_dataset_and_a_bert_vocabulary(tmp_path):
    import datasets

    from pmlm.tokenizer import special_ids

    docs, _ = load_documents()
    rows = [{"text": p, "doc": i} for i, d in enumerate(docs[:6]) for p in d]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    words = sorted({w.lower().strip(".,;:!?\"'()") for d in docs[:6] for p in d for w in p.split()} - {""})
    pieces = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,;:!?\"'()-", *words[:3000]]
    (tmp_path / "vocab.txt").write_text("\n".join(pieces) + "\n")
    out = tmp_path / "p"
    prepare([str(tmp_path / "saved")], out, doc_column="doc", tokenizer=str(tmp_path / "vocab.txt"),
            max_lengths=(64,), progress=False, workers=1)
    corpus = open_prepared(out, 64)
    ids = special_ids(corpus.tokenizer)
    assert ids["pseudo"] == 1 and ids["mask"] == 5 and ids["sos"] == 3 and ids["eos"] == 4  # BERT's ids kept
    memory = prepare_corpus(str(tmp_path / "saved"), doc_column="doc", max_length=64, tokenizer=corpus.tokenizer)
    assert [corpus.train[i] for i in range(len(corpus.train))] == memory.train.examples
