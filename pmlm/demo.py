"""``make demo``: pre-train a small PMLM on the bundled Jane Austen novels and show what it learned.

1. Pre-trains the ``tiny`` preset on the CPU (a few minutes on 2 cores), or ``small`` when a GPU is
   present, into ``runs/demo`` (:func:`pmlm.train.pretrain`, AE + PAR with blockwise
   factorization, i.e. UniLMv2 of Table 6 row 1 in miniature).
2. Draws ``figures/loss_curves.png`` (AE and PAR loss and accuracy against the unigram baseline)
   and ``figures/demo_attention_mask.png`` (the pseudo-masked layout and attention mask of a real
   validation sentence, section 3.2).
3. Prints real *validation* sentences with blocks masked (Algorithm 1), and beside the truth the
   model's fill-ins from both halves of the one forward pass:

   * AE: each token from its own ``[M]`` in the context, independently (Eq. 4);
   * PAR: each block from its ``[P]``\\ s, having seen the original tokens of the earlier blocks
     of the factorization order (Eq. 5, teacher-forced as in training).

4. Ends by saying in words whether the run is any good (:func:`pmlm.train.cli.run_verdict`): the
   steps made against the steps expected (the recorded run of ``results/demo.json``), and, if the
   model is still on the unigram plateau, the likely cause (a busy machine, too few steps) and the
   command to try. On the CPU the run takes one torch thread per core free at its start
   (``--threads`` to choose, :func:`pmlm.machine.choose_threads`).

Choice: in the printout every masked token shows ``[M]`` (no 10% random / 10% kept), so that the
reader sees exactly which tokens the model had to guess. The numbers of the final summary are the
run's last validation, with the 80/10/10 replacement of training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from pmlm.checkpoint import load_pretrained, read_metrics
from pmlm.data import boundary_ids, pack_document, prepare_corpus
from pmlm.layout import IGNORE_INDEX, build_pmlm_example
from pmlm.machine import machine_info
from pmlm.masking import sample_blocks
from pmlm.tokenizer import make_collator, special_ids
from pmlm.train import TrainConfig, describe_device, pretrain, smoke_mode
from pmlm.train.cli import run_verdict

DEMO_SEED = 0  # masks of the printout and the figure


def demo_examples(corpus, count: int, seed: int, min_tokens: int = 24,
                  max_tokens: int = 48) -> list[list[int]]:
    """``count`` validation paragraphs of ``min_tokens``..``max_tokens`` word pieces, each packed as
    one ``[SOS] S1 [EOS] S2 [EOS]`` example (split at the sentence end nearest the middle)."""
    tok = corpus.tokenizer
    ids, bounds = special_ids(tok), boundary_ids(tok)
    paragraphs = [p for d in corpus.validation_documents for p in d]
    encoded = tok.encode_batch(paragraphs, add_special_tokens=False)
    fitting = [e.ids for e in encoded if min_tokens <= len(e.ids) <= max_tokens]
    if len(fitting) < count:  # few short paragraphs: use the openings of longer ones
        fitting += [e.ids[:max_tokens] for e in encoded if len(e.ids) > max_tokens]
    if not fitting:
        raise ValueError(f"no validation paragraph has {min_tokens} word pieces or more")
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(fitting), generator=g)[:count].tolist()
    return [pack_document([fitting[i]], max_length=len(fitting[i]) + 3, sos_id=ids["sos"],
                          eos_id=ids["eos"], min_tokens=1, **bounds)[0] for i in sorted(picks)]


@torch.no_grad()
def fill_ins(model, tok, example: list[int], seed: int) -> dict:
    """Mask ``example`` with Algorithm 1 and return the truth, AE and PAR guesses per block."""
    collator = make_collator(tok, objective="ae+par", factorization="block",
                             replace_probs=(1.0, 0.0, 0.0), generator=torch.Generator().manual_seed(seed))
    batch = collator([example])
    logits = model(batch["input_ids"], batch["position_ids"], batch["attention_mask"],
                   batch["segment_ids"])[0]  # (L, V)
    guess = logits.argmax(-1)  # (L,)
    step_ids, pos = batch["step_ids"][0], batch["position_ids"][0]
    blocks = []
    for i in range(1, int(-step_ids.min()) + 1):
        pseudo = (step_ids == -i).nonzero().flatten()  # rows of the [P]s of step i
        positions = pos[pseudo]  # the context positions they stand for
        blocks.append({"positions": positions.tolist(),
                       "truth": [example[p] for p in positions.tolist()],
                       "ae": guess[positions].tolist(),  # from the [M]s in the context
                       "par": guess[pseudo].tolist()})  # from the [P]s of step i
    assert all(batch["ae_labels"][0, p] != IGNORE_INDEX for b in blocks for p in b["positions"])
    return {"ids": example, "blocks": blocks}


def render_masked(tok, ids: list[int], blocks: list[dict]) -> str:
    """The text with each block shown as ``[k: _ _]`` (k = its step in the factorization order)."""
    step_of = {p: k for k, b in enumerate(blocks, start=1) for p in b["positions"]}
    hidden = set(special_ids(tok).values())
    words, k_open = [], None
    for p, t in enumerate(ids):
        if t in hidden:
            if k_open is not None:
                words[-1] += "]"
                k_open = None
            words.append("|" if p not in (0, len(ids) - 1) else "")
            continue
        k = step_of.get(p)
        if k_open is not None and k != k_open:
            words[-1] += "]"
            k_open = None
        piece = tok.id_to_token(t)
        if k is not None:
            if k_open is None and piece.startswith("##") and words:
                words[-1] += f"[{k}: _"  # a masked word piece stays glued to its word
            else:
                words.append(f"[{k}: _" if k_open is None else "_")
            k_open = k
        elif piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return " ".join(w for w in words if w)


def pieces_text(tok, ids: list[int]) -> str:
    """Word pieces as text, one space between words: ``[",", ",", "of"]`` -> ``", , of"``."""
    words = []
    for t in ids:
        piece = tok.id_to_token(t)
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
        else:
            words.append(piece)
    return " ".join(words)


def fill_in_lines(tok, results: list[dict]) -> list[str]:
    """The fill-in printout, line by line: each sentence with its blocks, truth, AE and PAR guesses."""
    width, lines = 22, []
    for n, r in enumerate(results, start=1):
        lines += ["", f"validation example {n}: {render_masked(tok, r['ids'], r['blocks'])}",
                  f"    {'block':<6}{'truth':<{width}}{'AE fill-in':<{width}}{'PAR fill-in':<{width}}"]
        for k, b in enumerate(r["blocks"], start=1):
            cells = []
            for key in ("truth", "ae", "par"):
                text = pieces_text(tok, b[key]) or "?"
                mark = "" if key == "truth" else (" *" if b[key] == b["truth"] else "")
                cells.append((text + mark)[:width - 1])
            lines.append(f"    {k:<6}" + "".join(f"{c:<{width}}" for c in cells))
    return lines + ["", "(* = the whole block guessed right; AE guesses each token from its [M] alone, PAR from its",
                    " [P]s having seen the true tokens of the earlier blocks: Eqs. 4 and 5 of the paper)"]


def print_fill_ins(tok, results: list[dict]) -> None:
    print("\n".join(fill_in_lines(tok, results)))


def mask_figure(tok, corpus, path: Path, seed: int) -> Path:
    """The layout and attention mask of a short real validation sentence, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pmlm import viz

    ex_ids = demo_examples(corpus, 1, seed, min_tokens=8, max_tokens=11)[0]  # [SOS] S1 [EOS] S2 [EOS]
    sid = special_ids(tok)
    maskable = [t not in sid.values() for t in ex_ids]
    for s in range(seed, seed + 500):  # the first seed with 2+ steps, one of them a block of 2+
        blocks = sample_blocks(len(ex_ids), maskable=maskable, generator=torch.Generator().manual_seed(s))
        if len(blocks) >= 2 and max(len(b) for b in blocks) >= 2:
            break
    first_eos = ex_ids.index(sid["eos"])
    segments = [0] * (first_eos + 1) + [1] * (len(ex_ids) - first_eos - 1)
    ex = build_pmlm_example(ex_ids, blocks, mask_id=sid["mask"], pseudo_id=sid["pseudo"],
                            vocab_size=tok.get_vocab_size(), replace_probs=(1.0, 0.0, 0.0),
                            segment_ids=segments, generator=torch.Generator().manual_seed(s))
    names = {sid["mask"]: "[M]"}
    labels = viz.token_labels(ex, lambda t: names.get(t, tok.id_to_token(t)))
    order = "; ".join(f"step {k}: " + " ".join(tok.id_to_token(ex_ids[p]) for p in b)
                      for k, b in enumerate(blocks, start=1))
    ax = viz.plot_attention_mask(
        ex.attention_mask, labels, step_ids=ex.step_ids,
        title=f"PMLM attention mask of a real validation example\nfactorization order: {order}\n"
              "row = query, column = key, blue = may attend, label = token@position;\n"
              "red lines: context | appended [P]s and original copies")
    ax.figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)
    return path


def loss_figure(run: Path, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pmlm import viz

    axes = viz.plot_loss_curves(run)
    fig = axes[0].figure
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(run: Path, seconds: float, preset: str, device: str) -> dict:
    """The numbers the README quotes, from the run's metrics."""
    records = read_metrics(run)
    start = next(r for r in records if r.get("event") == "start")
    val = [r for r in records if r.get("split") == "val"]
    train = [r for r in records if r.get("split") == "train"]
    out = {"preset": preset, "device": device, "steps": val[-1]["step"], "wall_s": round(seconds, 1),
           "train_s": next((r["elapsed_s"] for r in records if r.get("event") == "end"), None),
           "parameters": start["parameters"], "vocab_size": start["vocab_size"],
           "train_tokens": start["train_tokens"],
           "tokens_per_s": round(sum(r["tokens_per_s"] for r in train) / max(1, len(train))),
           "unigram_val_loss": start.get("unigram_val_loss"), "unigram_val_acc": start.get("unigram_val_acc")}
    keys = ("val_ae_m_acc", "val_ae_m_bpc", "val_par_m_acc", "val_par_m_bpc", "val_ae_acc", "val_par_acc",
            "val_ae_loss", "val_par_loss", "unigram_m_acc", "unigram_m_bpc")
    for key in keys:
        out[key] = val[-1][key]
        out[key.replace("val_", "initial_")] = val[0][key]
    for key in ("val_ae_m_word_acc", "val_par_m_word_acc", "unigram_m_word_acc", "val_m_word_tokens"):
        if key in val[-1]:  # word accuracy: the [M] tokens that are part of a word, punctuation left out
            out[key] = val[-1][key]
    out["time_budget_min"] = start.get("time_budget")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m pmlm.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="runs/demo", help="run directory (replaced on each demo)")
    p.add_argument("--figures", default="figures", help="where the two figures go")
    p.add_argument("--preset", choices=("tiny", "small"), help="default: small with a GPU, else tiny")
    p.add_argument("--minutes", type=float, default=5.0,
                   help="wall time of the pre-training, evaluation and checkpoint included (default 5)")
    p.add_argument("--steps", type=int, help="train this many steps instead of --minutes")
    p.add_argument("--examples", type=int, default=4, help="validation sentences to fill in")
    p.add_argument("--dataset", help="another corpus (see pmlm.train --dataset); default: bundled Austen")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads on the CPU (default: one per core free at the start)")
    p.add_argument("--record", action="store_true",
                   help="also write the summary, with the machine, to results/demo.json (the numbers the "
                        "README and docs quote; python -m pmlm.reports renders them)")
    args = p.parse_args(argv)
    for flag, value, least in (("--steps", args.steps, 1), ("--examples", args.examples, 0),
                               ("--minutes", args.minutes, 1e-9)):
        if value is not None and not (value >= least and math.isfinite(value)):
            p.error(f"{flag} must be {'at least 1' if least == 1 else 'positive' if least else '>= 0'}, "
                    f"got {value}")

    cuda = torch.cuda.is_available()
    preset = args.preset or ("small" if cuda else "tiny")
    overrides = {"out_dir": args.out_dir, "overwrite": True}
    if args.steps is not None:
        overrides["steps"] = args.steps
    elif not smoke_mode():  # smoke mode (CI, notebooks under nbval) keeps its handful of steps
        overrides["time_budget"] = args.minutes
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.threads is not None:
        overrides["threads"] = args.threads
    try:
        cfg = TrainConfig.preset(preset, **overrides)
        cfg.validate()
    except ValueError as err:
        raise SystemExit(f"pmlm.demo: error: {err}") from None
    device = describe_device() if cuda else "the CPU"  # pretrain chooses the threads and prints them
    corpus_name = args.dataset or "the bundled Jane Austen novels"
    length = f"{cfg.time_budget:g} minutes" if cfg.time_budget else f"{cfg.steps} steps"
    print(f"== PMLM demo: pre-training the {preset!r} preset on {corpus_name}, "
          f"{length} on {device}{' [smoke mode]' if smoke_mode() else ''} ==")

    t0 = time.time()
    try:
        run = pretrain(cfg)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"pmlm.demo: error: {err}") from None
    seconds = time.time() - t0

    model, tok = load_pretrained(run)
    corpus = prepare_corpus(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed,
                            max_length=cfg.max_length, tokenizer=tok, max_documents=cfg.max_documents)
    figures = Path(args.figures)
    loss_png = loss_figure(run, figures / "loss_curves.png")
    mask_png = mask_figure(tok, corpus, figures / "demo_attention_mask.png", DEMO_SEED)

    results = [fill_ins(model, tok, ex, DEMO_SEED + i)
               for i, ex in enumerate(demo_examples(corpus, args.examples, DEMO_SEED))]
    print_fill_ins(tok, results)

    end = next((r for r in read_metrics(run) if r.get("event") == "end"), {})
    threads = end.get("threads", torch.get_num_threads())
    if not cuda:
        device = f"CPU ({threads} thread{'s' if threads > 1 else ''})"
    s = summary(run, seconds, preset, device)
    s["eval_examples"] = cfg.eval_examples
    s["machine"] = machine_info()
    s["machine"]["threads"] = str(threads)  # the run's, not the count restored after it
    (Path(run) / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    if args.record:
        from pmlm.reports import RESULTS
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "demo.json").write_text(json.dumps({**s, "fill_ins": fill_in_lines(tok, results)}, indent=2) + "\n")
    print(f"\n== what the model learned ({s['steps']} steps, {s['wall_s']:.0f} s in all, "
          f"{s['tokens_per_s']:,} text tokens/s, {s['parameters']:,} parameters) ==")
    print(f"validation, {cfg.eval_examples} held-out examples, fixed masks; scored on the masked tokens "
          "shown as [M] (the 10% kept and 10% random ones could be copied):")
    print(f"    {'':24}{'AE acc':>9}{'AE bits/char':>14}{'PAR acc':>9}{'PAR bits/char':>15}")
    for label, prefix in (("before training", "initial_"), ("after training", "val_")):
        print(f"    {label:24}{s[prefix + 'ae_m_acc']:9.3f}{s[prefix + 'ae_m_bpc']:14.3f}"
              f"{s[prefix + 'par_m_acc']:9.3f}{s[prefix + 'par_m_bpc']:15.3f}")
    print(f"    {'unigram baseline':24}{s['unigram_m_acc']:9.3f}{s['unigram_m_bpc']:14.3f}"
          f"{s['unigram_m_acc']:9.3f}{s['unigram_m_bpc']:15.3f}")
    print(f"    PAR accuracy is {s['val_par_m_acc'] / max(s['unigram_m_acc'], 1e-9):.1f}x the unigram "
          f"baseline's, AE {s['val_ae_m_acc'] / max(s['unigram_m_acc'], 1e-9):.1f}x")
    if s.get("val_m_word_tokens"):
        print(f"    word pieces only ({s['val_m_word_tokens']:,} masked pieces, punctuation left out): AE "
              f"{s['val_ae_m_word_acc']:.3f}, PAR {s['val_par_m_word_acc']:.3f}, unigram "
              f"{s['unigram_m_word_acc']:.3f} (always the commonest word piece)")
    for line in run_verdict(run, cfg, " ".join(["python -m pmlm.demo", *(sys.argv[1:] if argv is None else argv)]),
                            budget_flag="--minutes"):
        print("    " + line)
    print(f"run: {run}/ (config.json, model.safetensors, tokenizer.json, training.json, checkpoint.pt, "
          "metrics.jsonl, summary.json)")
    print(f"figures: {loss_png}, {mask_png}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
