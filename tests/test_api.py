"""grade(): scoring from the trusted rubric, and the line between student and grader failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

HIDDEN = """
import numpy as np
from grader.testing import points, limits, expect_array, expect_scalar

@points(4)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add(2, 3)") == 5, "add(2, 3) is wrong"

@points(6, visible=False)
def test_partial(submission, credit):
    value = expect_scalar(submission.quality(), "quality()")
    credit.give(min(value, 1.0), f"quality {value:.2f}")

@points(10)
@limits(call_timeout_s=20)
def test_probe(submission):
    total = submission.run("sum_of_squares", np.arange(4.0))
    assert expect_scalar(total, "probe") == 14.0, "probe result is wrong"
"""

PROBES = """
def sum_of_squares(module, x):
    return float(sum(module.square(v) for v in x))
"""

GOOD = "def add(a, b):\n    return a + b\n\ndef quality():\n    return 0.5\n\ndef square(v):\n    return v * v\n"


def run(course: Path, tmp_path: Path, source: str, name: str = "student.py", **settings) -> SubmissionReport:
    path = tmp_path / name
    path.write_text(source)
    return grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(**settings))


def test_scores_come_from_points_and_credit(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, GOOD, sandbox=sandbox_mode)
    assert report.status == "graded"
    assert [(t.name, t.status, t.score, t.max_score) for t in report.tests] == [
        ("test_add", "passed", 4, 4),
        ("test_partial", "failed", 3, 6),
        ("test_probe", "passed", 10, 10),
    ]
    assert report.score == 17 and report.max_score == 20
    assert report.tests[1].message == "quality 0.50"
    assert report.tests[1].visible is False
    assert report.resources.worker_starts == 1
    assert report.resources.cpu_s is not None and report.resources.peak_rss_mb


def test_missing_function_is_a_failed_test_not_a_crash(make_course, tmp_path, sandbox_mode):
    # One vocabulary (issue 13): the same sentence in check, grade, feedback and Gradescope.
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, "def quality():\n    return 1.0\n", sandbox=sandbox_mode)
    by_name = {t.name: t for t in report.tests}
    assert by_name["test_add"].status == "failed"
    assert by_name["test_add"].message == (
        "the submission does not define add: check that the cell defining it runs without an error"
    )
    assert by_name["test_partial"].status == "passed"
    assert report.score == 6


def test_student_exception_names_the_cell_line(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, GOOD.replace("return a + b", "return a / 0"), sandbox=sandbox_mode)
    assert report.tests[0].message == "ZeroDivisionError: division by zero (in cell 0, line 2, in add)"


def test_forbidden_call_is_reported_and_not_run(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, GOOD + "import torch\nlayer = torch.nn.LSTM(2, 2)\n", sandbox=sandbox_mode)
    assert report.status == "graded"
    assert report.score == 0
    assert report.resources.worker_starts == 0
    expected = (
        "every test scores 0: the notebook uses what this assignment forbids: "
        "import of torch (cell 0, line 9); use of nn.LSTM (cell 0, line 10)"
    )
    assert report.warnings == []
    assert report.message == expected
    assert {t.message for t in report.tests} == {expected}


def test_unreadable_notebook_is_invalid_submission_with_full_test_list(make_course, tmp_path):
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, "{not json", name="broken.ipynb")
    assert report.status == "invalid_submission"
    assert report.score == 0 and report.max_score == 20
    assert report.message.startswith("broken.ipynb is not a valid notebook: its JSON is broken")
    assert report.submission.sha256 is not None
    assert len(report.tests) == 3


def test_a_test_raising_on_a_returned_value_is_that_tests_error(make_course, tmp_path, sandbox_mode):
    # Issue 14: the exception came while handling the submission's value, so it is the
    # submission's failed test (zero, a neutral message), flagged for the TA; never grader_error.
    hidden = HIDDEN.replace(
        'assert expect_scalar(submission.add(2, 3), "add(2, 3)") == 5, "add(2, 3) is wrong"',
        "submission.add(2, 3).shape  # the author forgot expect_scalar",
    )
    course = make_course(hidden, PROBES)
    report = run(course, tmp_path, GOOD, sandbox=sandbox_mode)
    assert report.status == "graded"
    add = report.tests[0]
    assert (add.status, add.score) == ("error", 0.0)
    assert add.message == (
        "your add returned an int; the test could not use it (AttributeError). "
        "Check the type and shape of what it returns."
    )
    assert add.test_raised == "AttributeError: 'int' object has no attribute 'shape'"


NBGRADER_STYLE = """
import numpy as np
from grader.testing import points

@points(10)
def test_transpose(submission):
    x = np.arange(15.0).reshape(3, 5)
    assert np.allclose(submission.transpose(x), x.T)
"""


@pytest.mark.parametrize(
    "body, status, score",
    [("return x.T", "passed", 10.0), ("return x", "error", 0.0), ("return x.T + 1", "failed", 0.0)],
)
def test_an_nbgrader_style_allclose_gives_a_wrong_shape_a_failed_test(
    make_course, tmp_path, sandbox_mode, body, status, score
):
    course = make_course(NBGRADER_STYLE)
    report = run(course, tmp_path, f"def transpose(x):\n    {body}\n", sandbox=sandbox_mode)
    assert report.status == "graded", report.message
    (test,) = report.tests
    assert (test.status, test.score) == (status, score)
    if status == "error":
        assert test.message.startswith("your transpose returned an array of shape (3, 5) and dtype float64; ")
        assert "operands could not be broadcast" in test.test_raised


def test_a_test_raising_before_any_value_arrived_is_a_grader_error(make_course, tmp_path, sandbox_mode):
    hidden = HIDDEN.replace(
        'assert expect_scalar(submission.add(2, 3), "add(2, 3)") == 5, "add(2, 3) is wrong"',
        'data = {}["expected"]  # trusted setup broken before the submission is asked anything',
    )
    course = make_course(hidden, PROBES)
    report = run(course, tmp_path, GOOD, sandbox=sandbox_mode)
    assert report.status == "grader_error"
    assert report.score is None
    assert "test_toy.py::test_add: the test itself raised: KeyError" in report.message
    assert report.tests[0].message == "not graded: a problem in the grader, not in your code; your TA will rerun it"


def test_test_without_points_is_grader_error(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN + "\ndef test_unscored(submission):\n    pass\n", PROBES)
    report = run(course, tmp_path, GOOD, sandbox=sandbox_mode)
    assert report.status == "grader_error"
    assert "test_toy.py::test_unscored has no @points(n) decorator" in report.message


def test_hidden_test_syntax_error_is_grader_error(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN + "\ndef broken(:\n", PROBES)
    report = run(course, tmp_path, GOOD, sandbox=sandbox_mode)
    assert report.status == "grader_error"
    assert report.score is None
    assert "SyntaxError" in report.message or "invalid syntax" in report.message


def test_worker_that_cannot_start_is_grader_error(make_course, tmp_path, monkeypatch):
    import grader.sandbox.box

    monkeypatch.setattr(grader.sandbox.box, "WORKER_BOOT", "raise SystemExit(7)")
    course = make_course(HIDDEN, PROBES)
    report = run(course, tmp_path, GOOD, sandbox="none")
    assert report.status == "grader_error"
    assert report.score is None
    assert "the sandbox did not start" in report.message


def test_infinite_loop_at_import_fails_fast(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, PROBES, call_timeout_s=1)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().replace("[limits]", "[limits]\nload_timeout_s = 2"))
    report = run(course, tmp_path, "while True:\n    pass\n", sandbox=sandbox_mode)
    assert report.status == "graded"
    # Issue 13: the looping cell is interrupted and recorded; loading goes on without it, so the
    # tests run against what the notebook defines (here: nothing) instead of all timing out.
    assert [c.status for c in report.cells] == ["timeout"]
    assert report.cells[0].message.startswith(
        "took longer than what was left of the time limit for loading the notebook of 2 s"
    )
    assert report.resources.worker_starts == 1  # not restarted for every test
    assert {t.status for t in report.tests} == {"failed", "error"}
