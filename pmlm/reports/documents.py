"""Which block goes where: every generated block of README.md and docs/, rewritten from its
results file (:func:`write_reports`) or checked against it (:func:`stale_reports`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmlm.report_tables import busy_machine_block, data_scale_block, decoding_block, fault_hunt_block
from pmlm.reports.files import ROOT
from pmlm.reports.studies import ablation_block, finetune_block, verses_long_block
from pmlm.reports.training import demo_block, demo_fill_ins_block, recipes_block, reference_block, twin_block


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
