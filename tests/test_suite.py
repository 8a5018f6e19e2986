"""TestSuite: hidden tests collected once per grading process, nothing carried between submissions."""

from __future__ import annotations

import os
from pathlib import Path

from grader.api import grade
from grader.settings import GradeSettings
from grader.spec import load_assignment
from grader.suite import SuiteCache

# Fixtures of every scope hold a list that each test appends the student's answer to; if any
# fixture outlived a submission, the second student's lists would also hold the first answer.
HIDDEN = """
import pytest
from grader.testing import points, expect_scalar

@pytest.fixture(scope="session")
def session_seen():
    return []

@pytest.fixture(scope="module")
def module_seen():
    return []

@points(1)
def test_record(submission, session_seen, module_seen):
    value = expect_scalar(submission.answer(), "answer()")
    session_seen.append(value)
    module_seen.append(value)

@points(2)
def test_only_this_submission(submission, session_seen, module_seen):
    value = expect_scalar(submission.answer(), "answer()")
    assert session_seen == [value], f"session fixture holds {session_seen}"
    assert module_seen == [value], f"module fixture holds {module_seen}"

@points(3)
def test_answer(submission):
    assert expect_scalar(submission.answer(), "answer()") == 42, "answer() is not 42"
"""


def _submission(tmp_path: Path, name: str, answer: int) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(f"def answer():\n    return {answer}\n")
    return path


def _summary(report) -> list[tuple[str, str, float]]:
    return [(t.name, t.status, t.score) for t in report.tests]


def test_reused_suite_carries_nothing_between_submissions(make_course, tmp_path, sandbox_mode):
    assignment = load_assignment(make_course(HIDDEN) / "assignments" / "toy")
    settings = GradeSettings(sandbox=sandbox_mode)
    answers = [42, 7, 42, 13]
    suites = SuiteCache()
    try:
        reused = [
            grade(_submission(tmp_path, f"s{i}", a), assignment, settings, suites=suites) for i, a in enumerate(answers)
        ]
        assert len(suites.suites) == 1
    finally:
        suites.close()
    fresh = [grade(_submission(tmp_path, f"s{i}", a), assignment, settings) for i, a in enumerate(answers)]
    assert [_summary(r) for r in reused] == [_summary(r) for r in fresh]
    assert [r.score for r in reused] == [6, 3, 6, 3]
    assert all(r.status == "graded" for r in reused)


def test_suite_is_collected_once_and_rebuilt_when_a_test_file_changes(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    assignment = load_assignment(course / "assignments" / "toy")
    settings = GradeSettings(sandbox=sandbox_mode)
    suites = SuiteCache()
    try:
        first = grade(_submission(tmp_path, "a", 42), assignment, settings, suites=suites)
        suite = suites.get(assignment.hidden_tests_dir)
        assert suites.get(assignment.hidden_tests_dir) is suite
        test_file = course / "autograde_tests" / "toy" / "test_toy.py"
        test_file.write_text(test_file.read_text().replace("@points(3)", "@points(5)"))
        stat = test_file.stat()  # same size: make sure the modification time moves too
        os.utime(test_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        second = grade(_submission(tmp_path, "b", 42), assignment, settings, suites=suites)
        assert suites.get(assignment.hidden_tests_dir) is not suite
    finally:
        suites.close()
    assert (first.score, first.max_score) == (6, 6)
    assert (second.score, second.max_score) == (8, 8)


def test_tests_that_cannot_be_imported_are_a_grader_error(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (course / "autograde_tests" / "toy" / "conftest.py").write_text("import no_such_module_here\n")
    assignment = load_assignment(course / "assignments" / "toy")
    settings = GradeSettings(sandbox=sandbox_mode)
    suites = SuiteCache()
    try:
        reports = [grade(_submission(tmp_path, "a", 42), assignment, settings, suites=s) for s in (suites, None)]
    finally:
        suites.close()
    for report in reports:
        assert report.status == "grader_error" and report.score is None
        assert "could not be loaded" in report.message and "no_such_module_here" in report.message
