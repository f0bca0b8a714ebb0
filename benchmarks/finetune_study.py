"""Does pre-training help fine-tuning? The reference model against the from-scratch control.

    python benchmarks/finetune_study.py sentiment   # tune on validation, then 3 seeds (~25 min, 2 threads)
    python benchmarks/finetune_study.py verses      # KJV -> WEB, 3 seeds each, BLEU against steps
    python benchmarks/finetune_study.py verses-long # the reference model until validation BLEU levels off
    python benchmarks/finetune_study.py report      # print the tables from results/finetune.jsonl

Both initialisations have the same architecture and tokenizer (the shipped reference model's,
:func:`pmlm.load_reference`): the control is that configuration freshly initialised, so the only
difference is the pre-trained weights.

* **Sentiment** (Rotten Tomatoes): for each initialisation, the learning rate and the pooling of
  the classifier (``[SOS]`` or the mean of the tokens) are chosen by validation accuracy at seed 0
  from a small grid, the epoch by validation accuracy inside each run (up to ``--epochs``); test
  accuracy is then the mean over seeds 0, 1, 2 at the chosen setting. Test accuracy is never
  looked at to choose anything. Then the same chosen settings with fewer labelled sentences
  (``--limits``), to see where pre-training matters most.
* **Verses** (KJV -> WEB, held-out books): the ``tiny`` fine-tuning recipe from each
  initialisation, 3 seeds; greedy BLEU on 100 validation verses every ``--eval-every`` steps (the
  learning curve), beam-4 BLEU and chrF on the test verses at the end, beside copying the source.

* **Verses, long** (``verses-long``): the reference model alone, seed 0, the ``tiny`` recipe over
  ``--steps`` (default 8,000: the linear decay stretched over them), greedy validation BLEU every
  ``--eval-every`` steps. It has levelled off when ``--patience`` points in a row gain less than
  ``--min-gain`` BLEU over the best so far (the step of the best point is recorded). At the end the
  test verses are decoded twice with beam 4: as the ``tiny`` recipe does, and with s2s-ft's
  ``--forbid_duplicate_ngrams`` (trigram blocking), beside copying the source.

Every finished run is a line of ``results/finetune.jsonl`` (keyed by its settings); a run already
there is skipped, so the study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmlm.finetune.classify import ClassifyConfig, finetune_classify  # noqa: E402
from pmlm.finetune.data import bible_splits, sentiment_splits  # noqa: E402
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq  # noqa: E402
from pmlm.model import PMLMModel  # noqa: E402
from pmlm.pretrained import load_reference  # noqa: E402
from pmlm.reports import append_jsonl, read_jsonl  # noqa: E402

RESULTS = ROOT / "results" / "finetune.jsonl"
INITS = ("reference", "control")
LRS = (3e-4, 1e-3, 3e-3)
POOLINGS = ("sos", "mean")
SEEDS = (0, 1, 2)


def read_rows(path: Path = RESULTS) -> list[dict]:
    return read_jsonl(path)


def key(row: dict) -> tuple:
    return tuple(row.get(k) for k in ("task", "init", "lr", "pooling", "epochs", "train_limit", "steps", "seed"))


def backbone(init: str, seed: int):
    ref, tok = load_reference()
    if init == "reference":
        return ref.float(), tok
    torch.manual_seed(seed)
    return PMLMModel(ref.config), tok


def machine() -> dict:
    from pmlm.machine import machine_info

    info = machine_info()
    return {"machine": f"{info['cpu']} ({info['cores']} cores)", "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def append(row: dict) -> None:
    append_jsonl(RESULTS, row)


def run_sentiment(init: str, lr: float, pooling: str, epochs: int, seed: int, train_limit: int | None,
                  splits, grid: bool = False) -> dict:
    row = {"task": "sentiment", "init": init, "lr": lr, "pooling": pooling, "epochs": epochs,
           "train_limit": train_limit, "steps": None, "seed": seed, "grid": grid}
    found = [r for r in read_rows() if key(r) == key(row)]
    if found:
        return found[0]
    model, tok = backbone(init, seed)
    cfg = ClassifyConfig(lr=lr, pooling=pooling, epochs=epochs, seed=seed, train_limit=train_limit)
    m = finetune_classify(model, tok, splits, cfg, log=lambda line: None)
    row.update({k: m[k] for k in ("test_acc", "val_acc", "majority_acc", "best_epoch", "val_acc_by_epoch",
                                  "steps", "n_train", "n_test", "seconds")}, **machine())
    row["steps"] = None  # the key field; optimiser steps are in "optimizer_steps"
    row["optimizer_steps"] = m["steps"]
    append(row)
    print(f"sentiment {init} lr {lr:g} {pooling} limit {train_limit} seed {seed}: val {m['val_acc']:.4f} "
          f"test {m['test_acc']:.4f} (epoch {m['best_epoch']}, {m['seconds']:.0f} s)", flush=True)
    return row


def chosen(rows: list[dict], init: str) -> dict:
    """The grid row of ``init`` with the best validation accuracy at seed 0 (full training data)."""
    from pmlm.reports import chosen_setting

    best = chosen_setting(rows, init)
    if best is None:
        raise ValueError(f"no tuning runs for {init} yet: run `finetune_study.py sentiment` first")
    return best


def sentiment(args) -> None:
    splits = sentiment_splits()
    for init in INITS:
        for lr in LRS:
            for pooling in POOLINGS:
                run_sentiment(init, lr, pooling, args.epochs, 0, None, splits, grid=True)
    rows = read_rows()
    for init in INITS:
        best = chosen(rows, init)
        for limit in [None] + list(args.limits):
            for seed in SEEDS:
                run_sentiment(init, best["lr"], best["pooling"], args.epochs, seed, limit, splits)


def verses(args) -> None:
    splits = bible_splits()
    for seed in SEEDS:
        for init in INITS:
            row = {"task": "verses", "init": init, "lr": args.lr, "pooling": None, "epochs": None,
                   "train_limit": None, "steps": args.steps, "seed": seed}
            if any(key(r) == key(row) for r in read_rows()):
                continue
            model, tok = backbone(init, seed)
            cfg = replace(Seq2SeqConfig.preset("tiny"), lr=args.lr, max_steps=args.steps, seed=seed,
                          eval_every=args.eval_every, curve_examples=100)
            m = finetune_seq2seq(model, tok, splits, cfg, log=lambda line: None)
            row.update({k: m[k] for k in ("bleu", "chrf", "copy_bleu", "val_loss", "n_train", "n_test",
                                          "left_out_test", "seconds", "curve")}, **machine())
            row["copy_chrf"] = m["copy_chrf"]
            row["example"] = m["examples"][0]
            append(row)
            print(f"verses {init} seed {seed}: BLEU {m['bleu']:.2f} chrF {m['chrf']:.2f} (copy {m['copy_bleu']:.2f}); "
                  f"{m['seconds']:.0f} s", flush=True)


def levelled_off(curve: list[dict], patience: int, min_gain: float) -> int | None:
    """The step of the best validation BLEU once ``patience`` later points in a row gain less than
    ``min_gain`` over it; None while the curve is still climbing."""
    best, since = None, 0
    for point in curve:
        if best is None or point["val_bleu"] >= best["val_bleu"] + min_gain:
            best, since = point, 0
        else:
            since += 1
            if since >= patience:
                return best["step"]
    return None


def verses_long(args) -> None:
    splits = bible_splits()
    row = {"task": "verses-long", "init": "reference", "lr": args.lr, "pooling": None, "epochs": None,
           "train_limit": None, "steps": args.steps, "seed": 0}
    if any(key(r) == key(row) for r in read_rows()):
        print("verses-long: already in the results file")
        return
    from pmlm.finetune.seq2seq import encode_pairs, evaluate_generation
    from pmlm.finetune.common import check_vocab
    from pmlm.finetune.data import subsample

    model, tok = backbone("reference", 0)
    cfg = replace(Seq2SeqConfig.preset("tiny"), lr=args.lr, max_steps=args.steps, seed=0,
                  eval_every=args.eval_every, curve_examples=100)
    m = finetune_seq2seq(model, tok, splits, cfg, log=lambda line: print(line, flush=True))
    test_pairs, test_rows, _ = encode_pairs(tok, splits["test"], cfg)
    keep = subsample(list(range(len(test_pairs))), cfg.eval_limit, 0)  # the test verses of the run itself
    blocked = evaluate_generation(model.eval(), tok, [test_rows[i] for i in keep], [test_pairs[i] for i in keep],
                                  check_vocab(model, tok), replace(cfg.decode, no_repeat_ngram_size=3))
    row.update({k: m[k] for k in ("bleu", "chrf", "copy_bleu", "copy_chrf", "val_loss", "n_train", "n_test",
                                  "seconds", "curve")}, **machine())
    row.update({"eval_every": args.eval_every, "patience": args.patience, "min_gain": args.min_gain,
                "levelled_off_at": levelled_off(m["curve"], args.patience, args.min_gain),
                "bleu_trigram_blocked": blocked["bleu"], "chrf_trigram_blocked": blocked["chrf"],
                "example": m["examples"][0], "example_trigram_blocked": blocked["examples"][0]})
    append(row)
    print(f"verses-long: BLEU {m['bleu']:.2f} chrF {m['chrf']:.2f}, trigram-blocked BLEU {blocked['bleu']:.2f} "
          f"chrF {blocked['chrf']:.2f} (copy {m['copy_bleu']:.2f} / {m['copy_chrf']:.2f}); levelled off at "
          f"{row['levelled_off_at']}; {m['seconds']:.0f} s", flush=True)


def report() -> str:
    from pmlm.reports import finetune_block
    return finetune_block()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sentiment")
    s.add_argument("--epochs", type=int, default=4, help="the most epochs; the best validation epoch is kept")
    s.add_argument("--limits", type=int, nargs="*", default=[500, 2000], help="labelled sentences of the curve")
    v = sub.add_parser("verses")
    v.add_argument("--lr", type=float, default=5e-4)
    v.add_argument("--steps", type=int, default=1500)
    v.add_argument("--eval-every", type=int, default=250)
    w = sub.add_parser("verses-long")
    w.add_argument("--lr", type=float, default=5e-4)
    w.add_argument("--steps", type=int, default=8000)
    w.add_argument("--eval-every", type=int, default=500)
    w.add_argument("--patience", type=int, default=3, help="points without --min-gain that end the climb")
    w.add_argument("--min-gain", type=float, default=0.5, help="validation BLEU a point must gain")
    sub.add_parser("report")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.what == "sentiment":
        sentiment(args)
    elif args.what == "verses":
        verses(args)
    elif args.what == "verses-long":
        verses_long(args)
    print(report())


if __name__ == "__main__":
    main()
