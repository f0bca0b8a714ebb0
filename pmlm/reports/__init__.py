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
``verses-long``     ``results/finetune.jsonl`` (its ``verses-long`` row)   ``benchmarks/finetune_study.py verses-long``
``ablation``        ``results/ablation-cpu.jsonl``                        ``python -m pmlm.ablation --preset cpu``
``decoding``        ``results/decoding.json``                             ``benchmarks/decoding.py``
``data-scale``      ``results/data_scale.json``                           ``benchmarks/data_scale.py``
``fault-hunt``      ``results/fault_hunt.json``                           ``benchmarks/fault_hunt.py``
``busy-machine``    ``results/busy_machine.json``                         ``benchmarks/busy_machine.py``
==================  ===================================================  ==================================

The package: :mod:`~pmlm.reports.files` (where results live; reading and appending JSON lines),
:mod:`~pmlm.reports.training` and :mod:`~pmlm.reports.studies` (the blocks), :mod:`pmlm.report_tables`
(the benchmarks' tables), :mod:`~pmlm.reports.documents` (which block goes where).

:func:`write_reports` rewrites every block; :func:`stale_reports` lists the blocks whose text no
longer matches its results file, which ``tests/test_reports.py`` requires to be none, so that prose
and results cannot drift apart.
"""

from pmlm.reports.documents import (BLOCKS, DOCUMENTS, course_tasks_block, replace_block, stale_reports,
                                    summary_lines, write_reports)
from pmlm.reports.files import CHECKPOINTS, RESULTS, ROOT, append_jsonl, read_jsonl
from pmlm.reports.studies import ablation_block, chosen_setting, finetune_block, verses_long_block
from pmlm.reports.training import demo_block, demo_fill_ins_block, recipes_block, reference_block, twin_block

__all__ = ["BLOCKS", "CHECKPOINTS", "DOCUMENTS", "RESULTS", "ROOT", "ablation_block", "append_jsonl",
           "chosen_setting", "course_tasks_block", "demo_block", "demo_fill_ins_block", "finetune_block",
           "read_jsonl", "recipes_block", "reference_block", "replace_block", "stale_reports", "summary_lines",
           "twin_block", "verses_long_block", "write_reports"]
