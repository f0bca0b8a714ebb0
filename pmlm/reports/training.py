"""The blocks of pre-training: the recipes table, the recorded demo run and its fill-ins, the shipped
reference model and its AE-only twin."""

from __future__ import annotations

from pmlm.report_tables import _json, machine_words
from pmlm.reports.files import CHECKPOINTS, RESULTS, read_jsonl


def recipes_block() -> str:
    """The recipe table of docs/training.md from ``results/recipes.jsonl``."""
    results = read_jsonl(RESULTS / "recipes.jsonl")
    if not results:
        return "No recipe has been run yet (`python benchmarks/recipes.py`)."
    base = next((r for r in results if r["name"] == "baseline"), None)
    lines = ["| recipe | what changes | steps | parameters | masked bits/char, AE (PAR) | vs baseline | "
             "AE acc `[M]` | PAR acc `[M]` | PAR / unigram |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = r["val"]
        rel = (f"{100 * (v['val_ae_m_bpc'] / base['val']['val_ae_m_bpc'] - 1):+.1f}%" if base else "-")
        lines.append(f"| `{r['name']}` | {r['what']} | {r['steps']:,} | {r['parameters'] / 1e6:.2f}M | "
                     f"{v['val_ae_m_bpc']:.3f} ({v['val_par_m_bpc']:.3f}) | {rel} | {v['val_ae_m_acc']:.3f} | "
                     f"{v['val_par_m_acc']:.3f} | {v['val_par_m_acc'] / v['unigram_m_acc']:.1f}x |")
    best = min(results, key=lambda r: r["val"]["val_ae_m_bpc"])
    if base is not None and best is base:
        lines += ["", "No recipe of the table has lower masked bits per character than `baseline`."]
    elif base is not None:
        gain = 100 * (1 - best["val"]["val_ae_m_bpc"] / base["val"]["val_ae_m_bpc"])
        lines += ["", f"Lowest masked bits per character: `{best['name']}`, {gain:.1f}% below `baseline` "
                  f"(AE {best['val']['val_ae_m_bpc']:.3f} against {base['val']['val_ae_m_bpc']:.3f})."]
    first = results[0]
    minutes = sorted({r["minutes"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    loads = [float(r["machine"]["load"].split()[0]) for r in results if r["machine"].get("load")]
    mallocs: dict[str, list[str]] = {}
    for r in results:
        mallocs.setdefault(r["machine"].get("malloc", "?"), []).append(f"`{r['name']}`")
    conditions = (f" The 1-minute load average at each row's start ranged from {min(loads):.2f} to {max(loads):.2f}."
                  if loads else "")
    if len(mallocs) > 1:
        conditions += (" Allocator: " + "; ".join(f"{', '.join(names)}: {m}" for m, names in mallocs.items()) +
                       " (it changes the steps a row gets in its minutes, not what a step computes).")
    m0 = {k: v for k, v in first["machine"].items() if k != "load"}
    lines += ["", f"Each row trains for {', '.join(f'{x:g}' for x in minutes)} minutes of wall time "
              f"(`--time-budget`), seed {', '.join(map(str, seeds))}, on {machine_words(m0)}, "
              f"{first['machine']['date']}; one run per row.{conditions} Scores: the 256 held-out Austen examples of "
              "the run's validation split, fixed masks, on the masked tokens shown as `[M]`; "
              "\"vs baseline\" is the change of the AE bits per character. "
              "Rendered by `pmlm.reports` from `results/recipes.jsonl` (`benchmarks/recipes.py`)."]
    return "\n".join(lines)


def demo_block() -> str:
    """The numbers of the recorded ``make demo`` run (``results/demo.json``)."""
    s = _json(RESULTS / "demo.json")
    if s is None:
        return "No demo run has been recorded yet (`python -m pmlm.demo --record`)."
    m = s.get("machine", {})
    lines = [f"Recorded run: {s['wall_s']:.0f} s of wall time in all ({s['time_budget_min']:g}-minute budget), "
             f"{s['steps']:,} steps at {s['tokens_per_s']:,} text tokens/s, {s['parameters']:,} parameters, "
             f"{s['device']}, {machine_words(m)}, {m.get('date', '?')}. Validation: "
             f"{s['eval_examples']} held-out Austen examples, fixed masks, masked tokens shown as `[M]`:", "",
             "| | AE acc | AE bits/char | PAR acc | PAR bits/char |", "|---|---|---|---|---|"]
    for label, p in (("before training", "initial_"), ("after training", "val_")):
        lines.append(f"| {label} | {s[p + 'ae_m_acc']:.3f} | {s[p + 'ae_m_bpc']:.3f} | {s[p + 'par_m_acc']:.3f} | "
                     f"{s[p + 'par_m_bpc']:.3f} |")
    lines.append(f"| unigram baseline (same tokens) | {s['unigram_m_acc']:.3f} | {s['unigram_m_bpc']:.3f} | "
                 f"{s['unigram_m_acc']:.3f} | {s['unigram_m_bpc']:.3f} |")
    words = ""
    if s.get("val_m_word_tokens"):
        words = (f" On the {s['val_m_word_tokens']:,} of those pieces that are part of a word (punctuation left "
                 f"out) AE guesses {_f(s['val_ae_m_word_acc'])} and PAR {_f(s['val_par_m_word_acc'])} right, "
                 f"against {_f(s['unigram_m_word_acc'])} for always guessing the commonest word piece.")
    lines += ["", f"PAR predicts {s['val_par_m_acc'] / s['unigram_m_acc']:.1f}x and AE "
              f"{s['val_ae_m_acc'] / s['unigram_m_acc']:.1f}x as many masked pieces as the unigram baseline.{words} "
              "Rendered by `pmlm.reports` from `results/demo.json`."]
    return "\n".join(lines)


def demo_fill_ins_block() -> str:
    """The fill-ins the recorded demo run printed (``results/demo.json``), as a code block."""
    s = _json(RESULTS / "demo.json")
    if s is None or not s.get("fill_ins"):
        return "No demo run has been recorded yet (`python -m pmlm.demo --record`)."
    return "```\n" + "\n".join(s["fill_ins"]).strip("\n") + "\n```"


# the held-out texts of a shipped model's evaluation.json (scripts/reference_model.py export)
HELD_OUT = {"austen": "Austen validation chapters", "verses": "verses of the validation books (KJV and WEB)",
            "reviews": "review sentences (sentiment validation split)"}


def reference_block(name: str = "austen-tiny") -> str:
    """The reference model's recipe, compute and held-out numbers (its evaluation.json, training.json)."""
    directory = CHECKPOINTS / name
    ev, tr = _json(directory / "evaluation.json"), _json(directory / "training.json")
    if ev is None or tr is None:
        return f"The reference model `{name}` has not been exported yet (`python scripts/reference_model.py export`)."
    procs = tr.get("processes") or []
    wall = sum(p.get("elapsed_s") or 0 for p in procs)
    cpu = sum(p.get("cpu_s") or 0 for p in procs)
    cfg = tr["train_config"]
    config = _json(directory / "config.json") or {}
    dtype = config.get("torch_dtype", "float32")
    lines = [f"`pmlm.load_reference()` loads `{name}` (`pmlm/checkpoints/{name}/`, {dtype}, "
             f"{sum(p.stat().st_size for p in directory.iterdir()) / 1e6:.1f} MB): "
             f"{tr.get('parameters', 0):,} parameters, {tr.get('steps', 0):,} steps, "
             f"{wall / 60:.0f} minutes of wall time and {cpu / 3600:.2f} CPU-hours in {len(procs)} process(es) "
             f"on {tr.get('torch_threads', '?')} threads, finished {tr.get('finished', '?')}; data: {tr.get('data')}.",
             "", f"Made by `{tr.get('command') or 'python scripts/reference_model.py train'}`.", "",
             "| held-out text | examples | AE acc `[M]` | PAR acc `[M]` | unigram acc | AE bits/char | "
             "PAR bits/char | unigram bits/char | words: AE / PAR / unigram acc |", "|---|---|---|---|---|---|---|---|---|"]
    for key, label in HELD_OUT.items():
        r = ev.get(key)
        if r:
            words = (f"{_f(r['val_ae_m_word_acc'])} / {_f(r['val_par_m_word_acc'])} / {_f(r['unigram_m_word_acc'])}"
                     if "val_ae_m_word_acc" in r else "-")
            lines.append(f"| {label} | {r['examples']:,} | {r['val_ae_m_acc']:.3f} | {r['val_par_m_acc']:.3f} | "
                         f"{r['unigram_m_acc']:.3f} | {r['val_ae_m_bpc']:.3f} | {r['val_par_m_bpc']:.3f} | "
                         f"{r['unigram_m_bpc']:.3f} | {words} |")
    lines += ["", f"Recipe: the `{cfg['model']}` model with {cfg['model_overrides']}, {cfg['max_length']}-token "
              f"examples, batch {cfg['batch_size']}, peak lr {cfg['lr']:g}, "
              f"{config.get('vocab_size', cfg['vocab_size']):,}-piece vocabulary, "
              f"time budget {cfg['time_budget']:g} minutes. Scores of the {dtype} weights as shipped, fixed masks "
              f"(seed {ev.get('masks_seed', 0)}), masked tokens shown as `[M]`; \"words\": the masked pieces that "
              "are part of a word, punctuation left out (the unigram guess is then the commonest word piece). "
              "Rendered by `pmlm.reports` from the model's "
              "`evaluation.json` and `training.json`."]
    return "\n".join(lines)


def _f(value, digits: int = 3) -> str:
    """A score as text, ``-`` where there is none (no token of that kind in the set)."""
    return "-" if value is None else f"{value:.{digits}f}"


def twin_block(name: str = "austen-tiny", twin: str = "austen-tiny-ae") -> str:
    """The reference model's AE half against its AE-only twin's, on the same held-out tokens."""
    ref, other = _json(CHECKPOINTS / name / "evaluation.json"), _json(CHECKPOINTS / twin / "evaluation.json")
    tr, ref_tr = _json(CHECKPOINTS / twin / "training.json"), _json(CHECKPOINTS / name / "training.json")
    if ref is None or other is None or tr is None or ref_tr is None:
        return (f"The AE-only twin `{twin}` has not been exported yet "
                "(`python scripts/reference_model.py train --twin`, then `export --twin`).")
    texts = [k for k in HELD_OUT if ref.get(k) and other.get(k)]
    for k in texts:
        if ref[k]["val_m_tokens"] != other[k]["val_m_tokens"] or ref.get("masks_seed") != other.get("masks_seed"):
            raise ValueError(f"{name} and {twin} were not scored on the same masked tokens of {k}: "
                             "export both with scripts/reference_model.py")
    procs = tr.get("processes") or []
    wall = sum(p.get("elapsed_s") or 0 for p in procs)
    steps = "the reference's number" if tr.get("steps") == ref_tr.get("steps") else \
        f"against the reference's {ref_tr.get('steps', 0):,}"
    lines = [f"`pmlm.load_reference(\"{twin}\")` loads the AE-only twin: the same recipe, tokenizer, data and seed "
             f"with BERT's objective alone (Table 6 row 4), {tr.get('steps', 0):,} steps, {steps} "
             f"({wall / 60:.0f} minutes of wall time on {tr.get('torch_threads', '?')} threads: an AE step costs "
             "less than an AE+PAR step). Both models' AE predictions, from `[M]`, on the same masked tokens:", "",
             "| held-out text | AE acc, AE+PAR model | AE acc, AE-only twin | AE bits/char, AE+PAR | "
             "AE bits/char, AE-only | unigram acc | word pieces: AE+PAR / AE-only |", "|---|---|---|---|---|---|---|"]
    for key in texts:
        a, b = ref[key], other[key]
        lines.append(f"| {HELD_OUT[key]} | {_f(a['val_ae_m_acc'])} | {_f(b['val_ae_m_acc'])} | {_f(a['val_ae_m_bpc'])} | "
                     f"{_f(b['val_ae_m_bpc'])} | {_f(a['unigram_m_acc'])} | {_f(a.get('val_ae_m_word_acc'))} / "
                     f"{_f(b.get('val_ae_m_word_acc'))} |")
    a, b = ref.get("austen"), other.get("austen")
    if a and b and a["val_m_tokens"] and a["val_ae_m_acc"] is not None and b["val_ae_m_acc"] is not None:
        import math

        diff, n = a["val_ae_m_acc"] - b["val_ae_m_acc"], a["val_m_tokens"]
        # the two samples treated as independent: an upper bound, the pairing on the same tokens lowers it
        se = math.sqrt((a["val_ae_m_acc"] * (1 - a["val_ae_m_acc"]) + b["val_ae_m_acc"] * (1 - b["val_ae_m_acc"])) / n)
        where = "level with" if abs(diff) < 0.0005 else f"{abs(diff):.3f} {'above' if diff > 0 else 'below'}"
        ratio = f": {abs(diff) / se:.1f} times the standard error" if se > 0 else ", with a standard error"
        lines += ["", f"On Austen the AE+PAR model's AE accuracy is {where} the AE-only twin's on the same {n:,} "
                  f"masked tokens{ratio} of the difference of two independent accuracies on that many tokens "
                  f"({se:.3f}), which counts the sampling of tokens but not the seed: one run each."]
        bpc = [(k, ref[k]["val_ae_m_bpc"] - other[k]["val_ae_m_bpc"]) for k in texts
               if ref[k]["val_ae_m_bpc"] is not None and other[k]["val_ae_m_bpc"] is not None]
        twin_lower = [g for _, g in bpc if g > 0]
        if bpc:
            verdict = ("does not make the `[M]` half better" if 2 * len(twin_lower) >= len(bpc)
                       else "makes the `[M]` half better on most texts")
            by = f" (by at most {max(twin_lower):.3f})" if twin_lower else ""
            lines[-1] += (f" In AE bits per character the AE-only twin is lower on {len(twin_lower)} of the {len(bpc)} "
                          f"texts{by}: at this size and budget, training the `[P]`s as well {verdict}.")
        lines[-1] += (" `pmlm.ablation` repeats the comparison over seeds at a smaller budget, and on fine-tuned "
                      "tasks. Rendered by `pmlm.reports` from both models' `evaluation.json` and `training.json`.")
    return "\n".join(lines)
