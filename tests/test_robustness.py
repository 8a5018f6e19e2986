"""`grader verify`'s robustness check: wrong answers of each solution function must end in zeros,
never in `grader_error` or points (issue 14). Toy courses in tmp_path, graded in the real sandbox."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from grader.authoring.release import template_text
from grader.authoring.robustness import (
    NOTHING_TO_SPOIL,
    WRONG_ANSWERS,
    Case,
    RobustnessCheck,
    check_robustness,
    find_targets,
    judge,
    wrong_sources,
)
from grader.grading.pipeline import grade
from grader.grading.spec import Assignment, load_assignment
from grader.grading.submission import Cell
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings
from tests.conftest import write_notebook

SPEC = """
title = "Toy"
notebook = "toy.ipynb"
preload = ["numpy"]

[limits]
call_timeout_s = {call_timeout_s}
submission_timeout_s = 120
memory_mb = 512
"""

DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"


def build_course(root: Path, hidden: str, *cells: str, call_timeout_s: float = 5) -> Assignment:
    """A course with one assignment 'toy': its spec, hidden tests, solution and generated template."""
    (root / "assignments" / "toy" / "tests").mkdir(parents=True)
    (root / "autograde_tests" / "toy").mkdir(parents=True)
    (root / "solutions" / "toy").mkdir(parents=True)
    (root / "assignments" / "toy" / "assignment.toml").write_text(SPEC.format(call_timeout_s=call_timeout_s))
    (root / "autograde_tests" / "toy" / "test_toy.py").write_text(textwrap.dedent(hidden))
    solution = write_notebook(root / "solutions" / "toy" / "toy.ipynb", "import numpy as np", *cells)
    (root / "assignments" / "toy" / "toy.ipynb").write_text(template_text(solution))
    return load_assignment(root / "assignments" / "toy")


def run_check(assignment: Assignment, sandbox: str) -> RobustnessCheck:
    settings = GradeSettings(sandbox=sandbox)
    suites = SuiteCache()
    try:
        baseline = grade(assignment.solutions_dir / "toy.ipynb", assignment, settings, suites=suites)
        assert baseline.status == "graded" and baseline.score == baseline.max_score, baseline
        return check_robustness(assignment, settings, baseline, suites)
    finally:
        suites.close()


# ---------------------------------------------------------------- the wrong answers, in this process

CELLS = (
    Cell(0, "import numpy as np"),
    Cell(1, "def pair(x):\n    ### BEGIN SOLUTION\n    return x * 2, {'a': x}\n    ### END SOLUTION\n"),
    Cell(2, "def helper(x):\n    return x\n"),
    Cell(
        3,
        "class Model:\n    def __init__(self):\n        ### BEGIN SOLUTION\n        self.k = 3\n"
        "        ### END SOLUTION\n\n    def apply(self, x):\n        ### BEGIN SOLUTION\n        return x + self.k\n"
        "        ### END SOLUTION\n\n    @staticmethod\n    def fixed():\n        ### BEGIN SOLUTION\n"
        "        return 1\n        ### END SOLUTION\n",
    ),
    Cell(4, "def uses_pair(x):\n    return pair(x)[0] + 1\n"),
)


def namespace(target_name: str, key: str) -> dict[str, Any]:
    targets = {target.name: target for target in find_targets(CELLS)[0]}
    answer = next(answer for answer in WRONG_ANSWERS if answer.key == key)
    scope: dict[str, Any] = {}
    for source in wrong_sources(CELLS, targets[target_name], answer):
        exec(compile(source, "<cell>", "exec"), scope)  # our own generated code, nothing of a student's
    return scope


def test_functions_and_methods_with_a_solution_block_are_found() -> None:
    targets, notes = find_targets(CELLS)
    assert [(t.name, t.cell, t.indent) for t in targets] == [
        ("pair", 1, ""),
        ("Model.__init__", 3, "    "),
        ("Model.apply", 3, "    "),
    ]
    assert notes == ["Model.fixed is not checked (async, or a static/class method or property)"]
    assert [a.key for a in targets[1].answers()] == ["none", "raises", "never_returns"]


def test_each_wrong_answer_replaces_the_function_for_the_notebook_too() -> None:
    x = np.arange(3.0)
    assert namespace("pair", "none")["pair"](x) is None
    assert namespace("pair", "wrong_shape")["pair"](x).shape == (7, 3)
    with pytest.raises(ValueError, match="grader verify: a function that raises"):
        namespace("pair", "raises")["uses_pair"](x)  # the notebook's own callers get the wrong one
    doubled, mapping = namespace("pair", "nan")["pair"](x)
    assert doubled.shape == (3,) and np.isnan(doubled).all() and np.isnan(mapping["a"]).all()
    doubled, mapping = namespace("pair", "str")["pair"](x)
    assert doubled.shape == (3,) and doubled.dtype.kind == "U" and (mapping["a"] == "wrong answer").all()
    assert namespace("pair", "nan")["pair"].__name__ == "pair"
    model = namespace("Model.apply", "nan")["Model"]()
    assert np.isnan(model.apply(1.0)) and model.k == 3
    assert not hasattr(namespace("Model.__init__", "none")["Model"](), "k")


def test_a_function_that_returns_none_has_nothing_to_spoil(capsys: pytest.CaptureFixture[str]) -> None:
    cells = (Cell(0, "def log(x):\n    ### BEGIN SOLUTION\n    print('seen', x)\n    ### END SOLUTION\n"),)
    target = find_targets(cells)[0][0]
    scope: dict[str, Any] = {}
    exec(compile(wrong_sources(cells, target, WRONG_ANSWERS[2])[0], "<cell>", "exec"), scope)
    assert scope["log"](1) is None
    assert capsys.readouterr().out == f"seen 1\n{NOTHING_TO_SPOIL}\n"


# ---------------------------------------------------------------- (d) nbgrader-style tests and expect_array

NBGRADER_STYLE = """
import numpy as np
from grader.testing import points


@points(5)
def test_double_shape(submission):
    x = np.arange(6.0).reshape(2, 3)
    assert submission.double(x).shape == (2, 3), "double(x) has the wrong shape"


@points(5)
def test_double_values(submission):
    x = np.arange(6.0).reshape(2, 3)
    assert np.allclose(submission.double(x), 2 * x), "double(x) is wrong"
"""


def test_nbgrader_style_tests_that_raise_on_a_wrong_answer(tmp_path: Path, sandbox_mode: str) -> None:
    """`.shape` of a returned None raises in the test's own code. Before the engine's attribution change
    (issue 14) the run was grader_error and the check named it; now it is the test's error, zero,
    and the check passes, with a note naming the tests that raise."""
    check = run_check(build_course(tmp_path / "course", NBGRADER_STYLE, DOUBLE), sandbox_mode)
    cases = {case.answer.key: case for case in check.cases}
    none = cases["none"]
    if none.report.status == "grader_error":  # an engine without the attribution change
        assert none.violations == [
            "robustness: double returns None: the run ended grader_error, not graded (broken in test_double_shape, "
            f"test_double_values): {none.report.message}"
        ]
        assert "test_toy.py::test_double_shape: the test itself raised: AttributeError" in none.report.message
        assert cases["wrong_shape"].violations and "broken in test_double_values" in cases["wrong_shape"].violations[0]
        assert check.rows() == [["double", "grader_error!", "grader_error!", "5", "grader_error!", "0", "0"]]
    else:
        assert {t.name: (t.status, t.score) for t in none.report.tests} == {
            "test_double_shape": ("error", 0.0),
            "test_double_values": ("error", 0.0),
        }
        assert check.failures == []
        assert check.rows() == [["double", "0", "0", "5", "5", "0", "0"]]
        assert check.notes == [
            "test_double_shape raised in its own code on 1 wrong answer, scored as its error: double returns None "
            "(AttributeError); check the value with expect_* first for a clearer message",
            "test_double_values raised in its own code on 3 wrong answers, scored as its error: double returns None "
            "(TypeError); double returns np.zeros((7, 3)) (ValueError); double returns strings of the solution's "
            "shape (UFuncTypeError); check the value with expect_* first for a clearer message",
        ]
    assert check.failures == [v for case in check.cases for v in case.violations]


def test_a_run_that_ends_grader_error_is_a_violation_naming_the_broken_tests(tmp_path: Path, sandbox_mode: str) -> None:
    """What an engine without attribution made of NBGRADER_STYLE: judged from the report alone."""
    check = run_check(build_course(tmp_path / "course", NBGRADER_STYLE, DOUBLE), sandbox_mode)
    case = next(case for case in check.cases if case.answer.key == "none")
    message = "test_toy.py::test_double_shape: the test itself raised: AttributeError: 'NoneType' object has no ..."
    broken_tests = [
        t.model_copy(update={"status": "failed", "score": 0.0, "message": "not graded: a problem in the grader, "
                             "not in your code; your TA will rerun it"})
        if t.name == "test_double_shape" else t
        for t in case.report.tests
    ]  # fmt: skip
    broken = case.report.model_copy(
        update={"status": "grader_error", "score": None, "message": message, "tests": broken_tests}
    )
    solution = broken.model_copy(
        update={"status": "graded", "score": 10.0, "message": "",
                "tests": [t.model_copy(update={"status": "passed", "score": 5.0}) for t in broken.tests]}
    )  # fmt: skip
    judged = Case(case.target, case.answer, broken)
    judge(judged, solution)
    assert judged.violations == [
        f"robustness: double returns None: the run ended grader_error, not graded (broken in test_double_shape): "
        f"{message}"
    ]
    assert judged.cell() == "grader_error!"


EXPECT_ARRAY_STYLE = """
import numpy as np
from grader.testing import assert_close, expect_array, expect_scalar, limits, points


@points(5)
def test_double(submission):
    x = np.arange(6.0).reshape(2, 3)
    assert_close(expect_array(submission.double(x), "double(x)", shape=(2, 3)), 2 * x, "double(x)")


@points(5)
@limits(call_timeout_s=60)
def test_double_twice_with_a_long_limit(submission):
    assert_close(submission.double(np.ones(4)) * 2, np.full(4, 4.0), "double(x) * 2")


@points(5)
def test_counted(submission):
    assert expect_scalar(submission.counted("a"), "counted('a')") == 2, "count() is not counting"
"""

COUNT = (
    "COUNTS = {}\n\ndef count(key):\n    ### BEGIN SOLUTION\n    COUNTS[key] = COUNTS.get(key, 0) + 1\n"
    "    ### END SOLUTION\n\ndef counted(key):\n    COUNTS.clear()\n    count(key)\n    count(key)\n"
    "    return COUNTS[key]\n"
)


def test_tests_written_with_expect_array_pass_and_never_returns_is_quick(tmp_path: Path, sandbox_mode: str) -> None:
    """(d) expect_* first: every wrong answer ends failed/error/timeout with zero. (e) never returns:
    capped at 1 s per call although the spec allows 30 s and one test's @limits 60 s."""
    course = build_course(tmp_path / "course", EXPECT_ARRAY_STYLE, DOUBLE, COUNT, call_timeout_s=30)
    check = run_check(course, sandbox_mode)
    assert check.failures == []
    assert check.rows() == [
        ["double", "5", "5", "5", "5", "5", "5"],
        ["count", "10", "10", "n/a", "n/a", "10", "10"],  # count returns None: nothing to make NaN or str
    ]
    looping = next(c for c in check.cases if c.target.name == "double" and c.answer.key == "never_returns")
    statuses = {t.name: t.status for t in looping.report.tests}
    assert statuses == {"test_double": "timeout", "test_double_twice_with_a_long_limit": "timeout",
                        "test_counted": "passed"}  # fmt: skip
    assert looping.report.resources.wall_s < 20, looping.report.resources
    assert all("1 s" in t.message for t in looping.report.tests if t.status == "timeout"), looping.report.tests
    assert (course.hidden_tests_dir / "conftest.py").exists() is False, "the real course is never written to"


def test_wrong_answers_that_get_points_or_go_unnoticed_are_violations(tmp_path: Path, sandbox_mode: str) -> None:
    hidden = """
    import numpy as np
    from grader.testing import expect_array, points


    @points(4)
    def test_double_with_partial_credit(submission, credit):
        value = submission.double(np.arange(3.0))
        credit.give(0.5, "double(x) returned")
        value = expect_array(value, "double(x)", shape=(3,))
        assert np.allclose(value, [0.0, 2.0, 4.0]), "double(x) is wrong"
        credit.give(1.0)


    @points(1)
    def test_nothing(submission):
        assert submission.has("unused"), "unused() is missing"
    """
    unused = "def unused():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    started = time.monotonic()
    check = run_check(build_course(tmp_path / "course", hidden, DOUBLE, unused), sandbox_mode)
    partial = "ended failed with 2 of 4 points (the solution: 4); a wrong answer must get 0: double(x) "
    assert check.failures == [
        f"robustness: double returns None: test_double_with_partial_credit {partial}should be a numpy array, "
        "but it is a NoneType",
        f"robustness: double returns np.zeros((7, 3)): test_double_with_partial_credit {partial}has shape (7, 3), "
        "expected shape (3,)",
        f"robustness: double returns NaN of the solution's shape: test_double_with_partial_credit {partial}is wrong",
        f"robustness: double returns strings of the solution's shape: test_double_with_partial_credit {partial}"
        "should hold real numbers, but its dtype is <U12",
        *(
            f"robustness: unused {answer.label}: no hidden test noticed: every test kept the solution's score"
            for answer in WRONG_ANSWERS
        ),
    ]
    assert check.rows() == [["double", "3!", "3!", "3!", "3!", "1", "1"], ["unused", *["5!"] * 6]]
    assert time.monotonic() - started < 120


def test_verify_prints_the_table_and_fails_on_a_violation(tmp_path: Path, sandbox_mode: str) -> None:
    hidden = """
    from grader.testing import expect_scalar, points


    @points(2)
    def test_answer(submission):
        assert expect_scalar(submission.answer(), "answer()") == 42, "answer() is wrong"
    """
    answer = "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\n"
    unused = "def unused():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    course = tmp_path / "course"
    build_course(course, hidden, answer, unused)
    result = CliRunner().invoke(cli.main, ["verify", "--course", str(course), "--no-variants"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("robustness: 2 solution functions"))
    assert [line.strip() for line in lines[start + 1 : start + 4]] == [
        "function  None  zeros(7,3)  NaN  str  raises  no return",
        "answer    0     0           0    0    0       0",
        "unused    2!    2!          2!   2!   2!      2!",
    ]
    violation = "- robustness: unused returns None: no hidden test noticed: every test kept the solution's score"
    assert violation in [line.strip() for line in lines]
    assert "failing: toy" in result.output
    result = CliRunner().invoke(cli.main, ["verify", "--course", str(course), "--no-variants", "--no-robustness"])
    assert result.exit_code == 0, result.output
    assert "robustness" not in result.output
