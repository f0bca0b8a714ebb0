"""pmlm.check: the public checks pass on the package's functions and name the planted bugs' faults."""

import textwrap

import pytest

import pmlm.check as check
import pmlm.finetune.decoding
import pmlm.layout
import pmlm.losses
import pmlm.masking
import pmlm.relpos
from course_variants import CORRECT, PLANTED

MODULES = {1: pmlm.masking, 2: pmlm.masking, 3: pmlm.layout, 4: pmlm.attention, 5: pmlm.losses, 6: pmlm.relpos,
           7: pmlm.finetune.decoding}


def compiled(task: int, name: str, source: str):
    namespace = dict(vars(MODULES[task]))  # the module's imports and helpers, as in place of the stub
    exec(compile(textwrap.dedent(source), f"<task {task}>", "exec"), namespace)
    return namespace[name]


def run_check(task: int, fn):
    if task == 5:
        return check.losses(grouped_components=fn)
    return check.BY_TASK[task](fn)


@pytest.mark.parametrize("task", sorted(check.BY_TASK))
def test_the_package_passes(task):
    assert "checks passed" in check.BY_TASK[task]()


@pytest.mark.parametrize("task", sorted(PLANTED))
def test_a_planted_bug_is_named(task):
    what, name, source, phrase = PLANTED[task]
    with pytest.raises(check.CheckFailed, match=f"Task {task}: .*{phrase}"):
        run_check(task, compiled(task, name, source))


@pytest.mark.parametrize("task", sorted(CORRECT))
def test_a_different_correct_implementation_passes(task):
    name, source = CORRECT[task]
    assert "checks passed" in run_check(task, compiled(task, name, source))


def test_a_stub_fails_with_its_task():
    def stub(*args, **kwargs):
        raise NotImplementedError("Task 4: the attention rule")
    with pytest.raises(NotImplementedError, match="Task 4"):
        check.may_attend(stub)
