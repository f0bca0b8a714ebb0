"""What each rank reads: the corpus, the order of its examples, and masked micro-batches (section 3.3).

A micro-batch is a list of packed ``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data`) given
fresh blockwise masks, pseudo masks and attention masks by :class:`pmlm.PMLMCollator`.

Choices where the paper is silent, and why:

* The masks of micro-step m are drawn from a generator seeded by (seed, rank, m)
  (:func:`mask_seed`), so a resumed run draws exactly the masks the uninterrupted run would have,
  and the same seed gives the same loss curve on the CPU.
* The order of examples is epochs of a DistributedSampler, each shuffled with ``seed + epoch``
  (:class:`BatchOrder`): any micro-step is found again after a restart without replaying the data.
  A batch is thus a pure function of m (:class:`MicroBatches`), and DataLoader workers may build
  batches ahead.
* Without a given tokenizer, rank 0 trains it once and sends it to the others (:func:`load_corpus`),
  so that every rank holds the very same tokenizer without training its own.
* A batch carries ``text_tokens``, its context tokens (not the appended pseudo masks and copies),
  for the loop's ``tokens_per_s``.
"""

from __future__ import annotations

import os

import torch
from tokenizers import Tokenizer

from pmlm.data import Corpus, PackedDataset, prepare_corpus
from pmlm.data.shards import open_prepared
from pmlm.train.config import TrainConfig
from pmlm.train.distributed import Dist, rank0_decides


class BatchOrder:
    """Example indices of global micro-step m for this rank: epochs of DistributedSampler's order.

    Micro-step m lies in epoch ``m // per_epoch``; each epoch is ``torch.randperm`` seeded with
    ``seed + epoch``, cut to a multiple of the world size, and rank r takes every world-th index from
    r on, exactly as ``torch.utils.data.DistributedSampler(shuffle=True, drop_last=True)`` (tested):
    so any micro-step is found again after a restart without replaying the data, the ranks' parts
    of a global batch are disjoint, and with the same global batch (``batch_size x world``) one
    process and several see the same examples. The epoch is kept as one int64 tensor (8 bytes an
    example), never as a Python list.
    """

    def __init__(self, dataset, batch_size: int, seed: int, d: Dist) -> None:
        self.n, self.world, self.rank, self.seed = len(dataset), d.world, d.rank, seed
        self.per_rank = self.n // self.world  # DistributedSampler's num_samples with drop_last
        self.batch_size = batch_size
        self.per_epoch = self.per_rank // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"the training split has {self.n} examples, fewer than one batch "
                             f"of {batch_size} per process x {d.world} process(es); give more text "
                             "or lower --batch-size")
        self._epoch, self._order = -1, None

    def position(self, m: int) -> dict:
        """Where micro-step m reads: its epoch, and the global examples consumed before it."""
        epoch, k = divmod(m, self.per_epoch)
        return {"micro_step": m, "epoch": epoch, "batch_in_epoch": k,
                "examples_consumed": m * self.batch_size * self.world}

    def __call__(self, m: int) -> list[int]:
        epoch, k = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.n, generator=g)  # (n,) int64
            self._epoch, self._order = epoch, perm[self.rank:self.per_rank * self.world:self.world]  # (per_rank,)
        return self._order[k * self.batch_size:(k + 1) * self.batch_size].tolist()


def data_position(corpus: Corpus, cfg: TrainConfig, d: Dist, micro: int) -> dict:
    """What a checkpoint keeps of the data: the micro-step to read next, and the corpus it reads."""
    per_epoch = len(corpus.train) // d.world // cfg.batch_size
    return {"micro_step": micro, "epoch": micro // per_epoch, "examples_consumed": micro * cfg.batch_size * d.world,
            "data": cfg.data, "fingerprint": corpus.fingerprint}


def check_same_data(state: dict, corpus: Corpus) -> None:
    """Refuse to resume a run on a prepared corpus other than its checkpoint's."""
    saved = (state.get("data") or {}).get("fingerprint")
    if saved != corpus.fingerprint:
        raise ValueError(f"cannot resume: the checkpoint read another corpus ({(saved or 'in memory')[:12]}) "
                         f"than {corpus.description} ({(corpus.fingerprint or 'in memory')[:12]}); "
                         "resume with the --data it was trained on")


def mask_seed(seed: int, rank: int, micro: int) -> int:
    """Seed of the masks of micro-step ``micro`` on ``rank`` (distinct for every pair)."""
    return (seed * 1_000_003 + rank) * 1_000_000_007 + micro


class MicroBatches(torch.utils.data.Dataset):
    """Item m = the collated batch of micro-step m: its examples, masked with seed (seed, rank, m).

    A pure function of m, so DataLoader workers may build batches ahead (``num_workers``) and a
    resumed run starts at any m with the very batches the uninterrupted run would have seen.
    """

    def __init__(self, data: PackedDataset, order: BatchOrder, collator, seed: int, rank: int) -> None:
        self.data, self.order, self.collator, self.seed, self.rank = data, order, collator, seed, rank

    def __len__(self) -> int:
        return 2**62  # unbounded: the sampler says which micro-steps to build

    def __getitem__(self, micro: int) -> dict[str, torch.Tensor]:
        self.collator.generator.manual_seed(mask_seed(self.seed, self.rank, micro))
        batch = self.collator([self.data[i] for i in self.order(micro)])
        batch["text_tokens"] = (batch["valid"] & (batch["step_ids"] == 0)).sum()  # () context tokens
        return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def load_corpus(cfg: TrainConfig, tok, d: Dist) -> Corpus:
    """The packed corpus on every rank, with one tokenizer.

    A prepared directory (``cfg.data``) is mapped by every rank on its own: nothing is read into
    memory. Otherwise, without a given tokenizer, rank 0 trains it once and sends it to the others,
    or sends its error so that every rank stops with the same message instead of waiting forever.
    """
    if cfg.data is not None:
        return open_prepared(cfg.data, cfg.max_length, tok, cfg.seed)

    def prepare(tokenizer):
        return prepare_corpus(cfg.dataset, text_column=cfg.text_column, doc_column=cfg.doc_column,
                              val_fraction=cfg.val_fraction, seed=cfg.seed, max_length=cfg.max_length,
                              vocab_size=cfg.vocab_size, max_documents=cfg.max_documents,
                              tokenizer=tokenizer, extra_text=cfg.extra_text)

    if tok is not None or d.world == 1:
        return prepare(tok)
    box = {}

    def train_on_rank0() -> str:
        box["corpus"] = prepare(None)
        return box["corpus"].tokenizer.to_str()

    tok_json = rank0_decides(train_on_rank0, d)
    return box["corpus"] if d.main else prepare(Tokenizer.from_str(tok_json))


def prefetch_pays(device: torch.device) -> bool:
    """Whether building the next batch in a thread while a step runs saves time (:class:`Prefetch`).

    On a GPU it does: the step's kernels run on the device. On a CPU only when torch leaves a core
    free: where its threads fill every core, the batch thread takes cycles from the step's kernels
    and every operator waits for its slowest thread. Measured on the project's 2-core VM, tiny
    preset, 2 torch threads, 300 steps, two rounds: the training loop took 27.2 s with the thread
    against 23.3 s without (``benchmarks/loop_overhead.py`` measures the loop against the bare step).
    """
    if device.type != "cpu":
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.get_num_threads() < cores


class Prefetch:
    """Iterate ``source`` in a background thread, ``depth`` items ahead (for ``num_workers=0``).

    Building a masked batch is Python work (Algorithm 1, the layout) while a training step spends
    most of its time in torch kernels that release the GIL, so one thread builds the next batch
    while the step runs: the batches are the same, in the same order (each is a pure function of
    its micro-step), only earlier. An exception in the thread is raised in the consumer. Used
    where :func:`prefetch_pays`.
    """

    _END = object()

    def __init__(self, source, depth: int = 2) -> None:
        import queue
        import threading

        self.queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, args=(iter(source),), daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        """Put ``item`` unless the consumer has closed; False once it has."""
        import queue

        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:  # the consumer is busy: check stop and retry
                continue
        return False

    def _fill(self, it) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as err:  # noqa: BLE001  handed to the consumer
            self._put(err)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
