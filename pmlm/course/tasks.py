"""The seven tasks of the course kit: what a student implements, where, and what it is worth.

Each task names the functions whose bodies hold a solution region, delimited in the package
source by nbgrader's marker lines ``### BEGIN SOLUTION`` and ``### END SOLUTION``. A function may
hold the region of one task only; a task may span several functions (the losses: the per-group
cross entropy and the sum of Eq. 7) and files (the standalone Hugging Face module carries its own
copy of the buckets, so it is stubbed with task 6). ``where`` is the place a stub's message sends
the student to; ``minutes`` is the time we expect a student to need, for ``docs/teaching.md``;
``test_seconds`` is how long the task's grading tests take on one free CPU core with the reference
solution, from which the grader sets the task's time limit (``autograder/grade.py``).

This module is plain data and the standard library only: the standalone grader
(``autograder/grade.py``) reads it from a file, without importing :mod:`pmlm`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    number: int
    title: str  # what the student implements, in the paper's terms
    functions: tuple[tuple[str, str], ...]  # (file under pmlm/, function name) holding a region
    where: str  # notebook and section that teach it
    paper: str  # the paper's section
    minutes: int  # expected time for a student
    points: int  # the task's share of the grade (the grading tests split it)
    test_seconds: int = 30  # its grading tests alone, start-up included (`grade . --tasks N`, 2 cores), rounded up


TASKS: dict[int, Task] = {t.number: t for t in (
    Task(1, "Algorithm 1: blockwise masking (pmlm.masking.sample_blocks)",
         (("masking.py", "sample_blocks"),),
         "notebook 1, section 'Algorithm 1'", "section 3.1.2, Algorithm 1", 40, 15, test_seconds=10),
    Task(2, "the 80/10/10 replacement (pmlm.masking.replacement_tokens)",
         (("masking.py", "replacement_tokens"),),
         "notebook 1, section 'The 80/10/10 replacement (section 4.1)'", "section 4.1", 20, 10, test_seconds=10),
    Task(3, "the layout with position reuse (pmlm.layout.layout_1d)",
         (("layout.py", "layout_1d"),),
         "notebook 2, section 'The paper's worked example'", "section 3.2, Figs. 1 and 4", 40, 15, test_seconds=10),
    Task(4, "the attention rule (pmlm.attention.may_attend)",
         (("attention.py", "may_attend"),),
         "notebook 2, sections 'The attention mask' and 'The leaks the mask blocks'",
         "section 3.2, Figs. 4 and 5", 30, 20, test_seconds=10),
    Task(5, "the AE and PAR losses (pmlm.losses.grouped_components and combine)",
         (("losses.py", "grouped_components"), ("losses.py", "combine")),
         "notebook 3, section 'The model and the two losses'", "section 3.3, Eqs. 3-7", 25, 10, test_seconds=10),
    Task(6, "T5 relative position buckets (pmlm.relpos.relative_position_bucket)",
         (("relpos.py", "relative_position_bucket"), ("hf_remote/modeling_pmlm.py", "relative_position_bucket")),
         "the docstring of pmlm/relpos.py and notebook 2, section 'A real sentence'",
         "section 4.1 (relative position bias)", 30, 10, test_seconds=10),
    Task(7, "one cached decoding step of pseudo-mask generation (pmlm.finetune.decoding.cached_step_inputs)",
         (("finetune/decoding.py", "cached_step_inputs"),),
         "notebook 5, section 'Generation: King James to World English'", "section 3.4", 45, 20, test_seconds=15),
)}


def parse_tasks(text: str | None) -> list[int]:
    """``"1,4"`` -> [1, 4]; None or ``"all"`` -> every task. A ValueError names a bad entry."""
    if text is None or text.strip() in ("", "all"):
        return sorted(TASKS)
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) not in TASKS:
            raise ValueError(f"unknown task {part!r}: choose among {', '.join(map(str, sorted(TASKS)))} "
                             "(comma-separated, e.g. --tasks 1,4)")
        if int(part) not in out:
            out.append(int(part))
    return sorted(out)


def stub_message(task: Task) -> str:
    """What a stubbed region raises: the task, and where it is taught."""
    return f"Task {task.number}: {task.title}; see {task.where} (paper, {task.paper})"
