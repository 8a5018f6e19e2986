"""The package layout (issue 12): old import paths still work, and the box sees only grader/inside."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import grader
from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

PACKAGE = Path(grader.__file__).resolve().parent


@pytest.mark.parametrize("old, new", sorted(grader.MOVED_MODULES.items()))
def test_old_module_path_is_the_new_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize(
    "old, name",
    [("grader.sandbox", "BoxSettings"), ("grader.batch", "run_batch"), ("grader.authoring", "template_text"),
     ("grader.student", "find_assignment_for"), ("grader.api", "grade"), ("grader.testing", "assert_close")],
)  # fmt: skip
def test_names_of_old_modules_that_became_packages(old: str, name: str) -> None:
    assert callable(getattr(importlib.import_module(old), name))


def test_unknown_name_of_a_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="grader.sandbox' has no attribute 'nope'"):
        importlib.import_module("grader.sandbox").nope  # noqa: B018 - the access is the test


def _grader_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grader"):
            found |= {node.module} if node.module != "grader" else {f"grader.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("grader")}
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "inside").glob("*.py")), ids=lambda p: p.name)
def test_code_inside_the_box_imports_only_the_inside_package(path: Path) -> None:
    outside = {name for name in _grader_imports(path) if not name.startswith("grader.inside")}
    assert not outside, f"{path.name} imports {outside}; only grader.inside is mounted in the sandbox"


LISTS_THE_BOX = """
from grader.testing import points

@points(1)
def test_listing(submission, credit):
    listing = submission.listing()
    assert isinstance(listing, list), "listing() returned no list"
    credit.give(1.0, repr(sorted(listing)))
"""

LISTING = """
import os

def listing():
    found = []
    for root, dirs, files in os.walk("/opt/grader"):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(root, f), "/opt/grader") for f in files]
    return found
"""


def test_the_box_sees_only_the_inside_package(make_course, tmp_path: Path, sandbox_mode: str) -> None:
    course = make_course(LISTS_THE_BOX)
    path = tmp_path / "lister.py"
    path.write_text(LISTING)
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert report.status == "graded", report.message
    listed = set(ast.literal_eval(report.tests[0].message))
    expected = {"grader/__init__.py"} | {f"grader/inside/{p.name}" for p in (PACKAGE / "inside").glob("*.py")}
    assert listed == expected
