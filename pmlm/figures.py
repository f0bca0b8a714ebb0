"""Regenerate the pictures in ``figures/``: ``python -m pmlm.figures``.

The method figures are drawn directly from the package, seeded, in a few seconds on a CPU:

* ``pmlm_diagram.png``: the worked example in the style of the paper's Figs. 1 and 4: tokens,
  reused positions, and arcs of what a pseudo mask may and may not attend;
* ``cached_decoding.png``: pseudo-mask decoding with a key/value cache, step by step (section 3.4);
* ``blockwise_masking.png``: Algorithm 1 on the opening of *Pride and Prejudice*, blocks numbered in
  factorization order, with what the context shows after the 80/10/10 replacement (section 3.1.2);
* ``sampler_histograms.png``: block lengths and masked share over 2,000 draws on 128 tokens, against
  the paper's 15% and 40% (section 3.1.2);
* ``replacement.png``: the 80/10/10 replacement measured on 20,000 masked tokens (section 4.1);
* ``worked_example_mask.png``: the paper's worked example (Figs. 4-5), the full attention matrix;
* ``leak_paths.png``: the explicit and implicit leaks that the mask blocks, on the worked example;
* ``real_sentence_mask.png``: the layout and mask of a real sentence.

The training figures reuse runs when they are there and are skipped (with a message) otherwise:

* ``loss_curves.png``: the loss and accuracy curves of ``runs/demo`` (``make demo`` writes it);
* ``par_by_step.png``: AE and PAR accuracy by factorization step of the shipped reference model;
* ``verses_long.png``: validation BLEU against steps of the reference model fine-tuned on the
  verses until it levels off (``results/finetune.jsonl``);
* ``ablation.png``: Table 6 in miniature, from ``runs/ablation-gpu`` or ``runs/ablation-cpu``
  (``python -m pmlm.ablation`` writes them), drawn by :func:`pmlm.ablation.plot`.

``--only NAME`` redraws some of them; ``--out DIR`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pmlm import viz
from pmlm.masking import sample_blocks

ROOT = Path(__file__).resolve().parents[1]
OPENING = "It is a truth universally acknowledged"
FIGURE_SEED = 0  # every method figure draws its blocks from torch.Generator().manual_seed(FIGURE_SEED)


def repo_dir(name: str) -> Path:
    """``figures/`` or ``runs/`` of the source tree (editable install), else of the working directory."""
    return ROOT / name if (ROOT / "pyproject.toml").is_file() else Path.cwd() / name


def austen_opening(paragraphs: int = 1) -> str:
    """The first ``paragraphs`` paragraphs of *Pride and Prejudice*, from the bundled corpus."""
    from pmlm.corpora import austen_paragraphs

    paras = austen_paragraphs()
    start = next(i for i, p in enumerate(paras) if p["text"].startswith(OPENING))
    return " ".join(p["text"] for p in paras[start:start + paragraphs])


def save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def blockwise_masking(out: Path) -> Path:
    words = viz.split_words(austen_opening(paragraphs=3))
    blocks = sample_blocks(len(words), generator=torch.Generator().manual_seed(FIGURE_SEED))
    masked = [p for b in blocks for p in b]
    for seed in range(FIGURE_SEED, FIGURE_SEED + 200):  # the first replacement draw that shows all three cases
        ex, itos = viz.text_example(words, blocks, replace_probs=(0.8, 0.1, 0.1), seed=seed)
        shown = [itos(t) for t in ex.input_ids[: ex.num_context].tolist()]
        kinds = {"[M]" if shown[p] == "[M]" else "kept" if shown[p] == words[p] else "random" for p in masked}
        if len(kinds) == 3:
            break
    ax = viz.plot_blocks(words, blocks, shown=shown, width=10.0,
                         title="Algorithm 1 on Pride and Prejudice: blocks numbered in factorization "
                               "order; below each masked word, what the context shows\n(80/10/10: [M], a random "
                               "word in italics, or the word kept)")
    return save(ax.figure, out / "blockwise_masking.png")


def sampler_histograms(out: Path) -> Path:
    stats = viz.sampler_statistics(num_tokens=128, trials=2000, seed=FIGURE_SEED)
    axes = viz.plot_sampler_histograms(stats)
    return save(axes[0].figure, out / "sampler_histograms.png")


def replacement(out: Path) -> Path:
    ax = viz.plot_replacement(viz.replacement_statistics(seed=FIGURE_SEED))
    return save(ax.figure, out / "replacement.png")


def worked_example_mask(out: Path) -> Path:
    ex, itos = viz.worked_example()
    ax = viz.plot_attention_mask(ex.attention_mask, viz.token_labels(ex, itos, position_base=1),
                                 step_ids=ex.step_ids,
                                 title="Worked example (Figs. 4-5): x2, x4, x5 masked, order {x4, x5} "
                                       "then {x2}\nlabel = token@position (from 1, as in the paper)")
    return save(ax.figure, out / "worked_example_mask.png")


def leak_paths(out: Path) -> Path:
    import matplotlib.pyplot as plt

    ex, itos = viz.worked_example()
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    viz.plot_leak_paths(ex, viz.token_labels(ex, itos, position_base=1), ax=ax,
                        title="What the mask blocks for [P]@4 (worked example)")
    return save(fig, out / "leak_paths.png")


def real_sentence_mask(out: Path) -> Path:
    words = viz.split_words(austen_opening(paragraphs=1))
    blocks = sample_blocks(len(words), generator=torch.Generator().manual_seed(FIGURE_SEED))
    ex, itos = viz.text_example(words, blocks)
    title = ("A real sentence: " + viz.render_blocks_text(words, blocks) + "\n(blocks [step: words]; "
             "row = query, column = key, label = token@position)")
    ax = viz.plot_attention_mask(ex.attention_mask, viz.token_labels(ex, itos), step_ids=ex.step_ids,
                                 title=title)
    ax.title.set_wrap(True)
    return save(ax.figure, out / "real_sentence_mask.png")


def loss_curves(out: Path, runs: Path) -> Path | None:
    run = runs / "demo"
    if not (run / "metrics.jsonl").is_file():
        print(f"  skipped loss_curves.png: no {run / 'metrics.jsonl'} (run `make demo` first)")
        return None
    axes = viz.plot_loss_curves(run)
    fig = (axes if hasattr(axes, "figure") else list(axes)[0]).figure
    fig.tight_layout()
    return save(fig, out / "loss_curves.png")


def ablation(out: Path, runs: Path) -> Path | None:
    from pmlm import ablation as abl

    results = runs.parent / "results"
    for preset in ("gpu", "cpu"):  # the largest recorded ablation wins
        rows = abl.read_results(results / f"ablation-{preset}.jsonl")
        if rows:
            break
    else:
        print(f"  skipped ablation.png: no {results / 'ablation-cpu.jsonl'} (run `python -m pmlm.ablation` first)")
        return None
    path = out / "ablation.png"
    abl.plot(rows, abl.summarize(rows), path,
             f"Table 6 in miniature (preset {preset}); bars: mean, dots: seeds")
    print(f"  ({len(rows)} runs of results/ablation-{preset}.jsonl)")
    return path


def pmlm_diagram(out: Path) -> Path:
    from pmlm.viz.diagram import plot_pmlm_diagram

    return save(plot_pmlm_diagram().figure, out / "pmlm_diagram.png")


def cached_decoding(out: Path) -> Path:
    return save(viz.plot_cached_decoding().figure, out / "cached_decoding.png")


METHOD_FIGURES = {"pmlm_diagram": pmlm_diagram, "cached_decoding": cached_decoding, "blockwise_masking": blockwise_masking, "sampler_histograms": sampler_histograms,
                  "replacement": replacement, "worked_example_mask": worked_example_mask,
                  "leak_paths": leak_paths, "real_sentence_mask": real_sentence_mask}
def par_by_step(out: Path, runs: Path | None = None) -> Path | None:
    """AE and PAR accuracy by factorization step of the shipped reference model (its evaluation.json)."""
    import json

    from pmlm.pretrained import CHECKPOINTS_DIR, REFERENCE, REFERENCE_AE

    path = CHECKPOINTS_DIR / REFERENCE / "evaluation.json"
    by_step = json.loads(path.read_text()).get("by_step") if path.is_file() else None
    if by_step is None:
        print(f"  (no {path}: export the reference model first, scripts/reference_model.py export)")
        return None
    twin_path = CHECKPOINTS_DIR / REFERENCE_AE / "evaluation.json"  # the AE-only twin, same batches
    twin = json.loads(twin_path.read_text()).get("by_step") if twin_path.is_file() else None
    ax = viz.plot_accuracy_by_step(by_step, twin=twin,
                                   title="Reference model, held-out Austen: does a later step,\nwhich sees "
                                         "more originals, predict better?")
    return save(ax.figure, out / "par_by_step.png")


def verses_long(out: Path, runs: Path | None = None) -> Path | None:
    """Validation BLEU against steps of the reference model fine-tuned on the verses until it levels
    off (``results/finetune.jsonl``, ``benchmarks/finetune_study.py verses-long``)."""
    import matplotlib.pyplot as plt

    from pmlm.reports import RESULTS, read_jsonl

    rows = [r for r in read_jsonl(RESULTS / "finetune.jsonl") if r["task"] == "verses-long"]
    if not rows:
        print("  skipped verses_long.png: run `python benchmarks/finetune_study.py verses-long` first")
        return None
    r = rows[-1]
    steps, bleu = [p["step"] for p in r["curve"]], [p["val_bleu"] for p in r["curve"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(steps, bleu, marker="o", label="fine-tuned reference model (greedy)")
    ax.axhline(r["curve"][0]["val_copy_bleu"], color="grey", linestyle="--", label="copying the source")
    if r.get("levelled_off_at") is not None:
        ax.axvline(r["levelled_off_at"], color="tab:green", linestyle=":",
                   label=f"levelled off (step {r['levelled_off_at']:,})")
    ax.set(xlabel="fine-tuning step", ylabel="validation BLEU (100 verses)",
           title=f"KJV -> WEB: {r['steps']:,} steps, lr {r['lr']:g}, linear decay, seed {r['seed']}")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, out / "verses_long.png")


RUN_FIGURES = {"loss_curves": loss_curves, "ablation": ablation, "par_by_step": par_by_step,
               "verses_long": verses_long}


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m pmlm.figures", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: figures/)")
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default: runs/)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME",
                        help=f"some of {sorted(METHOD_FIGURES) + sorted(RUN_FIGURES)}")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    out = args.out or repo_dir("figures")
    runs = args.runs or repo_dir("runs")
    names = args.only or list(METHOD_FIGURES) + list(RUN_FIGURES)
    unknown = set(names) - set(METHOD_FIGURES) - set(RUN_FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {sorted(unknown)}; choose from "
                     f"{sorted(METHOD_FIGURES) + sorted(RUN_FIGURES)}")
    written = []
    for name in names:
        path = METHOD_FIGURES[name](out) if name in METHOD_FIGURES else RUN_FIGURES[name](out, runs)
        if path is not None:
            print(f"  wrote {path}")
            written.append(path)
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
