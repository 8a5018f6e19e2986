"""The `grader` command: exit codes, messages, and the student's check."""

from __future__ import annotations

import json

from click.testing import CliRunner

import cli

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"
"""

VISIBLE = HIDDEN.replace("test_add", "test_add_visible")


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def test_grade_writes_reports_and_exits_zero_for_any_score(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (tmp_path / "right.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "wrong.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "garbled.ipynb").write_text("{")
    out = tmp_path / "out"
    result = invoke("grade", "toy", str(tmp_path / "right.py"), str(tmp_path / "wrong.py"),
                    str(tmp_path / "garbled.ipynb"), "--out", str(out), "--course", str(course))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "right.json").read_text())["score"] == 5
    assert json.loads((out / "wrong.json").read_text())["score"] == 0
    assert json.loads((out / "garbled.json").read_text())["status"] == "invalid_submission"
    assert "3 submissions: 3 graded now" not in result.output  # invalid is counted apart
    assert "2 graded now" in result.output and "1 invalid" in result.output
    assert (out / "export" / "gradebook.csv").exists()


def test_unknown_assignment_is_a_usage_error(tmp_path):
    (tmp_path / "assignments").mkdir()
    result = invoke("grade", "nope", str(tmp_path), "--course", str(tmp_path))
    assert result.exit_code == 2
    assert "assignment 'nope' not found" in result.output


def test_invalid_spec_exit_code_and_message(make_course, tmp_path):
    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text() + "\nbogus = 1\n")
    result = invoke("grade", "toy", str(tmp_path), "--course", str(course))
    assert result.exit_code == 2
    assert "bogus: unknown field" in result.output


def test_grader_error_exits_three(make_course, tmp_path, sandbox_mode):
    course = make_course(
        HIDDEN.replace('assert expect_scalar(submission.add(2, 3), "add") == 5,', 'assert {}["x"] == 5,')
    )
    (tmp_path / "right.py").write_text("def add(a, b):\n    return a + b\n")
    result = invoke("grade", "toy", str(tmp_path / "right.py"), "--out", str(tmp_path / "o"), "--course", str(course))
    assert result.exit_code == 3
    assert "grader error" in result.output


def test_duplicate_ids_exit_one_after_grading_the_rest(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "a" / "other.py").write_text("def add(a, b):\n    return a + b\n")
    result = invoke("grade", "toy", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o"),
                    "--course", str(course))  # fmt: skip
    assert result.exit_code == 1
    assert "student id 'same' appears 2 times" in result.output
    assert (tmp_path / "o" / "other.json").exists()


def test_check_runs_visible_tests_with_friendly_output(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (course / "assignments" / "toy" / "tests" / "test_visible.py").write_text(VISIBLE)
    notebook = course / "assignments" / "toy" / "toy.py"
    notebook.write_text("def add(a, b):\n    return a + b\n")
    result = invoke("check", str(notebook))
    assert result.exit_code == 0, result.output
    assert "passed  test_add_visible" in result.output
    text = " ".join(result.output.split())
    assert "They are not your grade: the hidden tests decide it." in text  # issue 13: never mistaken for one
    assert "All practice checks pass. The hidden tests decide the grade." in text


SHOUTS = """
import numpy as np
from grader.testing import points, assert_close

@points(1)
def test_shout(submission):
    submission.shout(3)

@points(1)
def test_double(submission):
    assert_close(submission.double(np.array([100.0])), np.array([200.0]), "double(x)")
"""


SHOUTER = (
    'def shout(x):\n    raise ValueError(f"bad {x}\\x1b]0;owned\\x07\\x1b[6n")\n\ndef double(x):\n    return x * 3\n'
)


def test_check_shows_the_students_own_errors_with_no_raw_escape_sequences(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (course / "assignments" / "toy" / "tests" / "test_visible.py").write_text(SHOUTS)
    notebook = course / "assignments" / "toy" / "toy.py"
    notebook.write_text(SHOUTER)
    result = CliRunner().invoke(cli.main, ["check", str(notebook)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output, "an escape sequence reached the student's terminal raw"
    # visible tests: the inputs are the student's own, so the exception's text and absolute errors are shown
    assert "ValueError: bad 3\\x1b]0;owned\\x07\\x1b[6n (in cell 0, line 2, in shout)" in result.output
    assert "double(x): 1 of 1 entries are wrong (largest absolute error 100;" in result.output


MISSING_AND_LONG = """
from grader.testing import points

@points(1)
def test_a_function_the_notebook_lacks(submission):
    submission.relu_forward(1)

@points(1)
def test_with_a_long_name_that_would_not_fit_in_eighty_columns_of_a_terminal(submission):
    assert submission.add(1, 1) == 3, "add(1, 1) is wrong: " + "this message goes on for a while " * 6 + "THE END"
"""


def test_the_same_fault_reads_the_same_in_check_and_in_grade(make_course, tmp_path, sandbox_mode):
    """Issue 13: a missing function is one status and one sentence, wherever the student reads it."""
    course = make_course(MISSING_AND_LONG)
    (course / "assignments" / "toy" / "tests" / "test_visible.py").write_text(MISSING_AND_LONG)
    notebook = course / "assignments" / "toy" / "toy.py"
    notebook.write_text("def add(a, b):\n    return a + b\n")
    missing = "the submission does not define relu_forward: check that the cell defining it runs without an error"
    result = CliRunner().invoke(cli.main, ["check", str(notebook)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"FAILED test_a_function_the_notebook_lacks {missing} (no cell of the notebook defines relu_forward)" in text
    # at 80 columns nothing is cut: the long name and the whole first line of the message wrap
    assert "test_with_a_long_name_that_would_not_fit_in_eighty_columns_of_a_terminal" in text
    assert "this message goes on for a while THE END" in text
    out = tmp_path / "out"
    assert invoke("grade", "toy", str(notebook), "--out", str(out), "--course", str(course)).exit_code == 0
    graded = json.loads((out / "toy.json").read_text())["tests"][0]
    assert (graded["status"], graded["message"]) == ("failed", missing)
    feedback = " ".join((out / "export" / "feedback" / "toy.html").read_text().split())
    assert f"{missing} (no cell of the notebook defines relu_forward)" in feedback


def test_check_says_when_the_notebook_uses_what_is_forbidden(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (course / "assignments" / "toy" / "tests" / "test_visible.py").write_text(VISIBLE)
    notebook = course / "assignments" / "toy" / "toy.py"
    notebook.write_text("import torch\n\ndef add(a, b):\n    return a + b\n")
    result = CliRunner().invoke(cli.main, ["check", str(notebook), "-v"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    reason = "every test scores 0: the notebook uses what this assignment forbids: import of torch (cell 0, line 1)"
    assert result.output.count(reason) == 2  # the report's one reason, and the test's
    assert "FAILED  test_add_visible" in result.output and "not graded" not in result.output


def test_doctor_reports_the_sandbox(sandbox_mode):
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "sandbox        bwrap box started and answered" in result.output
    assert "syscall filter seccomp installed: 48 calls denied" in result.output
    assert "uid mapping    box uid 65534 -> host uid" in result.output
