"""The runs of the ablation: one shared corpus and tokenizer, each variant pre-trained and
fine-tuned on both tasks, every finished run a line of the results file (see :mod:`pmlm.ablation`)."""

from __future__ import annotations

import copy
import gzip
import json
import random
import time
from dataclasses import replace
from pathlib import Path

import torch

from pmlm.ablation.presets import ABLATION_PRESETS, CONTROL, VARIANTS, AblationPreset
from pmlm.ablation.report import report
from pmlm.ablation.results import append_result, read_results
from pmlm.finetune.classify import finetune_classify
from pmlm.finetune.data import bible_splits, sentiment_splits
from pmlm.finetune.seq2seq import finetune_seq2seq



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
