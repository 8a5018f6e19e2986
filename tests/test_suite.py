"""TestSuite: hidden tests collected once per grading process, nothing carried between submissions."""

from __future__ import annotations

import os
from pathlib import Path

from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

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


# Each test below changes something a reused pytest session would carry into the next run.
CARRIERS = """
import numpy as np
import pytest
from grader.testing import points, expect_scalar

np.random.seed(0)  # module level: runs once per process now, so the suite must restore the state

@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints", numbered=False)  # exists already if not cleaned up

@points(1)
def test_counters_and_random_state_are_fresh(request, submission, checkpoints):
    assert request.session.testsfailed == 0, f"testsfailed is {request.session.testsfailed}"
    first = np.random.randn()
    assert abs(first - 1.764052345967664) < 1e-12, f"the first draw after seeding was {first}"

@points(1)
def test_node_changes_are_forgotten(request, submission):
    assert not hasattr(request.node, "carried"), "an attribute set by the last run is still there"
    request.node.carried = True
    request.node.add_marker(pytest.mark.skip(reason="a marker added by the last run"))

@points(3)
def test_answer(submission):
    assert expect_scalar(submission.answer(), "answer()") == 42, "answer() is not 42"
"""


def test_each_run_starts_from_the_state_after_collection(make_course, tmp_path, sandbox_mode):
    assignment = load_assignment(make_course(CARRIERS) / "assignments" / "toy")
    settings = GradeSettings(sandbox=sandbox_mode)
    suites = SuiteCache()
    try:
        reports = [
            grade(_submission(tmp_path, f"s{i}", a), assignment, settings, suites=suites)
            for i, a in enumerate([7, 42, 42])
        ]
        assert len(suites.suites) == 1
    finally:
        suites.close()
    assert [r.status for r in reports] == ["graded"] * 3
    expected = [
        ("test_counters_and_random_state_are_fresh", "passed", 1.0),
        ("test_node_changes_are_forgotten", "passed", 1.0),
        ("test_answer", "passed", 3.0),
    ]
    assert [_summary(r) for r in reports[1:]] == [expected, expected]
    assert reports[0].score == 2


def test_sys_exit_while_loading_the_tests_is_a_grader_error(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (course / "autograde_tests" / "toy" / "conftest.py").write_text("import sys\nsys.exit(0)\n")
    assignment = load_assignment(course / "assignments" / "toy")
    suites = SuiteCache()
    try:
        report = grade(_submission(tmp_path, "a", 42), assignment, GradeSettings(sandbox=sandbox_mode), suites=suites)
    finally:
        suites.close()
    assert report.status == "grader_error" and report.score is None
    assert "could not be loaded: SystemExit" in report.message


def test_a_passing_collection_error_is_collected_again(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    flag = tmp_path / "flaky"
    flag.write_text("")
    (course / "autograde_tests" / "toy" / "test_flaky.py").write_text(
        f"import os\nif os.path.exists({str(flag)!r}):\n    raise RuntimeError('a passing failure')\n"
    )
    assignment = load_assignment(course / "assignments" / "toy")
    settings = GradeSettings(sandbox=sandbox_mode)
    suites = SuiteCache()
    try:
        first = grade(_submission(tmp_path, "a", 42), assignment, settings, suites=suites)
        flag.unlink()  # nothing in the tests folder changes
        second = grade(_submission(tmp_path, "b", 42), assignment, settings, suites=suites)
    finally:
        suites.close()
    assert first.status == "grader_error" and "a passing failure" in first.message
    assert second.status == "graded" and second.score == 6


def test_two_suites_with_files_of_the_same_name_run_their_own_tests(make_course, tmp_path, sandbox_mode):
    # Every assignment has a conftest.py, and courses reuse test file names: one process that
    # holds two suites (verify over several assignments, a pool process) must keep them apart.
    from grader.grading.suite import TestSuite

    names = {}
    for label in ("first", "second"):
        course = make_course(f'''
from grader.testing import points

@points(1)
def test_same_name(submission, credit):
    credit.give(1.0, "{label}")
''')
        target = tmp_path / label
        course.rename(target)
        names[label] = target / "autograde_tests" / "toy"
    suites = {label: TestSuite(folder) for label, folder in names.items()}
    try:
        for label, suite in suites.items():
            (item,) = suite.items
            assert f'"{label}"' in Path(str(item.module.__file__)).read_text(), label
    finally:
        for suite in suites.values():
            suite.close()
