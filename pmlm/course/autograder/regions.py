"""Solution regions in source files: find them, stub them, splice functions (standard library only).

A region is the lines between a ``### BEGIN SOLUTION`` and an ``### END SOLUTION`` line (nbgrader's
markers) inside one function. :func:`stub_function` replaces every region of a function, markers
included, by ``raise NotImplementedError(message)`` at the region's indentation, so the module still
imports. :func:`splice_function` puts another version of a whole function (decorators included)
in place of a file's own: the grader uses it to give every task but the graded one the reference
implementation, so that each task is graded on its own.
"""

from __future__ import annotations

import ast

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def function_span(source: str, name: str, path: str = "<source>") -> tuple[int, int]:
    """0-based [start, end) line range of the one function or method called ``name``, decorators included."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{path} does not parse (line {err.lineno}: {err.msg}); fix the syntax first") from None
    found = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and node.name == name]
    if len(found) != 1:
        raise ValueError(f"{path}: expected one function {name!r}, found {len(found)}; keep its name and signature")
    node = found[0]
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    end = node.end_lineno
    lines = source.splitlines()
    while end < len(lines) and lines[end].strip() == END:  # a closing marker after the last statement
        end += 1
    return start, end


def regions(lines: list[str], start: int = 0, end: int | None = None, path: str = "<source>") -> list[tuple[int, int]]:
    """[(begin_line, end_line)] of the marker pairs within lines[start:end] (0-based, inclusive)."""
    end = len(lines) if end is None else end
    out, begin = [], None
    for i in range(start, end):
        text = lines[i].strip()
        if text == BEGIN:
            if begin is not None:
                raise ValueError(f"{path}:{i + 1}: a second {BEGIN} before {END}")
            begin = i
        elif text == END:
            if begin is None:
                raise ValueError(f"{path}:{i + 1}: {END} without {BEGIN}")
            out.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"{path}:{begin + 1}: {BEGIN} without {END}")
    return out


def stub_function(source: str, name: str, message: str, path: str = "<source>") -> str:
    """``source`` with the solution regions of function ``name`` replaced by a NotImplementedError."""
    lines = source.splitlines(keepends=True)
    start, end = function_span(source, name, path)
    found = regions(lines, start, end, path)
    if not found:
        raise ValueError(f"{path}: function {name!r} holds no solution region ({BEGIN} ... {END})")
    for begin, stop in reversed(found):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        lines[begin:stop + 1] = [f"{indent}raise NotImplementedError({message!r})\n"]
    return "".join(lines)


def strip_markers(source: str) -> str:
    """``source`` without the marker lines (the solution kept)."""
    return "".join(line for line in source.splitlines(keepends=True) if line.strip() not in (BEGIN, END))


def function_source(source: str, name: str, path: str = "<source>") -> str:
    """The text of function ``name``, decorators included."""
    lines = source.splitlines(keepends=True)
    start, end = function_span(source, name, path)
    return "".join(lines[start:end])


def splice_function(source: str, name: str, replacement: str, path: str = "<source>") -> str:
    """``source`` with function ``name`` replaced by ``replacement`` (re-indented to the original's level)."""
    lines = source.splitlines(keepends=True)
    start, end = function_span(source, name, path)
    own = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    new = replacement.splitlines(keepends=True)
    theirs = new[0][: len(new[0]) - len(new[0].lstrip())]
    new = [own + line[len(theirs):] if line.startswith(theirs) else line for line in new]
    if new and not new[-1].endswith("\n"):
        new[-1] += "\n"
    lines[start:end] = new
    return "".join(lines)
