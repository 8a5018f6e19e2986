"""Batch grading: intake, skip what is current, grade in parallel, record, summarise."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.batch.executors import Job, LocalExecutor
from grader.batch.gradebook import Gradebook, assignment_fingerprint
from grader.batch.intake import Candidate, Intake
from grader.batch.paths import safe_path_component
from grader.grading.report import SubmissionReport, write_report
from grader.grading.spec import Assignment
from grader.sandbox.cgroups import sweep_stale_groups
from grader.sandbox.gpu import LeaseManager
from grader.settings import GradeSettings


@dataclass
class BatchSummary:
    """How a batch ended; printed at the end and returned to the caller."""

    total: int = 0
    up_to_date: int = 0
    graded: int = 0
    invalid: int = 0
    grader_errors: list[str] = field(default_factory=list)
    with_timeouts: int = 0
    problems: list[str] = field(default_factory=list)
    reports: list[SubmissionReport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in the inputs that are not submissions
    stale: list[str] = field(default_factory=list)  # ids whose gradebook grade is from an earlier run (issue 15)
    names: dict[str, str] = field(default_factory=dict)  # student id -> display name, where known


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def run_batch(
    assignment: Assignment,
    intake: Intake,
    out_dir: Path,
    settings: GradeSettings,
    workers: int,
    force: bool = False,
    on_report: Callable[[SubmissionReport, int, int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    leases: LeaseManager | None = None,
    executor: Any = None,
) -> BatchSummary:
    """Grade every candidate not already graded against this exact assignment."""
    summary = BatchSummary(total=len(intake.candidates), problems=list(intake.problems), ignored=list(intake.ignored))
    summary.names = {c.student_id: c.display_name for c in intake.candidates if c.display_name}
    gradebook = Gradebook.open(out_dir, assignment.name)
    sweep_stale_groups()  # what an earlier run killed with -9 left behind
    try:
        # A student this intake could not grade keeps an earlier run's row: mark it stale, never a clean grade.
        gradebook.set_attention(intake.attention)
        summary.stale = sorted({row.student_id for row in gradebook.rows()} & set(intake.attention))
        fingerprint = assignment_fingerprint(assignment)
        todo: list[Candidate] = []
        for candidate in map(_with_safe_id, intake.candidates):
            if not force and gradebook.is_current(candidate.student_id, file_sha256(candidate.path), fingerprint):
                summary.up_to_date += 1
            else:
                todo.append(candidate)
        names = {c.student_id: c.display_name for c in todo}
        if on_start is not None:
            on_start(len(todo))
        jobs = [Job(c.student_id, c.path) for c in todo]
        executor = executor or LocalExecutor(workers, leases)
        for done, (job, report_json) in enumerate(executor.run(jobs, assignment, settings), start=1):
            report = SubmissionReport.model_validate_json(report_json)
            write_report(report, out_dir / f"{safe_path_component(job.student_id)}.json")
            gradebook.record(report, names.get(job.student_id, ""), fingerprint)
            _count(summary, report)
            if on_report is not None:
                on_report(report, done, len(jobs))
    finally:
        gradebook.close()
    return summary


def _with_safe_id(candidate: Candidate) -> Candidate:
    """Intake's ids are safe already; a candidate built by hand gets the same rule (issue 11)."""
    student_id = safe_path_component(candidate.student_id)
    return candidate if student_id == candidate.student_id else replace(candidate, student_id=student_id)


def _count(summary: BatchSummary, report: SubmissionReport) -> None:
    summary.reports.append(report)
    if report.status == "graded":
        summary.graded += 1
    elif report.status == "invalid_submission":
        summary.invalid += 1
    else:
        summary.grader_errors.append(f"{report.submission.id}: {report.message[:300]}")
    if any(test.status == "timeout" for test in report.tests):
        summary.with_timeouts += 1
