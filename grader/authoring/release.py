"""Authoring: student templates made from solution notebooks, and the release bundle."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat

from grader.errors import UsageError
from grader.grading.spec import Assignment

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


# Fields of assignment.toml that stay with the course staff: the grading seed (knowing it helps
# no honest student) and the data folder's location on the grading machine.
PRIVATE_SPEC_FIELDS = ("seed", "data_dir", "name")


def public_spec_text(assignment: Assignment) -> str:
    """assignment.toml as students get it: title, notebook, limits and rules, no private fields."""
    import tomllib

    data = tomllib.loads((assignment.assignment_dir / "assignment.toml").read_text())
    lines = []
    for key, value in data.items():
        if key in PRIVATE_SPEC_FIELDS or isinstance(value, dict):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict) and key not in PRIVATE_SPEC_FIELDS:
            lines.append(f"\n[{key}]")
            lines += [f"{inner} = {_toml_value(item)}" for inner, item in value.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):  # [limits.relative]'s entries: inline tables
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def release(assignment: Assignment, out_dir: Path) -> Path:
    """Write the student bundle: template notebook, visible tests, public assignment.toml."""
    solution = assignment.solutions_dir / assignment.spec.notebook
    if not solution.exists():
        raise UsageError(f"no solution notebook {solution}; the template is made from it")
    target = out_dir / assignment.name
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} is not empty; release into an empty folder")
    (target / "tests").mkdir(parents=True, exist_ok=True)
    (target / assignment.spec.notebook).write_text(template_text(solution))
    (target / "assignment.toml").write_text(public_spec_text(assignment))
    for test_file in sorted(assignment.visible_tests_dir.glob("*.py")):
        shutil.copy2(test_file, target / "tests" / test_file.name)
    return target
