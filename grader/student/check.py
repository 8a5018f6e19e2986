"""The student's side: which assignment a notebook belongs to, and its practice checks (issue 13).

A student has the release folder (template, tests/, assignment.toml, release.json, README.md)
and nothing of the course's private repository: the check runs the visible tests in ``tests/``,
never hidden ones, and needs no hidden tests anywhere. An assignment without visible tests still
gets a load report: which cells raised or were stopped, what the notebook defines, what it lacks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import __version__
from grader.errors import SandboxUnavailable, UsageError
from grader.grading.report import Resources, SubmissionInfo, SubmissionReport, truncate
from grader.grading.spec import SPEC_FILE, Assignment, find_course_root, load_spec
from grader.grading.student_view import StudentReport, sanitize_text, student_view
from grader.settings import GradeSettings

BUNDLE_FILE = "release.json"
# Where an Assignment would keep its hidden tests and solutions: a student's copy has neither, and
# these names exist nowhere (the sandbox is told to keep them hidden all the same).
NOT_SHIPPED = ".hidden-tests-are-not-shipped"
NO_SANDBOX_NOTE = "note: no sandbox available here; your own code runs as a plain subprocess"


@dataclass(frozen=True)
class CheckResult:
    """What a check found: the student view of the run, and the lines the check adds to it."""

    view: StudentReport
    notes: list[str] = field(default_factory=list)
    sandbox: str = "bwrap"

    @property
    def exit_code(self) -> int:
        return 3 if self.view.status == "grader_error" else 0


def read_bundle(folder: Path) -> dict[str, object]:
    """release.json of a student bundle (which assignment, the functions its template defines); {} if none."""
    try:
        data = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def student_assignment(folder: Path) -> Assignment:
    """An assignment as a student has it: assignment.toml and tests/; hidden tests are not needed."""
    folder = folder.resolve()
    spec = load_spec(folder / SPEC_FILE)
    name = read_bundle(folder).get("assignment")
    if isinstance(name, str) and name:
        spec = spec.model_copy(update={"name": name})  # the folder may have been renamed
    data_dir = None
    if spec.data_dir is not None:  # only the course's own copy says where its data is
        candidate = (find_course_root(folder) / spec.data_dir).resolve()
        data_dir = candidate if candidate.is_dir() else None
    return Assignment(
        spec=spec,
        assignment_dir=folder,
        hidden_tests_dir=folder / NOT_SHIPPED / "autograde_tests",
        solutions_dir=folder / NOT_SHIPPED / "solutions",
        data_dir=data_dir,
    )


def find_assignment_for(notebook: Path, name: str | None, course_dir: Path | None) -> Assignment:
    """By --assignment (a name or a folder), the notebook's folder, the current folder, or the file name."""
    course = (course_dir or Path.cwd()).resolve()
    if name is not None:
        for folder in (Path(name), course / "assignments" / name):
            if (folder / SPEC_FILE).is_file():
                return student_assignment(folder)
        raise UsageError(f"assignment {name!r} not found: no {course / 'assignments' / name / SPEC_FILE}")
    for folder in (notebook.resolve().parent, Path.cwd()):
        if (folder / SPEC_FILE).is_file():
            return student_assignment(folder)
    matches = [
        spec_path.parent
        for spec_path in sorted((course / "assignments").glob(f"*/{SPEC_FILE}"))
        if load_spec(spec_path).notebook == notebook.name
    ]
    if len(matches) == 1:
        return student_assignment(matches[0])
    raise UsageError(
        f"cannot tell which assignment {notebook.name} belongs to: run the check in the assignment's folder "
        "(the one with assignment.toml), or pass --assignment FOLDER"
    )


def expected_functions(assignment: Assignment, notebook: Path) -> list[str]:
    """What the notebook should define: release.json's list, else the template's top-level functions."""
    listed = read_bundle(assignment.assignment_dir).get("functions")
    if isinstance(listed, list):
        return [str(name) for name in listed]
    template = assignment.assignment_dir / assignment.spec.notebook
    if not template.is_file() or template.resolve() == notebook.resolve():
        return []
    from grader.grading.submission import InvalidSubmission, load_submission

    try:
        return [name for cell in load_submission(template).cells for name in cell.defines]
    except InvalidSubmission:
        return []


def choose_sandbox(requested: str) -> str:
    """auto: bubblewrap where it works, else a plain subprocess (the student's own code, own machine)."""
    if requested == "none":
        return "none"
    from grader.doctor import probe_sandbox

    check = probe_sandbox("bwrap")
    if check.ok:
        return "bwrap"
    if requested == "bwrap":
        raise SandboxUnavailable(f"the sandbox does not work here: {check.detail}; use --sandbox none or auto")
    return "none"


def check_view(report: SubmissionReport, assignment: Assignment) -> StudentReport:
    """What the check command shows: the student view of a run of the visible tests."""
    return student_view(report, assignment.spec.feedback, tests="visible")


def run_check(notebook: Path, assignment: Assignment, sandbox: str = "none", keyword: str | None = None) -> CheckResult:
    """The practice checks of ``notebook`` (only those matching ``keyword``), or its load report.

    ``sandbox`` is bwrap or none, as `choose_sandbox` decided. Raises UsageError when ``keyword``
    matches no practice check.
    """
    from grader.grading.pipeline import grade
    from grader.grading.suite import SuiteCache

    settings = GradeSettings(sandbox="bwrap" if sandbox == "bwrap" else "none", tests="visible")
    tests_dir = assignment.visible_tests_dir
    suites = SuiteCache()
    try:
        suite = suites.get(tests_dir) if any(tests_dir.glob("test_*.py")) else None
        if suite is None or (not suite.items and not suite.collection_problems):
            return _load_report(notebook, assignment, settings)
        if keyword is not None:
            _select(suite, keyword)
        report = grade(notebook, assignment, settings, suites=suites)
    finally:
        suites.close()
    return CheckResult(check_view(report, assignment), sandbox=sandbox)


def _select(suite: object, keyword: str) -> None:
    """Keep the tests that pytest's ``-k keyword`` would run; none: a usage error naming the tests."""
    from _pytest.mark import KeywordMatcher  # pytest's own -k matching (pytest 8 and 9)
    from _pytest.mark.expression import Expression

    session = suite.session  # type: ignore[attr-defined]  # a TestSuite
    try:
        expression = Expression.compile(keyword)
    except Exception as exc:  # noqa: BLE001 - ParseError in pytest 8, SyntaxError in pytest 9
        raise UsageError(f"-k {keyword!r} is not a valid expression: {exc}") from None
    selected = [item for item in session.items if expression.evaluate(KeywordMatcher.from_item(item))]
    if not selected:
        names = ", ".join(item.name for item in session.items)
        raise UsageError(f"no practice check matches {keyword!r}; the practice checks are: {names}")
    session.items[:] = selected


def _load_report(notebook: Path, assignment: Assignment, settings: GradeSettings) -> CheckResult:
    """No practice checks: load the notebook in the sandbox and say what it defines and what it lacks."""
    from grader.grading.pipeline import FORBIDDEN_USE
    from grader.grading.session import WorkerSession
    from grader.grading.static_checks import check_cells
    from grader.grading.submission import InvalidSubmission, load_submission
    from grader.sandbox.box import BoxSettings

    started = time.monotonic()
    spec = assignment.spec
    base = {"grader_version": __version__, "assignment": spec.name, "seed": spec.seed, "sandbox": settings.sandbox}
    info = SubmissionInfo(id=notebook.stem, path=str(notebook), sha256=None)
    try:
        submission = load_submission(notebook)
    except InvalidSubmission as exc:
        report = SubmissionReport(
            **base, submission=info, status="invalid_submission", message=str(exc), score=0.0, max_score=0.0,
            resources=Resources(wall_s=round(time.monotonic() - started, 4), cpu_s=None, peak_rss_mb=None),
        )  # fmt: skip
        return CheckResult(check_view(report, assignment), sandbox=settings.sandbox)
    violations = check_cells(submission.cells, spec.static)
    blocked = f"{FORBIDDEN_USE}: " + "; ".join(v.describe() for v in violations[:5]) if violations else None
    secret_dirs = (assignment.hidden_tests_dir, assignment.solutions_dir)
    box = BoxSettings(settings.sandbox, spec.limits, spec.limits.threads, secret_dirs, assignment.data_dir)
    session = WorkerSession(submission, box, spec.preload, spec.seed, None, blocked)
    names: dict[str, list[str]] = {"names": [], "functions": []}
    try:
        if blocked is None:
            names = session.names()
    except Exception:  # noqa: BLE001 - a load that failed is in session.cells and load_fault
        pass
    finally:
        totals = session.close()
    notes = _load_notes(names["functions"], expected_functions(assignment, notebook), session, blocked)
    report = SubmissionReport(
        **base, submission=info.model_copy(update={"sha256": submission.sha256}), status="graded",
        message=blocked or "", score=0.0, max_score=0.0, cells=session.cells or [],
        warnings=list(submission.warnings), output=truncate("".join(totals.output), 20_000),
        resources=Resources(wall_s=round(time.monotonic() - started, 4), cpu_s=round(totals.cpu_s, 4),
                            peak_rss_mb=round(totals.peak_rss_mb, 2), worker_starts=totals.worker_starts),
    )  # fmt: skip
    return CheckResult(check_view(report, assignment), notes, sandbox=settings.sandbox)


def _load_notes(defined: list[str], expected: list[str], session: object, blocked: str | None) -> list[str]:
    """The load report's lines: what the notebook defines and what the template asks for that it lacks."""
    head = "this assignment has no practice checks"
    if blocked is not None:
        return [f"{head}; your notebook was not run, for the reason below"]
    fault = getattr(session, "load_fault", None)
    if fault is not None:
        return [f"{head}; your notebook could not be loaded: {sanitize_text(fault.message)}"]
    cells = getattr(session, "cells", None) or []
    loads = "loads" if all(cell.ok for cell in cells) else "loads (with the cell problems below)"
    shown = ", ".join(sanitize_text(name, keep_newlines=False) for name in defined) or "no functions"
    notes = [f"{head}; your notebook {loads} and defines: {shown}"]
    missing = [name for name in expected if name not in defined]
    if missing:
        notes.append(f"missing (the template defines them): {', '.join(missing)}")
    return notes
