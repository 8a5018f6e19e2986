"""Pre-flight (issue 14): a broken assignment stops the batch before the first student."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import cli
from tests.conftest import write_notebook

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"
"""


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def students(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("ada", "bob"):
        (folder / f"{name}.py").write_text("def add(a, b):\n    return a + b\n")
    return folder


def with_solution(course: Path, body: str) -> Path:
    write_notebook(course / "solutions" / "toy" / "toy.ipynb", body)
    return course


def test_a_syntax_error_in_a_hidden_test_stops_the_batch_before_any_student(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN.replace('"add") == 5,', '"add" == 5,'))  # a missing ')'
    out = tmp_path / "out"
    result = invoke("grade", "toy", str(students(tmp_path)), "--out", str(out), "--course", str(course))
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if "pre-flight" in line]
    assert line.startswith("Error: pre-flight: autograde_tests/toy/test_toy.py:6: SyntaxError: ")
    assert "no submission was graded" in result.output
    assert not [p for p in out.glob("*.json") if p.stem in ("ada", "bob")], "no report before the tests work"


def test_a_reference_solution_below_full_marks_stops_the_batch(make_course, tmp_path, sandbox_mode):
    course = with_solution(make_course(HIDDEN), "def add(a, b):\n    return a * b\n")
    out = tmp_path / "out"
    result = invoke("grade", "toy", str(students(tmp_path)), "--out", str(out), "--course", str(course))
    assert result.exit_code == 2, result.output
    assert "pre-flight: the reference solution solutions/toy/toy.ipynb scored 0 / 5: test_add failed" in result.output
    assert not [p for p in out.glob("*.json") if p.stem in ("ada", "bob")]


def test_a_passing_pre_flight_is_done_once_per_version_of_the_tests(make_course, tmp_path, sandbox_mode):
    course = with_solution(make_course(HIDDEN), "def add(a, b):\n    return a + b\n")
    out = tmp_path / "out"
    args = ("grade", "toy", str(students(tmp_path)), "--out", str(out), "--course", str(course))
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "pre-flight: hidden tests collected, reference solution 5 / 5" in first.output
    assert json.loads((out / "ada.json").read_text())["score"] == 5
    again = invoke(*args)
    assert "pre-flight: passed before for this version of the tests and spec" in again.output
    (course / "autograde_tests" / "toy" / "test_toy.py").write_text(HIDDEN + "\n# edited\n")
    edited = invoke(*args)
    assert "reference solution 5 / 5" in edited.output


def test_doctor_runs_the_pre_flight_of_every_assignment(make_course, tmp_path, sandbox_mode):
    course = with_solution(make_course(HIDDEN), "def add(a, b):\n    return a - b\n")
    result = invoke("doctor", "--course", str(course))
    assert result.exit_code == 1, result.output
    assert "FAIL course toy" in " ".join(result.output.split())
    assert "scored 0 / 5" in result.output
