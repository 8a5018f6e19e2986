"""The `grader` command: parses arguments, calls grader's API, maps errors to exit codes."""

# Longer than the ~400-line guideline (STYLE.md): one thin click command per verb a user types (grade,
# check, export, adjust, release, verify, calibrate, similarity, gradescope, doctor); each only parses,
# calls the API and maps errors. Next step: one module per command group under grader/cli/.

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from grader.errors import GraderError, SandboxUnavailable, UsageError

EXIT_ATTENTION = 1  # everything found was graded, but some inputs were skipped (duplicates...)
EXIT_GRADER_ERROR = 3
EXIT_VERIFY_FAILED = 1  # a check failed (CI should go red)


class CliError(click.ClickException):
    """A GraderError shown as one message with the error's exit code."""

    def __init__(self, error: GraderError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click 8.2 types it ClassVar; click reads the instance


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


@click.group()
@click.version_option(package_name="dl-grader")
def main() -> None:
    """Sandboxed autograder for deep-learning course notebooks."""


def _lms_options(command: Any) -> Any:
    """Options shared by `grade` and `export`: roster, late work, LMS files (issue 15; README: LMS)."""
    options = [
        click.option("--roster", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                     help="Moodle grading worksheet or participants CSV, Canvas gradebook CSV, or id,name CSV."),
        click.option("--extensions", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                     help="CSV student_id,due (a date-time, or +2d / +36h after the due date)."),
        click.option("--submission-times", type=click.Path(path_type=Path, dir_okay=False, exists=True),
                     help="CSV student_id,submitted_at (else the LMS export's times, else file times)."),
        click.option("--csv-bom/--no-csv-bom", default=None, help="Start CSV exports with a UTF-8 BOM (Excel)."),
        click.option("--canvas-column", help='Canvas assignment column, e.g. "Backprop (12345)" from its export.'),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _save_export_settings(out_dir: Path, options: dict[str, Any], loaded: Any = None) -> None:
    """Remember what `grade`/`export` were told about the roster and late work, for every later export."""
    import hashlib
    from zoneinfo import ZoneInfo

    from grader.batch.export_settings import load_settings, save_settings
    from grader.batch.late import read_extensions, read_submission_times
    from grader.batch.roster import read_roster

    changes: dict[str, Any] = {"csv_bom": options.get("csv_bom"), "canvas_column": options.get("canvas_column")}
    late = loaded.spec.late if loaded is not None else load_settings(out_dir).late
    if loaded is not None:
        template = loaded.assignment_dir / loaded.spec.notebook
        changes["late"] = late
        changes["title"] = loaded.spec.title
        changes["template_sha256"] = hashlib.sha256(template.read_bytes()).hexdigest() if template.exists() else None
    if options.get("roster"):
        changes["roster"] = read_roster(options["roster"])
    if options.get("extensions") or options.get("submission_times"):
        if late is None:
            raise UsageError("--extensions and --submission-times need a [late] table (due = ...) in assignment.toml")
        if options.get("extensions"):
            changes["extensions"] = read_extensions(options["extensions"], late)
        if options.get("submission_times"):
            changes["submission_times"] = read_submission_times(options["submission_times"], ZoneInfo(late.timezone))
    save_settings(out_dir, clear=("late",) if loaded is not None and late is None else (), **changes)


@main.command()
@click.argument("assignment")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("grading"),
    show_default=True,
    help="Folder for reports (<id>.json), the gradebook and exports.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Parallel graders (default: one per core).")
@click.option("--force", is_flag=True, help="Regrade everything, even what is already up to date.")
@click.option(
    "--course",
    "course_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Course folder holding assignments/ (default: the current folder).",
)
@click.option(
    "--sandbox",
    type=click.Choice(["bwrap", "none"]),
    default="bwrap",
    show_default=True,
    help="'none' runs student code without isolation: only for code you trust.",
)
@click.option("--details/--no-details", default=None, help="Per-test tables (default: when 5 or fewer).")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; ray: Ray tasks on a cluster (pip install '.[ray]').",
)
@click.option("--ray-address", help="Ray cluster to join (default: start a local Ray instance).")
@click.option("--gpus", help="GPUs to use, e.g. '0,1', or 'none' (default: all that are found).")
@click.option(
    "--jobs-per-gpu",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Submissions packed on one GPU at once; each gets 1/K of its memory.",
)
@click.option(
    "--export/--no-export",
    "do_export",
    default=True,
    show_default=True,
    help="Write CSV, HTML, JUnit and Gradescope exports at the end.",
)
@click.option(
    "--preflight/--no-preflight",
    default=True,
    show_default=True,
    help="Before the first student: collect the hidden tests and grade the reference solution once.",
)
@_lms_options
def grade(
    assignment: str,
    inputs: tuple[Path, ...],
    out_dir: Path,
    workers: int | None,
    force: bool,
    course_dir: Path | None,
    sandbox: str,
    details: bool | None,
    executor: str,
    ray_address: str | None,
    gpus: str | None,
    jobs_per_gpu: int,
    do_export: bool,
    preflight: bool,
    **lms_options: Any,
) -> None:
    """Grade INPUTS (notebooks, .py files, folders, LMS .zip exports) against ASSIGNMENT."""
    from grader.batch.intake import collect
    from grader.batch.runner import default_workers
    from grader.grading.spec import load_assignment
    from grader.settings import GradeSettings
    from grader.trace import mark

    mark("cli start")
    console = _console()
    try:
        loaded = load_assignment(assignment, course_dir)
        _require_sandbox(console, sandbox)
        if executor == "local":
            from grader.batch.executors import pool_context

            pool_context(loaded)  # starts the forkserver now: its torch import overlaps intake and pre-flight
        intake = collect(list(inputs), loaded.spec.notebook, out_dir / "extracted")
        _save_export_settings(out_dir, lms_options, loaded)
        leases = _gpu_leases(loaded.spec.gpu, gpus, jobs_per_gpu)
        settings = GradeSettings(sandbox=sandbox)
        mark("intake done")
        if preflight:
            from grader.batch.preflight import run_preflight

            checked = run_preflight(loaded, settings, out_dir)
            console.print(checked.line, soft_wrap=True, markup=False, highlight=False)
            if checked.reference_times is not None:  # [limits.relative]: limits from this machine's reference
                settings = settings.model_copy(update={"reference_times": checked.reference_times})
    except GraderError as exc:
        raise CliError(exc) from None
    mark("preflight done")
    workers = workers or min(default_workers(), max(1, len(intake.candidates)))
    show_tables = details if details is not None else len(intake.candidates) <= 5
    runner = None
    if executor == "ray":
        try:
            from grader.batch.ray_executor import RayExecutor
        except ImportError:
            raise CliError(UsageError("the Ray executor needs Ray: pip install '.[ray]'")) from None
        runner = RayExecutor(ray_address, jobs_per_gpu)
    _run_batch(console, loaded, intake, out_dir, settings, workers, force, show_tables, do_export, leases, runner)
    mark("cli end")


def _similarity_section(console: Console, loaded: Any, out_dir: Path) -> None:
    """Every batch ends with the similar-code section (issue 19); the report is export/similarity.html."""
    from grader.similarity import compare_graded_batch, write_report

    try:
        result = compare_graded_batch(out_dir, loaded)
    except (GraderError, OSError, ValueError) as exc:  # similarity is advice: never fails the batch
        console.print(f"similarity: not compared ({exc})", markup=False, soft_wrap=True)
        return
    write_report(result, out_dir / "export" / "similarity.html")
    console.print(result.summary_text(), markup=False, highlight=False, soft_wrap=True)


def _gpu_leases(policy: str, gpus: str | None, jobs_per_gpu: int) -> Any:
    """A lease manager over the chosen GPUs, or None for CPU-only assignments and machines."""
    if policy == "none":
        return None
    from grader.sandbox.gpu import LeaseManager, discover_gpus, select_gpus

    devices = select_gpus(discover_gpus(), gpus)
    return LeaseManager(devices, jobs_per_gpu) if devices else None


def _require_sandbox(console: Console, sandbox: str) -> None:
    from grader.doctor import probe_sandbox

    if sandbox == "none":
        console.print("[yellow]warning: --sandbox none: student code runs without isolation[/yellow]")
        return
    check = probe_sandbox("bwrap")
    if not check.ok:
        raise SandboxUnavailable(
            f"the sandbox does not work here: {check.detail}\n"
            "Run `grader doctor` for details, or pass --sandbox none to grade without "
            "isolation (only for code you trust)."
        )


def _run_batch(
    console: Console,
    loaded: Any,
    intake: Any,
    out_dir: Path,
    settings: Any,
    workers: int,
    force: bool,
    show_tables: bool,
    do_export: bool,
    leases: Any = None,
    runner: Any = None,
) -> None:
    from grader.batch.console import BatchProgress, print_batch_summary, print_report
    from grader.batch.exports import write_exports
    from grader.batch.runner import run_batch

    progress = BatchProgress(console, {c.student_id: c.display_name for c in intake.candidates if c.display_name})
    try:
        with progress:
            summary = run_batch(
                loaded,
                intake,
                out_dir,
                settings,
                workers,
                force,
                on_report=progress.advance,
                on_start=progress.start,
                leases=leases,
                executor=runner,
            )
    except GraderError as exc:
        raise CliError(exc) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/yellow]: finished reports are saved; rerun the same command to grade the rest"
        )
        sys.exit(130)
    if show_tables:
        for report in summary.reports:
            print_report(console, report)
    if do_export:
        written = write_exports(out_dir, policy=loaded.spec.feedback)
        console.print(f"exports: {', '.join(str(p.relative_to(out_dir)) for p in written)}", soft_wrap=True)
    print_batch_summary(console, summary, out_dir)
    if do_export:
        _similarity_section(console, loaded, out_dir)
    if summary.grader_errors:
        sys.exit(EXIT_GRADER_ERROR)
    if summary.problems:
        sys.exit(EXIT_ATTENTION)


@main.command()
@click.argument("notebook", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--assignment", "assignment_name", help="Assignment name or folder, when it cannot be inferred.")
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "bwrap", "none"]),
    default="auto",
    show_default=True,
    help="auto: bubblewrap where it works, else a plain subprocess (your own code on your own machine).",
)
@click.option("--details", "-v", is_flag=True, help="Print every message whole, not only its first line.")
@click.option("-k", "keyword", metavar="EXPR", help="Run only the practice checks matching EXPR (as pytest -k).")
def check(
    notebook: Path, assignment_name: str | None, course_dir: Path | None, sandbox: str, details: bool,
    keyword: str | None,
) -> None:  # fmt: skip
    """Run the practice checks (visible tests) on your NOTEBOOK and explain what to fix."""
    from grader.batch.console import print_student_view
    from grader.student.check import NO_SANDBOX_NOTE, choose_sandbox, find_assignment_for, run_check

    console = _console()
    try:
        loaded = find_assignment_for(notebook, assignment_name, course_dir)
        mode = choose_sandbox(sandbox)
        if mode == "none" and sandbox == "auto":
            console.print(f"[dim]{NO_SANDBOX_NOTE}[/dim]")
        result = run_check(notebook, loaded, mode, keyword)
    except GraderError as exc:
        raise CliError(exc) from None
    print_student_view(console, result.view, details=details, notes=result.notes)  # only the student view
    if result.exit_code:
        sys.exit(result.exit_code)


@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["csv", "html", "junit", "gradescope", "moodle", "canvas", "json"]),
    help="Export format (repeatable; default: every one that applies).",
)
@_lms_options
def export(out_dir: Path, formats: tuple[str, ...], **lms_options: Any) -> None:
    """Write exports of the gradebook in OUT_DIR to OUT_DIR/export."""
    from grader.batch.exports import write_exports

    try:
        _save_export_settings(out_dir, lms_options)
        written = write_exports(out_dir, formats or None)
    except GraderError as exc:
        raise CliError(exc) from None
    for path in written:
        _console().print(f"wrote {path}")


class _AdjustGroup(click.Group):
    """`grader adjust OUT STUDENT ...` adds an adjustment; `list`, `undo` and `confirm` are its other commands."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().resolve_command(ctx, args)


@main.group(cls=_AdjustGroup)
def adjust() -> None:
    """Change a student's score by hand; kept across regrades (README: Adjustments).

    \b
    grader adjust OUT STUDENT [--test NAME] --points P --reason '...'
    grader adjust OUT STUDENT --set-score S --reason '...'
    grader adjust list OUT [STUDENT]
    grader adjust undo OUT N          grader adjust confirm OUT N
    """


_OUT_ARG = click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))


@adjust.command(name="add")
@_OUT_ARG
@click.argument("student")
@click.option("--test", help="The test to change (default: the whole submission).")
@click.option("--points", type=float, help="Points to add (negative: take off).")
@click.option("--set-score", type=float, help="Set the score to this (e.g. 0 for an academic-integrity case).")
@click.option("--reason", required=True, help="Why: kept in the log, shown to the student with --show-reason.")
@click.option("--show-reason/--hide-reason", default=False, show_default=True, help="Show the reason to the student.")
@click.option("--by", "author", help="Who makes it (default: $GRADER_TA, else the login name).")
def adjust_add(
    out_dir: Path, student: str, test: str | None, points: float | None, set_score: float | None, reason: str,
    show_reason: bool, author: str | None,
) -> None:  # fmt: skip
    """Add an adjustment for STUDENT in OUT_DIR's gradebook, then rewrite the exports."""
    from grader.batch import adjustments

    try:
        entry = adjustments.add(out_dir, student, test=test, points=points, set_score=set_score, reason=reason,
                                show_reason=show_reason, author=author)  # fmt: skip
    except GraderError as exc:
        raise CliError(exc) from None
    change = f"set to {entry.value:g}" if entry.kind == "set_score" else f"{entry.value:+g} points"
    _console().print(f"adjustment {entry.seq}: {student} {entry.test or 'whole submission'} {change}", markup=False)
    _reexport(out_dir)


@adjust.command(name="list")
@_OUT_ARG
@click.argument("student", required=False)
def adjust_list(out_dir: Path, student: str | None) -> None:
    """Every adjustment in OUT_DIR (or STUDENT's), with what needs review after a regrade."""
    import time

    from grader.batch.adjustments import grade_lines, read_log
    from grader.batch.gradebook import read_rows
    from grader.grading.spec import FeedbackPolicy

    try:
        log = read_log(out_dir)
        lines = grade_lines(read_rows(out_dir), log, FeedbackPolicy())
    except GraderError as exc:
        raise CliError(exc) from None
    flags = {a.adjustment.seq: a.flag for line in lines for a in line.applied if a.flag}
    undone = {a.target for a in log if a.kind == "undo"}
    console = _console()
    for entry in log:
        if student is not None and entry.student_id != student:
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created_at))
        what = {"points": f"{entry.value or 0:+g}", "set_score": f"set {entry.value or 0:g}"}.get(entry.kind)
        what = what or entry.kind
        state = "undone" if entry.seq in undone else ("REVIEW: " + flags[entry.seq]) if entry.seq in flags else ""
        target = f" #{entry.target}" if entry.target else ""
        console.print(
            f"{entry.seq:>4}  {entry.student_id}  {entry.test or '(total)'}  {what}{target}  {entry.reason!r}  "
            f"{entry.author} {when}  against {(entry.against_sha256 or '-')[:10]}  {state}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    if not log:
        console.print("no adjustments yet")


@adjust.command(name="undo")
@_OUT_ARG
@click.argument("seq", type=int)
@click.option("--reason", default="", help="Why (kept in the log).")
def adjust_undo(out_dir: Path, seq: int, reason: str) -> None:
    """Cancel adjustment SEQ (the log keeps both), then rewrite the exports."""
    from grader.batch import adjustments

    try:
        adjustments.undo(out_dir, seq, reason)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"adjustment {seq} undone")
    _reexport(out_dir)


@adjust.command(name="confirm")
@_OUT_ARG
@click.argument("seq", type=int)
@click.option("--reason", default="", help="Why (kept in the log).")
def adjust_confirm(out_dir: Path, seq: int, reason: str) -> None:
    """Keep adjustment SEQ after a regrade changed the score under it (clears its review flag)."""
    from grader.batch import adjustments

    try:
        adjustments.confirm(out_dir, seq, reason)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"adjustment {seq} confirmed against the current report")
    _reexport(out_dir)


def _reexport(out_dir: Path) -> None:
    from grader.batch.exports import write_exports

    try:
        written = write_exports(out_dir)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"exports rewritten: {', '.join(str(p.relative_to(out_dir)) for p in written)}", soft_wrap=True)


@main.command(name="release")
@click.argument("assignment")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("release"),
    show_default=True,
    help="Folder to write the student bundle into.",
)
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
def release_command(assignment: str, out_dir: Path, course_dir: Path | None) -> None:
    """Write the student bundle of ASSIGNMENT: template, visible tests, public spec, README, the checker's wheel."""
    from grader.authoring.release import release
    from grader.grading.spec import load_assignment

    try:
        target = release(load_assignment(assignment, course_dir), out_dir)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"released {assignment} to {target}/ (students start with its README.md)")


@main.command()
@click.argument("assignments", nargs=-1)
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--sandbox", type=click.Choice(["bwrap", "none"]), default="bwrap", show_default=True)
@click.option(
    "--variants/--no-variants", default=True, show_default=True,
    help="Grade solutions/NAME/variants and enforce its expected.toml.",
)  # fmt: skip
@click.option(
    "--robustness/--no-robustness", default=True, show_default=True,
    help="Grade wrong answers (None, wrong shape, NaN, str, raises, never returns) of each solution function.",
)  # fmt: skip
def verify(
    assignments: tuple[str, ...], course_dir: Path | None, sandbox: str, variants: bool, robustness: bool
) -> None:
    """For CI: solutions full marks, templates zero and in sync, known variants and wrong answers as expected."""
    from rich.markup import escape

    from grader.authoring.verify import verify_assignment
    from grader.grading.spec import load_assignment
    from grader.settings import GradeSettings

    console = _console()
    course = (course_dir or Path.cwd()).resolve()
    names = list(assignments) or sorted(p.parent.name for p in (course / "assignments").glob("*/assignment.toml"))
    if not names:
        raise CliError(UsageError(f"no assignments found under {course / 'assignments'}"))
    try:
        _require_sandbox(console, sandbox)
        loaded = [load_assignment(name, course) for name in names]
    except GraderError as exc:
        raise CliError(exc) from None
    verdicts = []
    for assignment in loaded:
        settings = GradeSettings(sandbox=sandbox)
        verdict = verify_assignment(assignment, settings, variants=variants, robustness=robustness)
        mark = "[green]ok  [/green]" if verdict.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {assignment.name}: " + escape("; ".join(verdict.notes)), soft_wrap=True)
        for table in verdict.tables:
            for line in table.lines():
                console.print(f"     {line}", markup=False, highlight=False, soft_wrap=True)
        for failure in verdict.failures:  # whole, never cut: CI logs are where a course reads them
            console.print(f"     [red]-[/red] {escape(failure)}", soft_wrap=True)
        verdicts.append(verdict)
    failed = [v.assignment for v in verdicts if not v.ok]
    console.print(
        f"{len(verdicts) - len(failed)} of {len(verdicts)} assignments verified"
        + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    if failed:
        sys.exit(EXIT_VERIFY_FAILED)


@main.command()
@click.argument("assignment")
@click.option("--seeds", type=click.IntRange(min=2), default=5, show_default=True, help="Seeds 0..N-1.")
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="Fraction of the worst reference value to allow beyond it.",
)
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--sandbox", type=click.Choice(["bwrap", "none"]), default="bwrap", show_default=True)
def calibrate(assignment: str, seeds: int, margin: float, course_dir: Path | None, sandbox: str) -> None:
    """Grade the solution of ASSIGNMENT under several seeds and propose thresholds for its metrics."""
    from grader.authoring.calibrate import calibrate as run_calibration
    from grader.grading.spec import load_assignment
    from grader.settings import GradeSettings

    console = _console()
    try:
        loaded = load_assignment(assignment, course_dir)
        _require_sandbox(console, sandbox)
        summaries = run_calibration(loaded, list(range(seeds)), margin, GradeSettings(sandbox=sandbox))
    except GraderError as exc:
        raise CliError(exc) from None
    if not summaries:
        console.print("the hidden tests record no metrics; use the `metric` fixture in tests that have thresholds")
    for summary in summaries:
        console.print(summary.line)
    console.print(
        f"(margin {margin:g} of the reference's worst value; record these lines in the assignment's NOTES.md)"
    )


@main.command(name="similarity")
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--against", multiple=True, type=click.Path(path_type=Path, exists=True),
    help="An earlier year: a graded OUT folder, a folder of submissions or a .zip (repeatable).",
)  # fmt: skip
@click.option("--assignment", "assignment_name", help="Default: the assignment OUT's reports name.")
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--function", "functions", multiple=True, help="Compare this function (default: the template's stubs).")
@click.option(
    "--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
    help="HTML report (default: OUT/export/similarity.html).",
)  # fmt: skip
def similarity_command(
    out_dir: Path, against: tuple[Path, ...], assignment_name: str | None, course_dir: Path | None,
    functions: tuple[str, ...], report_path: Path | None,
) -> None:  # fmt: skip
    """List submissions in OUT whose own code is similar, for a TA to judge (never a verdict)."""
    from grader.grading.spec import load_assignment
    from grader.similarity import batch_assignment, compare_graded_batch, write_report

    try:
        name = assignment_name or batch_assignment(out_dir)
        if name is None:
            raise UsageError(f"{out_dir} holds no grading report; name the assignment with --assignment")
        result = compare_graded_batch(out_dir, load_assignment(name, course_dir), against, functions)
    except GraderError as exc:
        raise CliError(exc) from None
    path = report_path or out_dir / "export" / "similarity.html"
    write_report(result, path)
    console = _console()
    console.print(result.summary_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {path}", soft_wrap=True)


@main.command(name="gradescope")
@click.argument("assignment")
@click.option(
    "--out", "out_zip", type=click.Path(path_type=Path, dir_okay=False), default=Path("autograder.zip"),
    show_default=True, help="The zip to upload as Gradescope's autograder.",
)  # fmt: skip
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
def gradescope_bundle(assignment: str, out_zip: Path, course_dir: Path | None) -> None:
    """Build ASSIGNMENT's Gradescope autograder zip (setup.sh, run_autograder, hidden tests; no solutions)."""
    from grader.gradescope.bundle import build_bundle
    from grader.grading.spec import load_assignment

    try:
        path = build_bundle(load_assignment(assignment, course_dir), out_zip)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"wrote {path}: upload it as the assignment's autograder (README: Gradescope)")


@main.command(name="gradescope-run", hidden=True)
@click.argument("assignment")
@click.option(
    "--root", type=click.Path(path_type=Path, file_okay=False), help="Default: $GRADESCOPE_ROOT or /autograder."
)
@click.option("--sandbox", "modes", default="bwrap,uid", show_default=True, help="Modes to try, in order.")
def gradescope_run(assignment: str, root: Path | None, modes: str) -> None:
    """Inside Gradescope's container (run_autograder): grade /autograder/submission."""
    from grader.gradescope.run import main as run_main

    sys.exit(run_main(assignment, root, [m.strip() for m in modes.split(",") if m.strip()]))


@main.command()
@click.option(
    "--course",
    "course_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Also run the pre-flight of every assignment in this course folder.",
)
def doctor(course_dir: Path | None) -> None:
    """Check whether the sandbox works on this machine, and why not; with --course, each assignment."""
    from grader.doctor import course_checks, run_checks

    console = _console()
    checks = run_checks()
    if course_dir is not None:
        checks += course_checks(course_dir)
    for item in checks:
        mark = "[green]ok[/green]  " if item.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {item.name:<14} {escape(item.detail)}", soft_wrap=True)
    if not all(c.ok for c in checks if c.name in ("bubblewrap", "sandbox")):
        sys.exit(SandboxUnavailable.exit_code)
    if not all(c.ok for c in checks):
        sys.exit(EXIT_ATTENTION)


if __name__ == "__main__":
    main()
