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
``course-tasks``    :data:`pmlm.course.tasks.TASKS`                        the course kit's task list
==================  ===================================================  ==================================

:func:`write_reports` rewrites every block; :func:`stale_reports` lists the blocks whose text no
longer matches its results file, which ``tests/test_reports.py`` requires to be none, so that prose
and results cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines results file; none when it is not there yet."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def machine_words(m: dict) -> str:
    """``AMD EPYC 7B13, 2 cores, 2 threads, torch 2.13.0`` from a benchmark machine record."""
    parts = [m.get("cpu", "?"), f"{m.get('cores', '?')} cores", f"{m.get('threads', '?')} threads"]
    if m.get("load"):
        parts.append(f"load {m['load']} at the start")
    parts.append(f"torch {m.get('torch', '?')}")
    return ", ".join(parts)


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
    lines += ["", f"Each row trains for {', '.join(f'{x:g}' for x in minutes)} minutes of wall time "
              f"(`--time-budget`), seed {', '.join(map(str, seeds))}, on {machine_words(first['machine'])}, "
              f"{first['machine']['date']}; one run per row. Scores: the 256 held-out Austen examples of "
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
    lines += ["", f"PAR predicts {s['val_par_m_acc'] / s['unigram_m_acc']:.1f}x and AE "
              f"{s['val_ae_m_acc'] / s['unigram_m_acc']:.1f}x as many masked pieces as the unigram baseline. "
              "Rendered by `pmlm.reports` from `results/demo.json`."]
    return "\n".join(lines)


def demo_fill_ins_block() -> str:
    """The fill-ins the recorded demo run printed (``results/demo.json``), as a code block."""
    s = _json(RESULTS / "demo.json")
    if s is None or not s.get("fill_ins"):
        return "No demo run has been recorded yet (`python -m pmlm.demo --record`)."
    return "```\n" + "\n".join(s["fill_ins"]).strip("\n") + "\n```"


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
             "PAR bits/char | unigram bits/char |", "|---|---|---|---|---|---|---|---|"]
    names = {"austen": "Austen validation chapters", "verses": "verses of the validation books (KJV and WEB)",
             "reviews": "review sentences (sentiment validation split)"}
    for key, label in names.items():
        r = ev.get(key)
        if r:
            lines.append(f"| {label} | {r['examples']:,} | {r['val_ae_m_acc']:.3f} | {r['val_par_m_acc']:.3f} | "
                         f"{r['unigram_m_acc']:.3f} | {r['val_ae_m_bpc']:.3f} | {r['val_par_m_bpc']:.3f} | "
                         f"{r['unigram_m_bpc']:.3f} |")
    lines += ["", f"Recipe: the `{cfg['model']}` model with {cfg['model_overrides']}, {cfg['max_length']}-token "
              f"examples, batch {cfg['batch_size']}, peak lr {cfg['lr']:g}, "
              f"{config.get('vocab_size', cfg['vocab_size']):,}-piece vocabulary, "
              f"time budget {cfg['time_budget']:g} minutes. Scores of the {dtype} weights as shipped, fixed masks "
              f"(seed {ev.get('masks_seed', 0)}), masked tokens shown as `[M]`. Rendered by `pmlm.reports` from the model's "
              "`evaluation.json` and `training.json`."]
    return "\n".join(lines)


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
                                        "course-tasks": course_tasks_block}
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "training.md", ROOT / "docs" / "teaching.md"]


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
