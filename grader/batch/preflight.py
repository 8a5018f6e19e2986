"""Pre-flight: check the assignment before the first student is graded (issue 14).

A broken hidden test used to cost a whole class one grader_error after another, each student's
feedback showing a pytest traceback. Before a batch, the hidden tests are compiled and
collected and the reference solution (where the course has it) is graded once: a test that does
not collect, a solution below full marks or over its limits stops the batch with one message
naming the file, the line and the error, before any report is written. A pass is remembered in
the output folder for the assignment's fingerprint, so resuming a batch does not pay it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from grader.batch.gradebook import assignment_fingerprint
from grader.errors import UsageError
from grader.grading.pipeline import grade
from grader.grading.report import TestResult
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

RECORD_FILE = "preflight.json"


class PreflightFailed(UsageError):
    """The assignment itself is broken: no student is graded until it is fixed."""


@dataclass(frozen=True)
class PreflightResult:
    """What pre-flight checked: one line for the TA."""

    line: str
    solution_score: float | None = None
    solution_wall_s: float | None = None


def _course_relative(path: Path, assignment: Assignment) -> str:
    root = assignment.assignment_dir.parent.parent
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def compile_hidden_tests(assignment: Assignment) -> None:
    """A syntax error in any hidden-test file, named by file and line."""
    for path in sorted(assignment.hidden_tests_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            where = f"{_course_relative(path, assignment)}:{exc.lineno or '?'}"
            raise PreflightFailed(
                f"pre-flight: {where}: SyntaxError: {exc.msg}. The hidden tests cannot be collected, "
                "so no submission was graded; fix the file and rerun."
            ) from None


def reference_solution(assignment: Assignment) -> Path | None:
    path = assignment.solutions_dir / assignment.spec.notebook
    return path if path.is_file() else None


def _failures(tests: list[TestResult]) -> str:
    wrong = [f"{t.name} {t.status} ({t.score:g}/{t.max_score:g}): {t.message}" for t in tests if t.score < t.max_score]
    return "; ".join(wrong[:5])


def check_solution(assignment: Assignment, settings: GradeSettings, suites: SuiteCache | None) -> PreflightResult:
    """Grade the reference once: full marks, status graded, within the assignment's limits."""
    solution = reference_solution(assignment)
    if solution is None:
        return PreflightResult("pre-flight: hidden tests compiled; no reference solution here to grade")
    if assignment.spec.gpu == "required" and settings.gpu_device is None:
        return PreflightResult("pre-flight: hidden tests compiled; the reference needs a GPU, so it was not graded")
    report = grade(solution, assignment, settings, submission_id="reference-solution", suites=suites)
    where = _course_relative(solution, assignment)
    if report.status != "graded":
        raise PreflightFailed(
            f"pre-flight: grading the reference solution {where} ended as {report.status}: {report.message}. "
            "No submission was graded; fix the hidden tests (or the environment) and rerun."
        )
    if report.score is None or report.score < report.max_score:
        raise PreflightFailed(
            f"pre-flight: the reference solution {where} scored {report.score:g} / {report.max_score:g}: "
            f"{_failures(report.tests)}. No submission was graded; fix the tests or the solution and rerun."
        )
    limit = assignment.spec.limits.submission_timeout_s
    if report.resources.wall_s > limit:
        raise PreflightFailed(
            f"pre-flight: the reference solution {where} took {report.resources.wall_s:.1f} s, over the "
            f"submission limit of {limit:g} s; raise the limit in assignment.toml or speed up the tests."
        )
    return PreflightResult(
        f"pre-flight: hidden tests collected, reference solution {report.score:g} / {report.max_score:g} "
        f"in {report.resources.wall_s:.1f} s",
        report.score,
        report.resources.wall_s,
    )


def run_preflight(
    assignment: Assignment, settings: GradeSettings, out_dir: Path | None = None, suites: SuiteCache | None = None
) -> PreflightResult:
    """Compile, collect and grade the reference; raises PreflightFailed with one clear message.

    With ``out_dir``, a pass is recorded there for the assignment's fingerprint and not repeated.
    """
    fingerprint = assignment_fingerprint(assignment)
    record = out_dir / RECORD_FILE if out_dir is not None else None
    if record is not None and record.is_file():
        try:
            previous = json.loads(record.read_text())
        except (OSError, ValueError):
            previous = {}
        if isinstance(previous, dict) and previous.get("fingerprint") == fingerprint:
            return PreflightResult("pre-flight: passed before for this version of the tests and spec")
    compile_hidden_tests(assignment)
    result = check_solution(assignment, settings, suites)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        entry = {"fingerprint": fingerprint, "line": result.line, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        record.write_text(json.dumps(entry, indent=2) + "\n")
    return result
