"""The shipped reference model: train it (resumable), export it into the package, report its numbers.

    python scripts/reference_model.py train       # pre-train into runs/reference (resumes if stopped)
    python scripts/reference_model.py export      # fp16 model files -> pmlm/checkpoints/austen-tiny/
    python scripts/reference_model.py report      # its numbers into README.md and docs/training.md
    python scripts/reference_model.py train --twin   # the AE-only twin, into runs/reference-ae
    python scripts/reference_model.py export --twin  # -> pmlm/checkpoints/austen-tiny-ae/

``train`` runs the project's own command, ``python -m pmlm.train`` with :data:`ARGS` (a time budget,
so the run spans any number of processes: each resume continues the schedule where the last one
stopped). ``export`` writes ``config.json``, ``model.safetensors`` (float16), ``tokenizer.json``,
``training.json`` (the run's record) and ``evaluation.json``: ``[M]``-only AE and PAR accuracy and
masked bits per character, with the unigram baseline on the same tokens, on held-out Austen
chapters, on the verses of the verse task's validation books and on the sentiment task's
validation sentences, all scored from the float16 weights as shipped; and a small fixed sample
that ``tests/test_reference.py`` re-evaluates to the recorded numbers.

``--twin`` does the same for the AE-only twin (BERT's objective, Table 6 row 4) that the fill-in
widget shows beside the reference model: the same model, tokenizer (the reference's own), data,
seed, number of steps and schedule shape, with only the objective changed. The twin trains for the
reference's *steps* (read from its ``training.json``), not for its minutes: an AE step costs less
than an AE+PAR step (about three quarters of its time here), and the comparison the widget draws
is the paper's, at equal steps. Its warm-up is the same fraction of those steps that the
reference's time budget gave to warm-up (its ``warmup_fraction``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN = ROOT / "runs" / "reference"
NAME = "austen-tiny"
OUT = ROOT / "pmlm" / "checkpoints" / NAME
# the recipe: see docs/training.md ("The reference model") for why these values
ARGS = ["--preset", "tiny", "--set", "num_layers=4", "--extra-text", "tasks", "--time-budget", "38",
        "--out-dir", str(RUN.relative_to(ROOT)), "--save-every", "250", "--eval-every", "1000",
        "--eval-examples", "512", "--seed", "0", "--no-progress"]
SAMPLE = 64  # validation examples of the test's re-evaluation
TWIN_RUN = ROOT / "runs" / "reference-ae"
TWIN_NAME = "austen-tiny-ae"
TWIN_OUT = ROOT / "pmlm" / "checkpoints" / TWIN_NAME


def twin_args() -> list[str]:
    """The reference's recipe with the AE objective, for the reference's number of steps."""
    from pmlm.pretrained import training_info

    info = training_info(OUT)
    steps, warmup = int(info["steps"]), float(info["train_config"]["warmup_fraction"])
    args, i = [], 0
    while i < len(ARGS):  # drop the time budget and the run directory, keep the rest
        if ARGS[i] in ("--time-budget", "--out-dir"):
            i += 2
            continue
        args.append(ARGS[i])
        i += 1
    return [*args, "--objective", "ae", "--steps", str(steps), "--warmup-steps", str(round(warmup * steps)),
            "--tokenizer", str((OUT / "tokenizer.json").relative_to(ROOT)),
            "--out-dir", str(TWIN_RUN.relative_to(ROOT))]


def train(extra: list[str], twin: bool = False) -> None:
    run, args = (TWIN_RUN, twin_args()) if twin else (RUN, ARGS)
    resume = ["--resume"] if (run / "checkpoint.pt").is_file() else []
    cmd = [sys.executable, "-m", "pmlm.train", *args, *extra, *resume]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def held_out_texts(tok, max_length: int):
    """Packed held-out examples: Austen validation chapters, validation-book verses, validation reviews."""
    from pmlm.corpora.splits import bible_splits, sentiment_splits
    from pmlm.data import pack_documents

    verses = bible_splits()["validation"]
    chapters: dict[tuple, list[str]] = {}
    for row in verses:
        chapter = row["ref"].rsplit(":", 1)[0]
        chapters.setdefault(("kjv", chapter), []).append(row["source"])
        chapters.setdefault(("web", chapter), []).append(row["target"])
    reviews = [r["text"] for r in sentiment_splits()["validation"]]
    review_docs = [reviews[i:i + 20] for i in range(0, len(reviews), 20)]
    return {"verses": pack_documents(list(chapters.values()), tok, max_length).examples,
            "reviews": pack_documents(review_docs, tok, max_length).examples}


def export(twin: bool = False) -> None:
    import torch

    from pmlm.checkpoint import load_pretrained
    from pmlm.data import prepare_corpus, unigram_log_probs
    from pmlm.model import PMLMModel
    from pmlm.pretrained import training_info
    from pmlm.tokenizer import special_ids
    from pmlm.train.evaluation import accuracy_by_step, fixed_batches, score_examples

    run, out = (TWIN_RUN, TWIN_OUT) if twin else (RUN, OUT)
    model, tok = load_pretrained(run)  # the run's latest checkpoint
    info = training_info(run) if (run / "training.json").is_file() else {}
    cfg = json.loads(json.dumps(torch.load(run / "checkpoint.pt", weights_only=True)["train_config"]))
    model.save_pretrained(out, tokenizer=tok, training=info, dtype=torch.float16)
    shipped = PMLMModel.from_pretrained(out)  # score what ships: the float16 weights
    corpus = prepare_corpus(cfg["dataset"], val_fraction=cfg["val_fraction"], seed=cfg["seed"],
                            max_length=cfg["max_length"], tokenizer=tok, extra_text=cfg.get("extra_text"))
    unigram = unigram_log_probs(corpus)
    sets = {"austen": corpus.validation.examples, **held_out_texts(tok, cfg["max_length"])}
    evaluation = {"masks_seed": 0, "note": "[M]-only scores of the float16 weights; unigram = training-split "
                  "word-piece frequencies on the same tokens"}
    for name, examples in sets.items():
        evaluation[name] = {"examples": len(examples), **score_examples(shipped, tok, examples, unigram=unigram)}
        print(name, {k: round(v, 4) for k, v in evaluation[name].items() if isinstance(v, float)}, flush=True)
    evaluation["by_step"] = accuracy_by_step(shipped, fixed_batches(tok, corpus.validation.examples, seed=0,
                                                                    batch_size=32), special_ids(tok)["mask"])
    evaluation["sample"] = {"examples": SAMPLE, **score_examples(shipped, tok, corpus.validation.examples[:SAMPLE],
                                                                  unigram=unigram)}
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    print(f"exported to {out} ({sum(p.stat().st_size for p in out.iterdir()) / 1e6:.1f} MB)")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    rest = sys.argv[2:]
    twin = "--twin" in rest
    rest = [a for a in rest if a != "--twin"]
    if what in ("export", "report") and (rest or (twin and what == "report")):
        raise SystemExit(f"usage: python scripts/reference_model.py {what}{' [--twin]' if what == 'export' else ''}")
    if what == "train":
        train(rest, twin=twin)
    elif what == "export":
        export(twin=twin)
    elif what == "report":
        from pmlm.reports import write_reports
        for path in write_reports():
            print(f"updated {path.relative_to(ROOT)}")
    else:
        raise SystemExit("usage: python scripts/reference_model.py train|export|report [--twin]")


if __name__ == "__main__":
    main()
