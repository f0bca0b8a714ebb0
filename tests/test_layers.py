"""The house keeps its floors: no module of ``pmlm`` imports one from a floor above its own, and
no two modules import each other at load time.

The floors, bottom to top (README, "Using the package"): the method's pieces; the layout and the
model; the data, the tokenizer, checkpoints, the weights' import and export and the scores of
generated text (ROUGE, BLEU, chrF); training,
fine-tuning and the pictures; and on top what puts them together for a user. ``model_files`` (the
whole-or-nothing writer of a model folder) sits beside ``model``, whose ``save_pretrained`` uses it.
A new top-level module must be given its floor here.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pmlm"
FLOORS = [
    {"masking", "attention", "relpos", "config", "losses", "kernels", "naive", "metrics", "locks", "machine",
     "allocator", "rows"},
    {"layout", "model", "layers", "kvcache", "model_files"},
    {"collator", "tokenizer", "data", "checkpoint", "unilmv2", "hf_export", "hf_remote", "pretrained", "prepare",
     "corpora", "checkpoints", "evaluate"},
    {"train", "finetune", "viz"},
    {"demo", "ablation", "figures", "reports", "report_tables", "course", "predict", "check"},
]


def floor(name: str) -> int:
    for i, names in enumerate(FLOORS):
        if name in names:
            return i
    raise AssertionError(f"pmlm.{name} has no floor: add it to FLOORS in {Path(__file__).name}")


def imports(path: Path, *, load_time_only: bool = False):
    """(line, module) of every ``pmlm.X...`` this file imports (only those at module level with
    ``load_time_only``: an import inside a function runs later and cannot close a cycle at load)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if load_time_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pmlm":
            for a in node.names:  # `from pmlm.x import y` imports the module pmlm.x.y where there is one
                sub = PACKAGE.parent.joinpath(*node.module.split("."), a.name)
                found = sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()
                yield node.lineno, f"{node.module}.{a.name}" if found else node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("pmlm."))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_no_module_imports_from_a_floor_above_its_own():
    wrong = []
    for path in SOURCES:
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, module in imports(path):
            other = module.split(".")[1]
            if other != top and floor(other) > floor(top):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {top} (floor {floor(top)}) imports "
                             f"{module} (floor {floor(other)})")
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other_at_load_time():
    graph = {module_name(p): {m for _, m in imports(p, load_time_only=True)} for p in SOURCES}
    cycles = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                     if a in graph.get(b, ()) and a != b})
    assert not cycles, cycles


@pytest.mark.parametrize("source, expected", [
    ("from pmlm.train import pretrain\n", "floor 3"),  # what the test must catch: the model reaching up
    ("import pmlm.demo\n", "floor 4"),
])
def test_a_module_that_reaches_up_is_caught(tmp_path, monkeypatch, source, expected):
    fake = tmp_path / "pmlm"
    fake.mkdir()
    (fake / "model.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    monkeypatch.setattr(__import__(__name__), "SOURCES", [fake / "model.py"])
    with pytest.raises(AssertionError, match=expected):
        test_no_module_imports_from_a_floor_above_its_own()
