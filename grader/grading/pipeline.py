"""The core: grade(submission, assignment, settings) -> SubmissionReport. No folders, no DB."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from grader import __version__
from grader.grading.reference_limits import ReferenceTimes
from grader.grading.report import CellOutcome, Resources, SubmissionInfo, SubmissionReport, TestResult, truncate
from grader.grading.session import SessionTotals, WorkerSession
from grader.grading.spec import Assignment, AssignmentSpec, Limits
from grader.grading.static_checks import check_cells
from grader.grading.submission import Cell, InvalidSubmission, Submission, load_submission
from grader.grading.suite import SuiteCache, TestSuite
from grader.grading.testing import GradingRun
from grader.sandbox.box import BoxSettings
from grader.sandbox.gpu import cpu_fallback_limits, gpu_plan
from grader.sandbox.zygote import shared_provider
from grader.settings import GradeSettings
from grader.trace import mark


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


FORBIDDEN_USE = "every test scores 0: the notebook uses what this assignment forbids"


@dataclass
class _Loaded:
    """The submission as read and statically checked: what blocks its tests, if anything."""

    submission: Submission
    status: str = "graded"
    message: str = ""
    blocked: str | None = None
    warnings: list[str] = dc_field(default_factory=list)


@dataclass
class _Plan:
    """How this submission runs: the box, the seed, and why its tests are skipped (if they are)."""

    box: BoxSettings
    seed: int
    skip_reason: str
    warnings: list[str]
    limit_notes: dict[str, str] = dc_field(default_factory=dict)
    call_limits: dict[str, tuple[float, str]] = dc_field(default_factory=dict)


@dataclass
class _Ran:
    """What running the tests left: the outcomes, grader problems, the box's totals and cells."""

    run: GradingRun
    problems: list[str]
    collected: int
    totals: SessionTotals
    cells: list[CellOutcome]


def _load(submission_path: Path, submission_id: str, spec: AssignmentSpec) -> _Loaded:
    """Step 1: read the file and apply the static rules, outside the sandbox."""
    try:
        submission = load_submission(submission_path, submission_id)
    except InvalidSubmission as exc:
        blocked = _blocked_submission(submission_path, submission_id)
        return _Loaded(blocked, "invalid_submission", str(exc), f"not graded: {exc}")
    loaded = _Loaded(submission, warnings=list(submission.warnings))
    violations = check_cells(submission.cells, spec.static)
    if violations:
        # Status graded and a zero: the one reason is the message of the report and of every test,
        # worded the same wherever it is read (issue 13); `uses_forbidden` lets a summary count these.
        loaded.blocked = loaded.message = f"{FORBIDDEN_USE}: " + "; ".join(v.describe() for v in violations[:5])
    return loaded


def uses_forbidden(report: SubmissionReport) -> bool:
    """Whether every test scored 0 because the submission uses what the assignment forbids."""
    return report.status == "graded" and report.message.startswith(FORBIDDEN_USE)


def _plan(assignment: Assignment, settings: GradeSettings) -> _Plan:
    """Step 2: the limits (GPU policy applied), what the box may see, and the seed."""
    spec = assignment.spec
    limits, gpu_note, skip_reason = _gpu_limits(spec, settings)
    limits, notes, call_limits = _relative_limits(limits, settings.reference_times)
    box = BoxSettings(
        mode=settings.sandbox,
        limits=limits,
        threads=settings.threads or limits.threads,
        secret_dirs=(assignment.hidden_tests_dir, assignment.solutions_dir),
        data_dir=assignment.data_dir,
        gpu_device=settings.gpu_device if spec.gpu != "none" else None,
        gpu_memory_cap_mb=_gpu_cap(spec.limits.gpu_memory_mb, settings.gpu_memory_cap_mb),
    )
    seed = spec.seed if settings.seed is None else settings.seed
    return _Plan(box, seed, skip_reason, [gpu_note] if gpu_note else [], notes, call_limits)


def _relative_limits(
    limits: Limits, times: ReferenceTimes | None
) -> tuple[Limits, dict[str, str], dict[str, tuple[float, str]]]:
    """Limits from the reference's measured times where [limits.relative] asks for them (issue 20)."""
    relative = limits.relative
    if relative is None or times is None:
        return limits, {}, {}
    update: dict[str, float] = {}
    notes: dict[str, str] = {}
    if relative.load is not None:
        update["load_timeout_s"] = relative.load.seconds(times.load_s)
        notes["load"] = relative.load.describe(times.load_s)
    if relative.submission is not None:
        update["submission_timeout_s"] = relative.submission.seconds(times.submission_s)
        notes["submission"] = relative.submission.describe(times.submission_s)
    calls = {}
    if relative.call is not None:
        rule = relative.call
        calls = {name: (rule.seconds(s), rule.describe(s)) for name, s in times.call_s.items()}
    return limits.model_copy(update=update), notes, calls


def _run_tests(
    loaded: _Loaded, plan: _Plan, assignment: Assignment, settings: GradeSettings, suites: SuiteCache | None
) -> _Ran:
    """Step 3: run the collected tests against the submission in its sandbox."""
    tests_dir = assignment.hidden_tests_dir if settings.tests == "hidden" else assignment.visible_tests_dir
    probes = assignment.probes_path.read_text() if assignment.probes_path.exists() else None
    provider = shared_provider() if settings.warm_workers and settings.sandbox == "bwrap" else None
    if provider is not None and loaded.blocked is None:
        provider.prewarm(plan.box, assignment.spec.preload)  # its imports overlap the collection below
    suite, problems = _suite(tests_dir, suites)  # before the session: collecting is not the student's time
    skipped = bool(plan.skip_reason) and loaded.blocked == plan.skip_reason
    session = WorkerSession(
        loaded.submission, plan.box, assignment.spec.preload, plan.seed, probes, loaded.blocked, provider,
        blocked_status="skipped" if skipped else "failed",
    )  # fmt: skip
    session.limit_notes = plan.limit_notes
    run = GradingRun(session, hidden=settings.tests == "hidden", call_limits=plan.call_limits)
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
    problems += [o.grader_problem for o in run.outcomes if o.grader_problem]
    if not run.outcomes and not problems:
        problems.append(f"no tests were collected from {tests_dir} ({collected} items)")
    return _Ran(run, problems, collected, totals, session.cells or [])


def _build_report(
    submission_path: Path, loaded: _Loaded, plan: _Plan, ran: _Ran, spec: AssignmentSpec, settings: GradeSettings,
    started: float,
) -> SubmissionReport:  # fmt: skip
    """Step 4: the report; a grader problem makes it `grader_error` with no score, never a zero."""
    status, message, totals = loaded.status, loaded.message, ran.totals
    tests = [
        TestResult(
            id=o.nodeid, name=o.name, status=o.status, score=o.score if status == "graded" else 0.0,
            max_score=o.max_score, message=truncate(o.message), duration_s=round(o.duration_s, 4),
            visible=o.visible, test_raised=truncate(o.test_raised), max_call_s=round(o.max_call_s, 4),
            metrics=o.metrics,
        )
        for o in ran.run.outcomes
    ]  # fmt: skip
    if ran.problems:
        status, message = "grader_error", truncate("; ".join(ran.problems))
    elif plan.skip_reason and status == "graded":
        status, message = "grader_error", plan.skip_reason  # an environment problem: rerun on a GPU machine
    warnings = loaded.warnings + plan.warnings
    if totals.output_bytes >= spec.limits.output_bytes > 0:
        warnings.append(f"output was cut at the limit of {spec.limits.output_bytes} bytes")
    on_gpu = plan.box.gpu_device is not None
    submission = loaded.submission
    return SubmissionReport(
        grader_version=__version__,
        assignment=spec.name,
        submission=SubmissionInfo(id=submission.id, path=str(submission_path), sha256=submission.sha256 or None),
        status=status,
        message=message,
        score=None if status == "grader_error" else round(sum(t.score for t in tests), 6),
        max_score=sum(t.max_score for t in tests),
        tests=tests,
        resources=Resources(
            wall_s=round(time.monotonic() - started, 4),
            cpu_s=round(totals.cpu_s, 4) if totals.worker_starts else None,
            peak_rss_mb=round(totals.peak_rss_mb, 2) if totals.worker_starts else None,
            output_bytes=totals.output_bytes,
            worker_starts=totals.worker_starts,
            load_s=round(totals.load_s, 4) if totals.load_s is not None else None,
            gpu_s=round(totals.gpu_s, 4) if on_gpu else None,
            gpu_peak_mb=totals.gpu_peak_mb if on_gpu else None,
        ),
        warnings=[truncate(w, 500) for w in warnings],
        cells=ran.cells,
        output=truncate("".join(totals.output), 20_000),
        seed=plan.seed,
        sandbox=settings.sandbox,
    )


def warm_up(assignment: Assignment, settings: GradeSettings, suites: SuiteCache) -> None:
    """Before a grading process's first submission: collect the tests, start the warm worker.

    Pool processes call it when they start (issue 20), so the first submission costs what the
    tenth does. The zygote is only started where its settings will match (no GPU lease).
    """
    tests_dir = assignment.hidden_tests_dir if settings.tests == "hidden" else assignment.visible_tests_dir
    warm = settings.warm_workers and settings.sandbox == "bwrap" and assignment.spec.gpu == "none"
    box = _plan(assignment, settings).box
    if warm:
        shared_provider().prewarm(box, assignment.spec.preload)
    mark("collect start")
    _suite(tests_dir, suites)
    mark("collect end")
    if warm:  # the zygote's imports ran beside the collection; the first job finds it ready
        shared_provider().adopt_warmed(box, assignment.spec.preload)


def grade(
    submission_path: Path,
    assignment: Assignment,
    settings: GradeSettings | None = None,
    submission_id: str | None = None,
    suites: SuiteCache | None = None,
) -> SubmissionReport:
    """Grade one submission file against one assignment; never raises for bad student input.

    The pipeline: load (and check statically), plan the box, run the tests, build the report.
    ``suites`` keeps the collected tests between calls (grading processes pass theirs); without
    it the tests are collected for this call alone.
    """
    settings = settings or GradeSettings()
    started = time.monotonic()
    loaded = _load(submission_path, submission_id or submission_path.stem, assignment.spec)
    plan = _plan(assignment, settings)
    if plan.skip_reason and loaded.blocked is None:
        loaded.blocked = plan.skip_reason
    ran = _run_tests(loaded, plan, assignment, settings, suites)
    return _build_report(submission_path, loaded, plan, ran, assignment.spec, settings, started)
