"""Table 6 in miniature: ``python -m pmlm.ablation --preset cpu``.

The paper's claim (Table 6): pre-training with AE+PAR (UniLMv2) beats AE (BERT), PAR, AR and AE+AR
on both understanding and generation. This runner tests it at a scale a user can afford:

1. **Pre-train** each variant with the same budget (steps, batch, model, data, tokenizer) for each
   seed (:func:`pmlm.train.pretrain`)::

       variant   objective   factorization   Table 6 row
       AE        ae          block           4  ([2] - PAR: BERT's masked LM, blockwise masks)
       PAR       par         block           5  ([2] - AE)
       AE+PAR    ae+par      block           1-2 (UniLMv2)
       AR        par         token           6  ([5] - blockwise factorization)
       AE+AR     ae+par      token           3  ([2] - blockwise factorization)
       none      -           -               the control: fine-tuned from random initialisation

2. **Fine-tune** every checkpoint on both shipped tasks (:mod:`pmlm.finetune`): Rotten Tomatoes
   sentiment (test accuracy) and KJV -> WEB verse modernisation (test BLEU and chrF).
3. **Report** ``ablation.csv`` (one row per run), ``ablation.md`` (mean and standard deviation over
   seeds, per variant) in the output directory, and the figure ``figures/ablation.png``.

Choices (ours; the paper pre-trains on Wikipedia + BookCorpus and fine-tunes on SQuAD, MNLI, SST-2):

* Pre-training text: the bundled Austen novels plus the *training splits* of both tasks as plain
  text (KJV and WEB chapters as separate documents, review sentences in chunks; no label, no
  alignment, no validation or test text), documents shuffled with a fixed seed. In-domain
  unlabelled text, as Wikipedia is for SQuAD in the paper, so that pre-training can matter at all
  at this size. One tokenizer, trained once on that text, serves every run.
* Every variant keeps the relative position bias (``--no-rel-pos`` drops it for all, as the paper's
  rows 2-6 do): the comparison holds the architecture fixed either way.
* The same seed gives the same model initialisation, data order and fine-tuning sample to every
  variant; what differs is the objective.
* Finished runs are recorded in ``results.jsonl`` and skipped when the runner is started again
  (``--fresh`` starts over), so an interrupted run resumes.

Presets: ``cpu`` (the tiny model, 2,000 pre-training steps of 32 x 64 tokens per variant, 3 seeds,
half an hour to an hour per seed on 2 cores; the command line records its runs in
``results/ablation-cpu.jsonl``, which is committed, so that notebook 6 and ``--report-only`` read
them instead of re-running), ``gpu`` (the small model, 1,200 steps of 64 x 128 tokens, 3 seeds:
sized for under an hour on one GPU, an estimate not yet measured), and ``micro`` (seconds, for
tests; chosen by ``PMLM_SMOKE=1`` or ``CI``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from pmlm.finetune.classify import ClassifyConfig, finetune_classify
from pmlm.finetune.data import bible_splits, sentiment_splits
from pmlm.finetune.decoding import DecodeConfig
from pmlm.finetune.seq2seq import Seq2SeqConfig, finetune_seq2seq

VARIANTS = {  # name: (objective, factorization, Table 6 row)
    "AE": ("ae", "block", "4"),
    "PAR": ("par", "block", "5"),
    "AE+PAR": ("ae+par", "block", "1-2"),
    "AR": ("par", "token", "6"),
    "AE+AR": ("ae+par", "token", "3"),
}
CONTROL = "none"
# (key, label, scale, higher is better): the figure's panels and the orderings under the table
METRICS = (("test_acc", "sentiment acc (%)", 100.0, True), ("bleu", "verses BLEU", 1.0, True),
           ("chrf", "verses chrF", 1.0, True), ("s2s_val_loss", "verses val loss", 1.0, False))


@dataclass
class AblationPreset:
    model: str = "tiny"  # PMLMConfig preset of every run
    model_overrides: dict = field(default_factory=dict)
    steps: int = 300  # pre-training steps, the same for every variant
    batch_size: int = 16
    max_length: int = 64  # tokens per pre-training example
    lr: float = 1e-3
    warmup_steps: int = 30
    max_documents: int | None = None  # pre-train on the first N (shuffled) documents only
    vocab_size: int = 8192
    seeds: tuple[int, ...] = (0, 1)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    seq2seq: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    device: str = "auto"


ABLATION_PRESETS = {
    # seconds: the tests and PMLM_SMOKE=1 / CI
    "micro": AblationPreset(model_overrides={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                             "intermediate_size": 64},
                            steps=4, batch_size=4, max_length=32, warmup_steps=1, max_documents=40,
                            vocab_size=2000, seeds=(0,),
                            classify=ClassifyConfig(epochs=1, max_steps=4, train_limit=64, eval_limit=32),
                            seq2seq=Seq2SeqConfig(max_steps=4, batch_size=8, train_limit=64, eval_limit=8,
                                                  max_source_len=40, max_target_len=40,
                                                  decode=DecodeConfig(beam_size=1, max_length=12))),
    # a CPU run of the whole pipeline, half an hour to an hour per seed on 2 cores: the tiny model (2 layers,
    # 128 hidden, no dropout) pre-trained 2,000 steps of 32 x 64 tokens (~4M tokens; the recipe study's
    # 5-minute runs leave the unigram plateau after ~1,000 steps and reach PAR ~2.5x unigram by ~2,000,
    # docs/training.md), the 8,192-piece vocabulary of the recipe; two epochs of sentiment (all ~10k
    # sentences, the learning rate the fine-tuning study chose for the pre-trained model) and 400 steps of
    # verse pairs that fit 40 tokens, greedy decoding of 150 test verses. Results are committed to
    # results/ablation-cpu.jsonl.
    "cpu": AblationPreset(model_overrides={"dropout": 0.0}, steps=2000, batch_size=32, max_length=64,
                          lr=3e-3, warmup_steps=100, max_documents=None, vocab_size=8192, seeds=(0, 1, 2),
                          classify=ClassifyConfig(lr=1e-3, epochs=2),
                          seq2seq=Seq2SeqConfig(lr=1e-3, max_steps=400, max_source_len=40, max_target_len=40,
                                                eval_limit=150, decode=DecodeConfig(beam_size=1, max_length=40))),
    # one GPU, estimated under an hour for 6 x 3 runs (not yet measured): the small model
    # (4 layers, 256 hidden), 1,200 steps of 64 x 128 tokens
    "gpu": AblationPreset(model="small", steps=1200, batch_size=64, max_length=128, lr=5e-4,
                          warmup_steps=120, seeds=(0, 1, 2),
                          classify=ClassifyConfig(lr=1e-4, epochs=2),
                          seq2seq=Seq2SeqConfig(lr=3e-4, max_steps=1200, batch_size=64, max_source_len=64,
                                                max_target_len=64, eval_limit=1000,
                                                decode=DecodeConfig(beam_size=4, max_length=64))),
}


# ---------------------------------------------------------------------------- pre-training text

def build_pretraining_corpus(path: Path, cls_train: list[dict], s2s_train: list[dict], seed: int = 0) -> Path:
    """Austen + the tasks' training text as a ``.jsonl.gz`` of paragraphs with a ``doc`` column."""
    from pmlm.data import load_documents

    docs, _ = load_documents(None)  # bundled Austen, one document per chapter
    docs = [list(d) for d in docs]
    chapters: dict[tuple[str, str], list[str]] = {}
    for r in s2s_train:  # a chapter of KJV and the same chapter of WEB: two documents
        book_chapter = r["ref"].rsplit(":", 1)[0]
        chapters.setdefault(("kjv", book_chapter), []).append(r["source"])
        chapters.setdefault(("web", book_chapter), []).append(r["target"])
    docs += [[" ".join(v)] for v in chapters.values()]
    sentences = [r["text"] for r in cls_train]
    docs += [[" ".join(sentences[i:i + 20])] for i in range(0, len(sentences), 20)]
    random.Random(seed).shuffle(docs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            for paragraph in doc:
                f.write(json.dumps({"doc": i, "text": paragraph}) + "\n")
    return path


def shared_tokenizer(path: Path, corpus: Path, vocab_size: int, max_documents: int | None):
    from pmlm.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

    if path.is_file():
        return load_tokenizer(path)
    texts, docs = [], set()
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.add(row["doc"])
            if max_documents is not None and len(docs) > max_documents:
                break
            texts.append(row["text"])
    tok = train_tokenizer(texts, vocab_size)
    save_tokenizer(tok, path)
    return tok


# ----------------------------------------------------------------------------------- one run

def pretrain_variant(variant: str, seed: int, preset: AblationPreset, out: Path, corpus: Path,
                     tokenizer: Path, rel_pos: bool) -> tuple[Path, dict]:
    from pmlm.checkpoint import read_metrics
    from pmlm.train import TrainConfig, pretrain

    objective, factorization, _ = VARIANTS[variant]
    cfg = TrainConfig(model=preset.model, model_overrides=dict(preset.model_overrides), objective=objective,
                      factorization=factorization, rel_pos=rel_pos, dataset=str(corpus), doc_column="doc",
                      max_documents=preset.max_documents, max_length=preset.max_length,
                      tokenizer=str(tokenizer), steps=preset.steps, batch_size=preset.batch_size,
                      lr=preset.lr, warmup_steps=preset.warmup_steps, seed=seed,
                      out_dir=str(out / f"{variant.lower().replace('+', '_')}-s{seed}"),
                      log_every=max(1, preset.steps // 10), eval_every=preset.steps, eval_examples=128,
                      save_every=0, device=preset.device, overwrite=True, progress=False)
    t = time.time()
    run_dir = pretrain(cfg)
    val = [r for r in read_metrics(run_dir) if r.get("split") == "val"]
    last = val[-1] if val else {}
    return run_dir, {"pretrain_s": round(time.time() - t, 1),
                     **{k: last.get(k) for k in ("val_ae_loss", "val_ae_acc", "val_par_loss", "val_par_acc",
                                                 "val_ae_m_acc", "val_par_m_acc", "unigram_m_acc")}}


def control_model(preset: AblationPreset, tok, seed: int, rel_pos: bool):
    from pmlm.config import PMLMConfig
    from pmlm.model import PMLMModel

    overrides = {**preset.model_overrides, "vocab_size": tok.get_vocab_size()}
    if not rel_pos:
        overrides["rel_pos_buckets"] = 0
    torch.manual_seed(seed)
    return PMLMModel(PMLMConfig.preset(preset.model, **overrides))


def finetune_both(model, tok, splits: dict, preset: AblationPreset, seed: int, device: torch.device, log) -> dict:
    cls = finetune_classify(copy.deepcopy(model).to(device), tok, splits["classify"],
                            replace(preset.classify, seed=seed), log=log)
    s2s = finetune_seq2seq(copy.deepcopy(model).to(device), tok, splits["seq2seq"],
                           replace(preset.seq2seq, seed=seed), log=log)
    return {"test_acc": cls["test_acc"], "val_acc": cls["val_acc"], "majority_acc": cls["majority_acc"],
            "bleu": s2s["bleu"], "chrf": s2s["chrf"],
            "copy_bleu": s2s["copy_bleu"], "s2s_val_loss": s2s["val_loss"],
            "finetune_s": round(cls["seconds"] + s2s["seconds"], 1), "example": s2s["examples"][0]}


# ---------------------------------------------------------------------------------- reporting

def read_results(path: Path, *, repair: bool = False) -> list[dict]:
    """The rows of a results file; a torn last line (a run killed while writing it) is skipped with a
    warning, and with ``repair`` cut from the file (:func:`pmlm.reports.read_jsonl`)."""
    from pmlm.reports import read_jsonl

    return read_jsonl(path, repair=repair)


def append_result(path: Path, row: dict) -> None:
    """Add ``row`` as one line of ``path``, on a line of its own whatever the file ended with."""
    newline = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if newline else "") + json.dumps(row) + "\n")


def summarize(rows: list[dict]) -> list[dict]:
    """Per variant (Table 6 order, control last): n seeds, mean and sample std of each metric."""
    order = list(VARIANTS) + [CONTROL]
    out = []
    for variant in order:
        runs = [r for r in rows if r["variant"] == variant]
        if not runs:
            continue
        entry = {"variant": variant, "seeds": len(runs),
                 "objective": VARIANTS.get(variant, ("-", "-", "-"))[0],
                 "factorization": VARIANTS.get(variant, ("-", "-", "-"))[1],
                 "table6_row": VARIANTS.get(variant, ("-", "-", "control"))[2]}
        for key in ("test_acc", "majority_acc", "bleu", "chrf", "copy_bleu", "s2s_val_loss", "val_ae_loss", "val_par_loss",
                    "val_ae_m_acc", "val_par_m_acc", "unigram_m_acc", "pretrain_s", "finetune_s"):
            values = [r[key] for r in runs if r.get(key) is not None]
            entry[f"{key}_mean"] = statistics.fmean(values) if values else math.nan
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        out.append(entry)
    return out


def plateau(e: dict) -> str:
    """PAR accuracy on the [M] positions and its multiple of the unigram baseline on the same tokens."""
    par, uni = e.get("val_par_m_acc_mean", math.nan), e.get("unigram_m_acc_mean", math.nan)
    if math.isnan(par) or math.isnan(uni) or uni <= 0 or e["objective"] == "ae":
        return "-"
    return f"{par:.3f} ({par / uni:.1f}x)"


def fmt(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    if math.isnan(mean):
        return "-"
    s = f"{mean * scale:.{digits}f}"
    return s if math.isnan(std) else f"{s} ± {std * scale:.{digits}f}"


def markdown_table(summary: list[dict], preset_name: str) -> str:
    lines = [f"Preset `{preset_name}`; mean ± standard deviation over seeds (test splits).", "",
             "| variant | objective | factorization | Table 6 row | seeds | sentiment acc (%) | verses BLEU "
             "| verses chrF | verses val loss | pre-training val AE loss | val PAR loss | PAR `[M]` acc (x unigram) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        lines.append(f"| {e['variant']} | {e['objective']} | {e['factorization']} | {e['table6_row']} | {e['seeds']} "
                     f"| {fmt(e['test_acc_mean'], e['test_acc_std'], 100)} | {fmt(e['bleu_mean'], e['bleu_std'], 1, 2)} "
                     f"| {fmt(e['chrf_mean'], e['chrf_std'])} | {fmt(e['s2s_val_loss_mean'], e['s2s_val_loss_std'], 1, 3)} "
                     f"| {fmt(e['val_ae_loss_mean'], e['val_ae_loss_std'], 1, 2)} "
                     f"| {fmt(e['val_par_loss_mean'], e['val_par_loss_std'], 1, 2)} | {plateau(e)} |")
    lines.append("")
    majority = [e["majority_acc_mean"] for e in summary if not math.isnan(e["majority_acc_mean"])]
    if majority:
        lines.append(f"Baselines: always answering the majority class scores {100 * majority[0]:.1f}% on the "
                     "same test sentences;  ")
    copy = [e["copy_bleu_mean"] for e in summary if not math.isnan(e["copy_bleu_mean"])]
    if copy:
        lines.append(f"copying the KJV source unchanged scores BLEU {copy[0]:.1f} on the same test verses.  ")
    minutes = sum(e["pretrain_s_mean"] * e["seeds"] + e["finetune_s_mean"] * e["seeds"] for e in summary
                  if not math.isnan(e["finetune_s_mean"])) / 60
    lines += [f"Compute: {minutes:.0f} minutes of pre-training and fine-tuning in all.", ""]
    for key, name, _, higher in METRICS:
        lines.append(f"Ordering by {name} (best first): {ordering(summary, key, higher)}.  ")
    return "\n".join(lines) + "\n"


def ordering(summary: list[dict], key: str, higher: bool = True, digits: int = 4) -> str:
    """``A > B = C > D`` by the mean of ``key``; means equal to ``digits`` decimals are ties."""
    means = {e["variant"]: round(e[f"{key}_mean"], digits) for e in summary if not math.isnan(e[f"{key}_mean"])}
    out, last = "", None
    for variant in sorted(means, key=lambda v: -means[v] if higher else means[v]):
        out += ("" if last is None else " = " if means[variant] == last else " > ") + variant
        last = means[variant]
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    keys = ["variant", "seed", "objective", "factorization", "test_acc", "val_acc", "majority_acc", "bleu", "chrf",
            "copy_bleu",
            "s2s_val_loss", "val_ae_loss", "val_ae_acc", "val_par_loss", "val_par_acc", "pretrain_s", "finetune_s"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def plot(rows: list[dict], summary: list[dict], path: Path, title: str) -> Path:
    """Bars: mean over seeds; dots: single seeds; one panel per metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [e["variant"] for e in summary]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.8 * len(METRICS), 3.6))
    for ax, (key, label, scale, higher) in zip(axes, METRICS):
        means = [e[f"{key}_mean"] * scale for e in summary]
        colors = ["tab:red" if n == "AE+PAR" else "tab:gray" if n == CONTROL else "tab:blue" for n in names]
        ax.bar(range(len(names)), means, color=colors, alpha=0.6)
        for i, n in enumerate(names):
            ys = [r[key] * scale for r in rows if r["variant"] == n and r.get(key) is not None]
            ax.scatter([i] * len(ys), ys, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(label + ("" if higher else " (lower is better)"), fontsize=10)
        baseline = {"test_acc": ("majority_acc", "majority class"), "bleu": ("copy_bleu", "copying the source")}
        base = [r[baseline[key][0]] * scale for r in rows if key in baseline and r.get(baseline[key][0]) is not None]
        if base and key == "test_acc":
            ax.axhline(base[0], color="black", linestyle="--", linewidth=0.8, label=baseline[key][1])
            ax.legend(fontsize=8, loc="upper left")
        elif base:
            ax.text(0.02, 0.95, f"{baseline[key][1]}: {base[0]:.1f}", transform=ax.transAxes, fontsize=8, va="top")
        finite = [r[key] * scale for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        finite += [b for b in base if key == "test_acc"]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(1e-6, (hi - lo) * 0.6 + 0.5)
            ax.set_ylim(0.0, hi + pad)  # bars compare magnitudes: the axis starts at zero (dots: seeds)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(out: Path, preset_name: str, figure: Path | None, results: Path | None = None) -> str:
    rows = read_results(results or out / "results.jsonl")
    summary = summarize(rows)
    table = markdown_table(summary, preset_name)
    (out / "ablation.md").write_text(table)
    write_csv(rows, out / "ablation.csv")
    if figure is not None and summary:
        plot(rows, summary, figure, f"Table 6 in miniature (preset {preset_name}); bars: mean, dots: seeds")
    return table


# ------------------------------------------------------------------------------------ driver

def run(preset_name: str = "cpu", out_dir: str | Path = "runs/ablation", *, seeds: list[int] | None = None,
        variants: list[str] | None = None, control: bool = True, rel_pos: bool = True, fresh: bool = False,
        figure: str | Path | None = "figures/ablation.png", log=print, results_path: str | Path | None = None) -> str:
    """Pre-train, fine-tune and report; returns the markdown table.

    Run directories go to ``out_dir``; finished runs are lines of ``results_path`` (default
    ``out_dir/results.jsonl``; the command line commits the ``cpu`` and ``gpu`` presets' to
    ``results/ablation-<preset>.jsonl``).
    """
    if preset_name not in ABLATION_PRESETS:
        raise ValueError(f"unknown ablation preset {preset_name!r}; choose one of {sorted(ABLATION_PRESETS)}")
    preset = ABLATION_PRESETS[preset_name]
    variants = list(VARIANTS) if variants is None else variants
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    seeds = list(preset.seeds) if seeds is None else seeds
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(results_path) if results_path else out / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    if fresh and results.exists():
        results.unlink()
    settings = {"preset": preset_name, "rel_pos": rel_pos}
    settings_file = out / "settings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text()) != settings and results.exists():
        raise ValueError(f"{out} holds results of other settings {settings_file.read_text()}; "
                         "use another --out or --fresh")
    settings_file.write_text(json.dumps(settings))
    earlier = read_results(results, repair=True)  # a torn last line: warned about, cut, run again
    other = [r for r in earlier if r.get("preset") != preset_name or r.get("rel_pos", True) != rel_pos]
    if other:
        raise ValueError(f"{results} holds runs of other settings (preset {other[0].get('preset')!r}, rel_pos "
                         f"{other[0].get('rel_pos', True)}); pass another --results or --fresh")
    done = {(r["variant"], r["seed"]) for r in earlier}
    device = torch.device(preset.device if preset.device != "auto" else
                          ("cuda" if torch.cuda.is_available() else "cpu"))

    splits = {"classify": sentiment_splits(), "seq2seq": bible_splits()}
    corpus = out / "pretraining_text.jsonl.gz"
    if not corpus.is_file():
        build_pretraining_corpus(corpus, splits["classify"]["train"], splits["seq2seq"]["train"])
    tok_path = out / "tokenizer.json"
    tok = shared_tokenizer(tok_path, corpus, preset.vocab_size, preset.max_documents)

    for seed in seeds:
        for variant in variants + ([CONTROL] if control else []):
            if (variant, seed) in done:
                log(f"[ablation] {variant} seed {seed}: done before, skipped")
                continue
            log(f"[ablation] {variant} seed {seed}: pre-training" if variant != CONTROL else
                f"[ablation] control seed {seed}: no pre-training")
            if variant == CONTROL:
                model, pre = control_model(preset, tok, seed, rel_pos), {"pretrain_s": 0.0}
            else:
                from pmlm.checkpoint import load_pretrained
                run_dir, pre = pretrain_variant(variant, seed, preset, out, corpus, tok_path, rel_pos)
                model, _ = load_pretrained(run_dir)
            scores = finetune_both(model, tok, splits, preset, seed, device, log)
            objective, factorization, _ = VARIANTS.get(variant, ("-", "-", "-"))
            row = {"variant": variant, "seed": seed, "objective": objective, "factorization": factorization,
                   "preset": preset_name, "rel_pos": rel_pos, **pre, **scores}
            append_result(results, row)
            done.add((variant, seed))
            log(f"[ablation] {variant} seed {seed}: acc {scores['test_acc']:.4f}, BLEU {scores['bleu']:.2f}, "
                f"chrF {scores['chrf']:.2f}")
    return report(out, preset_name, Path(figure) if figure else None, results)


def main(argv: list[str] | None = None) -> None:
    from pmlm.train import smoke_mode

    p = argparse.ArgumentParser(prog="python -m pmlm.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(ABLATION_PRESETS),
                   help="micro (seconds), cpu (tens of minutes), gpu (under an hour); default: "
                        "micro under PMLM_SMOKE/CI, else cpu")
    p.add_argument("--out", help="output directory (default runs/ablation-<preset>)")
    p.add_argument("--seeds", type=int, nargs="+", help="override the preset's seeds")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="a subset of the variants")
    p.add_argument("--no-control", action="store_true", help="skip the no-pre-training control")
    p.add_argument("--no-rel-pos", action="store_true", help="drop the relative position bias in every run")
    p.add_argument("--fresh", action="store_true", help="forget earlier results in --out")
    p.add_argument("--figure", help="where to save the figure ('' for none; default figures/ablation.png, "
                                    "or <out>/ablation.png for the micro preset, which must not replace it)")
    p.add_argument("--results", help="the results file (default results/ablation-<preset>.jsonl, "
                                     "or <out>/results.jsonl for the micro preset)")
    p.add_argument("--report-only", action="store_true", help="rebuild table and figure from the results file")
    args = p.parse_args(argv)
    preset = args.preset or ("micro" if smoke_mode() else "cpu")
    out = Path(args.out or f"runs/ablation-{preset}")
    results = Path(args.results) if args.results else (out / "results.jsonl" if preset == "micro"
                                                        else Path(f"results/ablation-{preset}.jsonl"))
    if args.figure is None:
        args.figure = str(out / "ablation.png") if preset == "micro" else "figures/ablation.png"
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.report_only:
        if not results.is_file():
            raise SystemExit(f"python -m pmlm.ablation: error: no results at {results}; run the ablation first "
                             "(without --report-only) or pass --results")
        try:
            out.mkdir(parents=True, exist_ok=True)
            table = report(out, preset, Path(args.figure) if args.figure else None, results)
        except (ValueError, OSError) as err:  # a damaged results file (file:line), an unwritable --out
            raise SystemExit(f"python -m pmlm.ablation: error: {err}") from None
    else:
        table = run(preset, out, seeds=args.seeds, variants=args.variants, control=not args.no_control,
                    rel_pos=not args.no_rel_pos, fresh=args.fresh, figure=args.figure or None, log=log,
                    results_path=results)
    print(table)


if __name__ == "__main__":
    main()
