"""The course kit: graded assignments made from the package itself (the way minitorch does it).

* :mod:`pmlm.course.tasks`: the seven tasks (Algorithm 1, 80/10/10, the layout, the attention
  rule, the losses, the relative position buckets, a cached decoding step), the functions whose
  solution regions (nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines) a student fills in,
  where each is taught, its paper section, expected time and points;
* :mod:`pmlm.course.build`: ``python -m pmlm.course build OUT [--tasks 1,4]`` writes the student copy
  and the standalone autograder;
* ``pmlm/course/autograder/``: the grading tests (markers ``task1`` .. ``task7`` with points), their
  independent references (``oracles.py``) and ``grade.py``; ``python -m pmlm.course grade DIR`` runs
  them on the copy in DIR, each task with the reference version of the others, in a process group
  of its own under a time limit, its results read from a pipe the grader holds (``grade.py`` says
  what that guards against, and what not);
* :mod:`pmlm.check`: the public part of the same checks, callable from a notebook.

``docs/teaching.md`` is the teacher's guide.
"""

from pmlm.course.tasks import TASKS, Task, parse_tasks

__all__ = ["TASKS", "Task", "parse_tasks"]
