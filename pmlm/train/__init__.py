"""Pre-training a PMLM: ``python -m pmlm.train --preset tiny`` (sections 3.3, 4.1 and Table 6).

One step: a batch of packed ``[SOS] S1 [EOS] S2 [EOS]`` examples (:mod:`pmlm.data`) gets fresh
blockwise masks, pseudo masks and attention masks (:class:`pmlm.PMLMCollator`), one forward pass
gives both losses through the fast path ``model.loss(batch, objective)`` (only labelled rows are
projected to the vocabulary), and ``L = L_AE + L_PAR`` (Eq. 7) is minimised.

Optimiser as in section 4.1: Adam(W) with betas (0.9, 0.98), eps 1e-6, weight decay 0.01, linear
warm-up then linear decay to zero; gradient clipping, bf16 autocast on a GPU, gradient
accumulation. Table 6 rows are flags: ``--objective ae|par|ae+par``, ``--factorization
block|token`` (token = the AR rows), ``--no-rel-pos`` (row 2).

Several GPUs or machines: ``torchrun --nproc_per_node 2 -m pmlm.train ...`` (DistributedDataParallel,
a DistributedSampler per rank; rank 0 alone trains the tokenizer, logs, evaluates and saves).

Modules, in reading order; each lists the choices it makes where the paper is silent:

* :mod:`pmlm.train.config`: :class:`TrainConfig`, the presets ``tiny`` (CPU) and ``small``
  (one GPU), and :func:`smoke_mode`, the switch that shrinks every run in CI;
* :mod:`pmlm.train.loop`: :func:`pretrain`, the training loop;
* :mod:`pmlm.train.setup`: what a run prepares before its first step (corpus, model, batches, log);
* :mod:`pmlm.train.budget`: training for a time budget, the schedule on the elapsed fraction;
* :mod:`pmlm.train.progress`: the train metric lines and the progress bar;
* :mod:`pmlm.train.batches`: the corpus, the order of examples and the masked micro-batches, each a
  pure function of its step so that a resumed run sees the very same ones;
* :mod:`pmlm.train.optim`: the start for short runs, AdamW and the schedule;
* :mod:`pmlm.train.evaluation`: AE and PAR scores on fixed validation batches, ``[M]``-only and in
  bits per character beside the unigram baseline; the same for any held-out text;
* :mod:`pmlm.train.run_dir`: the run directory: no silent overwrite, exact resume, the metrics log;
* :mod:`pmlm.train.distributed`: torchrun and DDP: the process group, the device, rank 0 decides;
* :mod:`pmlm.train.cli`: the command line, ``pmlm-train``.

The names below are re-exported here, so ``from pmlm.train import TrainConfig, pretrain`` works.
"""

from pmlm.train.config import RESUMABLE_CHANGES, TRAIN_PRESETS, TrainConfig, smoke_mode
from pmlm.train.distributed import (Dist, broadcast_object, describe_device, init_distributed,
                                    pick_device, rank0_decides)
from pmlm.train.optim import init_for_short_runs, lr_lambda, make_optimizer
from pmlm.train.batches import BatchOrder, MicroBatches, load_corpus, mask_seed, to_device
from pmlm.train.evaluation import evaluate
from pmlm.train.run_dir import (MetricsLog, check_resumable, prepare_run_dir, rng_state,
                                set_rng_state, truncate_metrics)
from pmlm.train.loop import LossModule, pretrain
from pmlm.train.progress import train_record
from pmlm.train.cli import main, parse_args, parse_model_overrides

__all__ = [
    "RESUMABLE_CHANGES", "TRAIN_PRESETS", "BatchOrder", "Dist", "LossModule", "MetricsLog",
    "MicroBatches", "TrainConfig", "broadcast_object", "check_resumable", "describe_device", "evaluate",
    "init_distributed", "init_for_short_runs", "load_corpus", "lr_lambda", "main",
    "make_optimizer", "mask_seed", "parse_args", "parse_model_overrides", "pick_device",
    "prepare_run_dir", "pretrain", "rank0_decides", "rng_state", "set_rng_state", "smoke_mode",
    "to_device", "train_record", "truncate_metrics",
]
