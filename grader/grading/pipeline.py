"""The core: grade(submission, assignment, settings) -> SubmissionReport. No folders, no DB."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from grader import __version__
from grader.gpu import cpu_fallback_limits, gpu_plan
from grader.report import Resources, SubmissionInfo, SubmissionReport, TestResult, truncate
from grader.sandbox import BoxSettings
from grader.session import WorkerSession
from grader.settings import GradeSettings
from grader.spec import Assignment, AssignmentSpec, Limits
from grader.static_checks import check_cells
from grader.submission import Cell, InvalidSubmission, Submission, load_submission
from grader.suite import SuiteCache, TestSuite
from grader.testing import GradingRun
from grader.zygote import shared_provider


def _gpu_cap(spec_cap: int | None, lease_cap: int | None) -> int | None:
    caps = [cap for cap in (spec_cap, lease_cap) if cap is not None]
    return min(caps) if caps else None


def _gpu_limits(spec: AssignmentSpec, settings: GradeSettings) -> tuple[Limits, str, str]:
    """Limits for this run, a note for the report, and why grading must be skipped (if it must)."""
    plan = gpu_plan(spec.gpu, [settings.gpu_device] if settings.gpu_device else [])
    limits = spec.limits
    if plan == "cpu-fallback":
        factor = limits.cpu_fallback_factor
        limits = limits.model_copy(update={
            "cpu_s": cpu_fallback_limits(limits.cpu_s, factor),
            "call_timeout_s": limits.call_timeout_s * factor,
            "load_timeout_s": limits.load_timeout_s * factor,
            "submission_timeout_s": limits.submission_timeout_s * factor,
        })  # fmt: skip
        return limits, f"no GPU was available: ran on the CPU with time limits scaled by {factor:g}", ""
    if plan == "skip":
        return limits, "", "not graded: this assignment requires a GPU and none was available; rerun on a GPU machine"
    return limits, "", ""


def _suite(tests_dir: Path, suites: SuiteCache | None) -> tuple[TestSuite | None, list[str]]:
    """The collected tests, or None and why they could not be loaded (a grader problem)."""
    try:
        return (suites.get(tests_dir) if suites is not None else TestSuite(tests_dir)), []
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken conftest, or one calling sys.exit
        return None, [f"the tests in {tests_dir} could not be loaded: {type(exc).__name__}: {exc}"]


def _blocked_submission(path: Path, submission_id: str) -> Submission:
    """Stands in for a submission that could not be loaded; its hash if the bytes were readable."""
    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        sha256 = ""
    return Submission(id=submission_id, path=path, sha256=sha256, cells=(Cell(0, ""),))


def grade(
    submission_path: Path,
    assignment: Assignment,
    settings: GradeSettings | None = None,
    submission_id: str | None = None,
    suites: SuiteCache | None = None,
) -> SubmissionReport:
    """Grade one submission file against one assignment; never raises for bad student input.

    ``suites`` keeps the collected tests between calls (grading processes pass theirs); without
    it the tests are collected for this call alone.
    """
    settings = settings or GradeSettings()
    started = time.monotonic()
    spec = assignment.spec
    submission_id = submission_id or submission_path.stem
    status, message, blocked = "graded", "", None
    warnings: list[str] = []
    try:
        submission = load_submission(submission_path, submission_id)
        warnings += submission.warnings
        violations = check_cells(submission.cells, spec.static)
        if violations:
            listed = "; ".join(v.describe() for v in violations[:5])
            blocked = f"not graded: the submission uses what this assignment forbids: {listed}"
            warnings.append(blocked)
    except InvalidSubmission as exc:
        submission = _blocked_submission(submission_path, submission_id)
        status, message, blocked = "invalid_submission", str(exc), f"not graded: {exc}"
    limits, gpu_note, skip_reason = _gpu_limits(spec, settings)
    if gpu_note:
        warnings.append(gpu_note)
    if skip_reason and blocked is None:
        blocked = skip_reason
    tests_dir = assignment.hidden_tests_dir if settings.tests == "hidden" else assignment.visible_tests_dir
    probes = assignment.probes_path.read_text() if assignment.probes_path.exists() else None
    box_settings = BoxSettings(
        mode=settings.sandbox,
        limits=limits,
        threads=settings.threads or limits.threads,
        secret_dirs=(assignment.hidden_tests_dir, assignment.solutions_dir),
        data_dir=assignment.data_dir,
        gpu_device=settings.gpu_device if spec.gpu != "none" else None,
        gpu_memory_cap_mb=_gpu_cap(spec.limits.gpu_memory_mb, settings.gpu_memory_cap_mb),
    )
    seed = spec.seed if settings.seed is None else settings.seed
    suite, problems = _suite(tests_dir, suites)  # before the session: collecting is not the student's time
    provider = shared_provider() if settings.warm_workers and settings.sandbox == "bwrap" else None
    session = WorkerSession(
        submission, box_settings, spec.preload, seed, probes, blocked, provider,
        blocked_status="skipped" if blocked == skip_reason and skip_reason else "failed",
    )  # fmt: skip
    run = GradingRun(session)
    collected = 0
    try:
        if suite is not None:
            try:
                suite.run(run)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - pytest.exit in a hidden test: a grader problem
                problems.append(f"the tests in {tests_dir} stopped the run: {type(exc).__name__}: {exc}")
            collected = len(suite.items)
            problems += suite.collection_problems
    finally:
        totals = session.close()
        if suite is not None and suites is None:
            suite.close()
    tests = [
        TestResult(
            id=o.nodeid, name=o.name, status=o.status, score=o.score if status == "graded" else 0.0,
            max_score=o.max_score, message=truncate(o.message), duration_s=round(o.duration_s, 4),
            visible=o.visible,
            metrics=o.metrics,
        )
        for o in run.outcomes
    ]  # fmt: skip
    problems += [o.grader_problem for o in run.outcomes if o.grader_problem]
    if not run.outcomes and not problems:
        problems.append(f"no tests were collected from {tests_dir} ({collected} items)")
    if problems:
        status, message = "grader_error", truncate("; ".join(problems))
    elif skip_reason and status == "graded":
        status, message = "grader_error", skip_reason  # an environment problem: rerun on a GPU machine
    if totals.output_bytes >= spec.limits.output_bytes > 0:
        warnings.append(f"output was cut at the limit of {spec.limits.output_bytes} bytes")
    score = None if status == "grader_error" else round(sum(t.score for t in tests), 6)
    return SubmissionReport(
        grader_version=__version__,
        assignment=spec.name,
        submission=SubmissionInfo(id=submission.id, path=str(submission_path), sha256=submission.sha256 or None),
        status=status,
        message=message,
        score=score,
        max_score=sum(t.max_score for t in tests),
        tests=tests,
        resources=Resources(
            wall_s=round(time.monotonic() - started, 4),
            cpu_s=round(totals.cpu_s, 4) if totals.worker_starts else None,
            peak_rss_mb=round(totals.peak_rss_mb, 2) if totals.worker_starts else None,
            output_bytes=totals.output_bytes,
            worker_starts=totals.worker_starts,
            gpu_s=round(totals.gpu_s, 4) if box_settings.gpu_device is not None else None,
            gpu_peak_mb=totals.gpu_peak_mb if box_settings.gpu_device is not None else None,
        ),
        warnings=[truncate(w, 500) for w in warnings],
        cells=session.cells or [],
        output=truncate("".join(totals.output), 20_000),
        seed=seed,
        sandbox=settings.sandbox,
    )
