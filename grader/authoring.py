"""Authoring: student templates made from solution notebooks, and the release bundle."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import nbformat

from grader.errors import UsageError

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_BEGIN_LINE = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
_END_LINE = re.compile(r"^\s*### END SOLUTION\s*$")


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace each BEGIN..END SOLUTION block by `raise NotImplementedError`, indented alike."""
    out: list[str] = []
    indent: str | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        begin = _BEGIN_LINE.match(line)
        if indent is None:
            if begin:
                indent = begin.group(1)
                out.append(f"{indent}raise NotImplementedError")
            elif _END_LINE.match(line):
                raise UsageError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            else:
                out.append(line)
        elif begin:
            raise UsageError(f"{where}, line {number}: {BEGIN} inside another solution block")
        elif _END_LINE.match(line):
            indent = None
    if indent is not None:
        raise UsageError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_template(solution: Any, name: str = "solution") -> Any:
    """The student notebook: answers stripped, outputs and execution counts cleared."""
    template = copy.deepcopy(solution)
    for index, cell in enumerate(template.cells):
        if cell.cell_type != "code":
            continue
        cell.source = strip_solution(cell.source, f"{name}, cell {index}")
        cell.outputs = []
        cell.execution_count = None
    return template


def template_text(solution_path: Path) -> str:
    """The template exactly as `grader release` writes it."""
    solution = nbformat.read(solution_path, as_version=4)  # type: ignore[no-untyped-call]  # untyped
    template = make_template(solution, solution_path.name)
    return str(nbformat.writes(template)) + "\n"  # type: ignore[no-untyped-call]  # untyped
