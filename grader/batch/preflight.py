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
from grader.grading.reference_limits import ReferenceTimes, measure, summary, this_machine
from grader.grading.report import SubmissionReport, TestResult
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

RECORD_FILE = "preflight.json"
REFERENCE_REPEATS = 3  # gradings of the reference behind relative limits: the longest of each counts


class PreflightFailed(UsageError):
    """The assignment itself is broken: no student is graded until it is fixed."""


@dataclass(frozen=True)
class PreflightResult:
    """What pre-flight checked: one line for the TA."""

    line: str
    reference_times: ReferenceTimes | None = None  # measured when the spec has [limits.relative]


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


def _check_report(report: SubmissionReport, assignment: Assignment, where: str) -> None:
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


def check_solution(assignment: Assignment, settings: GradeSettings, suites: SuiteCache | None) -> PreflightResult:
    """Grade the reference: full marks, status graded, within the assignment's limits.

    With ``[limits.relative]`` it is graded REFERENCE_REPEATS times (fixed limits), and its times
    on this machine become the batch's limits.
    """
    solution = reference_solution(assignment)
    if solution is None:
        return PreflightResult("pre-flight: hidden tests compiled; no reference solution here to grade")
    if assignment.spec.gpu == "required" and settings.gpu_device is None:
        return PreflightResult("pre-flight: hidden tests compiled; the reference needs a GPU, so it was not graded")
    fixed = settings.model_copy(update={"reference_times": None})
    repeats = REFERENCE_REPEATS if assignment.spec.limits.relative is not None else 1
    where = _course_relative(solution, assignment)
    reports = []
    for _ in range(repeats):
        report = grade(solution, assignment, fixed, submission_id="reference-solution", suites=suites)
        _check_report(report, assignment, where)
        reports.append(report)
    times = measure(reports, assignment_fingerprint(assignment)) if repeats > 1 else None
    line = (
        f"pre-flight: hidden tests collected, reference solution {report.score:g} / {report.max_score:g} "
        f"in {report.resources.wall_s:.1f} s"
    )
    return PreflightResult(line + (f"; {summary(times)}" if times else ""), times)


def _previous(record: Path | None, fingerprint: str) -> dict[str, object] | None:
    """The recorded pass for this fingerprint on this machine, if there is one."""
    if record is None or not record.is_file():
        return None
    try:
        previous = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(previous, dict) or previous.get("fingerprint") != fingerprint:
        return None
    if previous.get("machine") != this_machine():
        return None
    return previous


def run_preflight(
    assignment: Assignment, settings: GradeSettings, out_dir: Path | None = None, suites: SuiteCache | None = None
) -> PreflightResult:
    """Compile, collect and grade the reference; raises PreflightFailed with one clear message.

    With ``out_dir``, a pass (and the reference times) is recorded there for the assignment's
    fingerprint and this machine, and not repeated.
    """
    fingerprint = assignment_fingerprint(assignment)
    record = out_dir / RECORD_FILE if out_dir is not None else None
    previous = _previous(record, fingerprint)
    if previous is not None:
        raw = previous.get("reference_times")
        times = ReferenceTimes.model_validate(raw) if isinstance(raw, dict) else None
        line = "pre-flight: passed before for this version of the tests and spec"
        return PreflightResult(line + (f"; {summary(times)}" if times else ""), reference_times=times)
    compile_hidden_tests(assignment)
    result = check_solution(assignment, settings, suites)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "fingerprint": fingerprint, "machine": this_machine(), "line": result.line,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "reference_times": result.reference_times.model_dump() if result.reference_times else None,
        }  # fmt: skip
        record.write_text(json.dumps(entry, indent=2) + "\n")
    return result
