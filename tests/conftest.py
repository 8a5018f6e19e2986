"""Shared fixtures: a throwaway course folder with a toy assignment, and bwrap detection."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

TOY_SPEC = """
title = "Toy"
notebook = "toy.ipynb"
preload = ["numpy"]

[limits]
call_timeout_s = {call_timeout_s}
submission_timeout_s = 60
memory_mb = {memory_mb}
processes = 16
output_bytes = 10000

[static]
forbidden_imports = ["torch"]
forbidden_calls = ["nn.LSTM"]
"""


@pytest.fixture(scope="session")
def bwrap_works() -> bool:
    from grader.doctor import probe_sandbox

    return probe_sandbox("bwrap").ok


@pytest.fixture
def sandbox_mode(bwrap_works: bool) -> str:
    """The sandbox tests are about isolation: they fail, not skip, when bwrap is missing."""
    assert bwrap_works, "bubblewrap must work on this machine (run `grader doctor`)"
    return "bwrap"


def write_notebook(path: Path, *cells: str, markdown: str = "# Toy") -> Path:
    """A v4 notebook built in memory with nbformat's helpers."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell(markdown)]
    notebook.cells += [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def make_course(tmp_path: Path) -> Callable[..., Path]:
    """Build a course with one assignment 'toy' whose hidden tests are given as source."""

    def build(hidden_tests: str, probes: str = "", call_timeout_s: float = 5, memory_mb: int = 512) -> Path:
        course = tmp_path / "course"
        (course / "assignments" / "toy" / "tests").mkdir(parents=True, exist_ok=True)
        (course / "autograde_tests" / "toy").mkdir(parents=True, exist_ok=True)
        (course / "solutions" / "toy").mkdir(parents=True, exist_ok=True)
        spec = TOY_SPEC.format(call_timeout_s=call_timeout_s, memory_mb=memory_mb)
        (course / "assignments" / "toy" / "assignment.toml").write_text(spec)
        (course / "autograde_tests" / "toy" / "test_toy.py").write_text(textwrap.dedent(hidden_tests))
        if probes:
            (course / "autograde_tests" / "toy" / "probes.py").write_text(textwrap.dedent(probes))
        (course / "solutions" / "toy" / "SECRET_SOLUTION.txt").write_text("the answer is 42\n")
        return course

    return build


@pytest.fixture
def repo_course(tmp_path: Path) -> Path:
    """A copy of the repository's course folders, so tests never write into the repository."""
    course = tmp_path / "repo-course"
    for name in ("assignments", "solutions", "autograde_tests", "samples"):
        if (REPO_ROOT / name).exists():
            shutil.copytree(REPO_ROOT / name, course / name)
    return course
