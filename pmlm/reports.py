"""One source for every number: the generated sections of README.md and docs/ come from results files.

Each block between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in a document is rendered here
from a file that the code that measured it wrote:

==================  ===================================================  ==================================
block               results file                                          written by
==================  ===================================================  ==================================
``demo``,           ``results/demo.json``                                 ``python -m pmlm.demo --record``
``demo-fill-ins``
``recipes``         ``results/recipes.jsonl``                             ``benchmarks/recipes.py``
``reference``       ``pmlm/checkpoints/<name>/evaluation.json`` and       ``scripts/reference_model.py``
                    ``training.json``
``reference-twin``  the same files of the reference and its AE-only twin  ``scripts/reference_model.py --twin``
``course-tasks``    :data:`pmlm.course.tasks.TASKS`                        the course kit's task list
``finetune``        ``results/finetune.jsonl``                            ``benchmarks/finetune_study.py``
``ablation``        ``results/ablation-cpu.jsonl``                        ``python -m pmlm.ablation --preset cpu``
``decoding``        ``results/decoding.json``                             ``benchmarks/decoding.py``
==================  ===================================================  ==================================

:func:`write_reports` rewrites every block; :func:`stale_reports` lists the blocks whose text no
longer matches its results file, which ``tests/test_reports.py`` requires to be none, so that prose
and results cannot drift apart.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

from pmlm.report_tables import (RESULTS, _json, busy_machine_block, data_scale_block, decoding_block,
                                fault_hunt_block, machine_words)

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict]:
    """The records of a JSON-lines results file; none when it is not there yet.

    A last line that does not parse is a write cut off by a killed run: it is skipped with a
    warning, never a stop, so that the records before it still count (with ``repair`` it is also
    cut from the file, so that the next record appended starts on a line of its own). A bad line
    before the last is a ValueError naming the file and the line.
    """
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(numbered):
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if i < len(numbered) - 1:
                raise ValueError(f"{path}:{n}: not a JSON record ({str(err).splitlines()[0]}); the file is "
                                 "damaged: fix or remove that line") from None
            warnings.warn(f"{path}:{n}: the last line is cut off (a run killed while writing it?) and is "
                          f"skipped{'; removed from the file' if repair else ''}: {len(records)} records read",
                          stacklevel=2)
            if repair:
                from pmlm.model_files import write_atomic
                write_atomic(path, b"".join(raw + b"\n" for _, raw in numbered[:i]))
            break
        records.append(record)
    return records


def append_jsonl(path: Path, record: dict) -> None:
    """Add ``record`` as one line of the results file ``path``, on a line of its own whatever the
    file ended with (a record written whole by an older tool without its newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    newline = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if newline else "") + json.dumps(record) + "\n")


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


def _spread(values: list[float], digits: int = 1) -> str:
    import statistics

    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def chosen_setting(rows: list[dict], init: str) -> dict | None:
    """The sentiment tuning row of ``init`` with the best validation accuracy (seed 0, all data)."""
    grid = [r for r in rows if r["task"] == "sentiment" and r["init"] == init and r.get("grid")]
    return max(grid, key=lambda r: (r["val_acc"], -r["lr"])) if grid else None


def finetune_block() -> str:
    """Reference model against the control, sentiment and verses (``results/finetune.jsonl``)."""
    import statistics

    rows = read_jsonl(RESULTS / "finetune.jsonl")
    if not rows:
        return "The fine-tuning study has not been run yet (`python benchmarks/finetune_study.py sentiment`)."
    m = rows[0]
    lines = [f"Measured by `benchmarks/finetune_study.py` on {m.get('machine', '?')}, {m.get('threads', '?')} "
             f"threads, torch {m.get('torch', '?')}, {m.get('date', '?')}; both initialisations have the "
             "reference model's architecture and tokenizer.", ""]
    sent = [r for r in rows if r["task"] == "sentiment"]
    means = {}
    if sent:
        lines += ["**Sentiment** (Rotten Tomatoes). Tuning at seed 0, validation accuracy (%), best epoch of up "
                  f"to {sent[0]['epochs']}:", "", "| init | lr | pooling | validation acc | best epoch |",
                  "|---|---|---|---|---|"]
        for r in sorted((r for r in sent if r.get("grid")), key=lambda r: (r["init"] != "reference", r["lr"], r["pooling"])):
            lines.append(f"| {r['init']} | {r['lr']:g} | {r['pooling']} | {100 * r['val_acc']:.1f} | {r['best_epoch']} |")
        lines += ["", "Test accuracy at each initialisation's chosen setting, mean ± sd over seeds (%):", "",
                  "| init | chosen lr, pooling | labelled sentences | seeds | test acc |", "|---|---|---|---|---|"]
        for init in ("reference", "control"):
            best = chosen_setting(rows, init)
            if best is None:
                continue
            for limit in sorted({r["train_limit"] for r in sent}, key=lambda x: -(x or 10**9)):
                runs = [r for r in sent if r["init"] == init and r["lr"] == best["lr"] and r["pooling"] == best["pooling"]
                        and r["train_limit"] == limit]
                if runs:
                    means[(init, limit)] = (statistics.fmean(r["test_acc"] for r in runs), len(runs))
                    lines.append(f"| {init} | {best['lr']:g}, {best['pooling']} | {runs[0]['n_train']:,} | {len(runs)} "
                                 f"| {_spread([100 * r['test_acc'] for r in runs])} |")
        lines.append(f"\nAlways answering the majority class scores {100 * sent[0]['majority_acc']:.1f}% on the same "
                     "test sentences.")
        for limit in sorted({k[1] for k in means}, key=lambda x: -(x or 10**9)):
            if ("reference", limit) in means and ("control", limit) in means:
                (a, na), (b, nb) = means[("reference", limit)], means[("control", limit)]
                size = "all the training sentences" if limit is None else f"{limit:,} labelled sentences"
                lines.append(f"Sentiment test accuracy, {size}: reference {100 * a:.1f}%, control {100 * b:.1f}% "
                             f"({na} and {nb} seeds; {100 * (a - b):+.1f} points).  ")
        if ("reference", None) in means and ("control", None) in means:
            gap = 100 * (means[("reference", None)][0] - means[("control", None)][0])
            verdict = "met" if gap >= 3 and min(means[("reference", None)][1], means[("control", None)][1]) >= 3 else "MISSED"
            lines.append(f"Target \"at least 3 points above the control, over at least 3 seeds\" on all the "
                         f"training sentences: {verdict} (reference - control = {gap:+.1f} points).")
    ver = [r for r in rows if r["task"] == "verses"]
    if ver:
        lines += ["", f"**Verses** (KJV -> WEB, test books; {ver[0]['n_test']} verses that fit "
                  f"the recipe's lengths, beam 4), mean ± sd over seeds:", "",
                  "| init | seeds | BLEU | chrF | copying the source: BLEU | chrF |", "|---|---|---|---|---|---|"]
        bleu = {}
        for init in ("reference", "control"):
            runs = [r for r in ver if r["init"] == init]
            if runs:
                bleu[init] = statistics.fmean(r["bleu"] for r in runs)
                lines.append(f"| {init} | {len(runs)} | {_spread([r['bleu'] for r in runs])} | "
                             f"{_spread([r['chrf'] for r in runs])} | {runs[0]['copy_bleu']:.1f} | {runs[0]['copy_chrf']:.1f} |")
        if len(bleu) == 2:
            gap = bleu["reference"] - bleu["control"]
            copy = ver[0]["copy_bleu"]
            lines.append(f"\nVerses test BLEU (beam 4, {ver[0]['n_test']} verses): reference {bleu['reference']:.1f}, "
                         f"control {bleu['control']:.1f}, copying the source {copy:.1f}.  ")
            lines.append(f"Target \"BLEU at least 10 above the control\": {'met' if gap >= 10 else 'MISSED'} "
                         f"({gap:+.1f}). Goal \"beat copying the source\": {'met' if bleu['reference'] > copy else 'MISSED'} "
                         f"(reference {bleu['reference']:.1f} against {copy:.1f}).")
        curve_lines = []
        for init in ("reference", "control"):
            curves = [r["curve"] for r in ver if r["init"] == init and r.get("curve")]
            if curves:
                steps = [p["step"] for p in curves[0]]
                avg = [statistics.fmean(c[i]["val_bleu"] for c in curves if i < len(c)) for i in range(len(steps))]
                curve_lines.append(f"{init}: " + ", ".join(f"{s}: {b:.1f}" for s, b in zip(steps, avg)))
        if curve_lines:
            copy_val = ver[0]["curve"][0]["val_copy_bleu"]
            lines += ["", f"Validation BLEU against fine-tuning steps (greedy, 100 validation verses, mean over seeds; "
                      f"copying scores {copy_val:.1f} on them):  ", "  \n".join(curve_lines)]
    return "\n".join(lines)


def verses_long_block() -> str:
    """The reference model on the verses until validation BLEU levels off (``verses-long`` rows of
    ``results/finetune.jsonl``): the curve, where it levelled off, test BLEU against copying."""
    rows = [r for r in read_jsonl(RESULTS / "finetune.jsonl") if r["task"] == "verses-long"]
    if not rows:
        return "Not run yet (`python benchmarks/finetune_study.py verses-long`)."
    r = rows[-1]
    at = r.get("levelled_off_at")
    curve = ", ".join(f"{p['step']:,}: {p['val_bleu']:.1f}" for p in r["curve"])
    best = max(r["curve"], key=lambda p: p["val_bleu"])
    lines = [f"Measured by `benchmarks/finetune_study.py verses-long` on {r['machine']}, {r['threads']} threads, "
             f"torch {r['torch']}, {r['date']}: the reference model, the `tiny` fine-tuning recipe over "
             f"{r['steps']:,} steps (lr {r['lr']:g}, linear decay), seed {r['seed']}, {r['seconds'] / 60:.0f} "
             "minutes" + (f", with the code of commit `{r['commit'][:7]}`" if r.get("commit") else "") + ".", "",
             f"Validation BLEU against steps (greedy, 100 validation verses; copying scores "
             f"{r['curve'][0]['val_copy_bleu']:.1f} on them): {curve}.  ",
             (f"It levelled off at step {at:,}: the {r['patience']} points after it gained less than "
              f"{r['min_gain']:g} BLEU each (best {best['val_bleu']:.1f} at step {best['step']:,})." if at is not None
              else f"It was still climbing at step {r['steps']:,} (no {r['patience']} points in a row gained less "
                   f"than {r['min_gain']:g} BLEU): the best is {best['val_bleu']:.1f}, at step {best['step']:,}."),
             "", "| test verses (500, beam 4) | BLEU | chrF |", "|---|---|---|",
             f"| fine-tuned, as the `tiny` recipe decodes | {r['bleu']:.1f} | {r['chrf']:.1f} |",
             f"| fine-tuned, trigram blocking (s2s-ft's `--forbid_duplicate_ngrams`) | "
             f"{r['bleu_trigram_blocked']:.1f} | {r['chrf_trigram_blocked']:.1f} |",
             f"| copying the source | {r['copy_bleu']:.1f} | {r['copy_chrf']:.1f} |", ""]
    top = max(r["bleu"], r["bleu_trigram_blocked"])
    lines.append(f"Goal \"beat copying the source\": {'met' if top > r['copy_bleu'] else 'MISSED'} "
                 f"(best {top:.1f} against {r['copy_bleu']:.1f}, {top - r['copy_bleu']:+.1f} BLEU).")
    return "\n".join(lines)


def ablation_block(preset: str = "cpu") -> str:
    """The committed ablation run (``results/ablation-<preset>.jsonl``): table and the paper's claim."""
    import math

    from pmlm import ablation

    rows = read_jsonl(RESULTS / f"ablation-{preset}.jsonl")
    if not rows:
        return f"The `{preset}` ablation has not been run yet (`python -m pmlm.ablation --preset {preset}`)."
    summary = ablation.summarize(rows)
    seeds = sorted({r["seed"] for r in rows})
    expected = len(ablation.ABLATION_PRESETS[preset].seeds) * (len(ablation.VARIANTS) + 1)
    lines = [f"{len(rows)} of {expected} runs recorded (seeds {', '.join(map(str, seeds))}); "
             f"`python -m pmlm.ablation --preset {preset}` runs the missing ones.", "",
             ablation.markdown_table(summary, preset).strip()]
    by = {e["variant"]: e for e in summary}
    par_rows = [e for e in summary if e["objective"] in ("par", "ae+par")]
    ratios = [e["val_par_m_acc_mean"] / e["unigram_m_acc_mean"] for e in par_rows
              if not math.isnan(e.get("val_par_m_acc_mean", math.nan)) and e.get("unigram_m_acc_mean")]
    if ratios:
        ok = all(r >= 2.5 for r in ratios) and len(ratios) == len(par_rows)
        lines += ["", f"Every PAR variant off the plateau (PAR `[M]` accuracy at least 2.5x unigram): "
                  f"{'yes' if ok else 'NO'} (lowest {min(ratios):.1f}x)."]
    if "AE" in by and "AE+PAR" in by:
        for key, name, scale, higher in (("test_acc", "sentiment accuracy", 100, True), ("bleu", "verses BLEU", 1, True),
                                         ("s2s_val_loss", "verses validation loss", 1, False)):
            a, b = by["AE+PAR"], by["AE"]
            gap = (a[f"{key}_mean"] - b[f"{key}_mean"]) * scale * (1 if higher else -1)
            spread = max((s for s in (a[f"{key}_std"], b[f"{key}_std"]) if not math.isnan(s)), default=math.nan) * scale
            if math.isnan(spread):
                verdict = "one seed, so no spread to compare the gap with: not yet evidence"
            else:
                verdict = (f"spread over seeds {spread:.2f}: " +
                           ("beats AE by more than the spread" if gap > spread else "not separated from AE"))
            lines.append(f"AE+PAR against AE on {name}: {gap:+.2f} ({'better' if gap > 0 else 'worse'}); {verdict}.  ")
    return "\n".join(lines)


def summary_lines(block: str) -> str:
    """The verdict lines of a block (targets, plateau, the paper's claim), for the README."""
    keep = [line.rstrip() for line in block.splitlines()
            if line.startswith(("Target", "Goal", "Every PAR variant", "AE+PAR against AE", "Always answering",
                                "Sentiment test accuracy", "Verses test", "It levelled off", "It was still climbing"))
            or "runs recorded" in line or "has not been run" in line or line.startswith("Not run yet")]
    return "\n".join(keep) if keep else block


def course_tasks_block() -> str:
    """The course kit's task table (docs/teaching.md) from :data:`pmlm.course.tasks.TASKS`."""
    from pmlm.course.tasks import TASKS

    lines = ["| task | the student implements | taught in | paper | expected time | points |",
             "|---|---|---|---|---|---|"]
    for t in TASKS.values():
        where = ", ".join(f"`pmlm/{rel}`: `{name}`" for rel, name in t.functions)
        lines.append(f"| {t.number} | {t.title.split(' (')[0]} ({where}) | {t.where} | {t.paper} | "
                     f"{t.minutes} min | {t.points} |")
    total = sum(t.minutes for t in TASKS.values())
    lines += ["", f"All seven: {sum(t.points for t in TASKS.values())} points, about {total / 60:.1f} hours of "
              "a student's time by our estimate (a first assignment might take tasks 1, 3 and 4)."]
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[], str]] = {"demo": demo_block, "demo-fill-ins": demo_fill_ins_block,
                                        "recipes": recipes_block, "reference": reference_block,
                                        "reference-twin": twin_block,
                                        "course-tasks": course_tasks_block, "finetune": finetune_block,
                                        "ablation": ablation_block, "decoding": decoding_block,
                                        "data-scale": data_scale_block,
                                        "fault-hunt": fault_hunt_block, "busy-machine": busy_machine_block,
                                        "verses-long": verses_long_block,
                                        "finetune-summary": lambda: summary_lines(finetune_block()),
                                        "verses-long-summary": lambda: summary_lines(verses_long_block()),
                                        "ablation-summary": lambda: summary_lines(ablation_block())}
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "training.md", ROOT / "docs" / "teaching.md",
             ROOT / "docs" / "finetuning.md", ROOT / "docs" / "ablation.md"]


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        return text
    return text[: text.index(begin)] + f"{begin}\n{body.rstrip()}\n{end}" + text[text.index(end) + len(end):]


def write_reports(documents: list[Path] = DOCUMENTS) -> list[Path]:
    """Rewrite every generated block of ``documents``; returns the files that changed."""
    changed = []
    bodies = {name: render() for name, render in BLOCKS.items()}
    for path in documents:
        old = path.read_text()
        new = old
        for name, body in bodies.items():
            new = replace_block(new, name, body)
        if new != old:
            path.write_text(new)
            changed.append(path)
    return changed


def stale_reports(documents: list[Path] = DOCUMENTS) -> list[str]:
    """``file: block`` for every generated block whose text differs from its results file."""
    bodies = {name: render() for name, render in BLOCKS.items()}
    stale = []
    for path in documents:
        text = path.read_text()
        for name, body in bodies.items():
            if f"<!-- {name}:begin -->" in text and replace_block(text, name, body) != text:
                stale.append(f"{path.relative_to(ROOT)}: {name}")
    return stale


if __name__ == "__main__":
    for path in write_reports():
        print(f"updated {path.relative_to(ROOT)}")
