"""The `grader` command: parses arguments, calls grader's API, maps errors to exit codes."""

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
) -> None:
    """Grade INPUTS (notebooks, .py files, folders, LMS .zip exports) against ASSIGNMENT."""
    from grader.batch.intake import collect
    from grader.batch.runner import default_workers
    from grader.grading.spec import load_assignment
    from grader.settings import GradeSettings

    console = _console()
    try:
        loaded = load_assignment(assignment, course_dir)
        _require_sandbox(console, sandbox)
        intake = collect(list(inputs), loaded.spec.notebook, out_dir / "extracted")
        leases = _gpu_leases(loaded.spec.gpu, gpus, jobs_per_gpu)
        settings = GradeSettings(sandbox=sandbox)
        if preflight:
            from grader.batch.preflight import run_preflight

            checked = run_preflight(loaded, settings, out_dir)
            console.print(checked.line, soft_wrap=True, markup=False, highlight=False)
            if checked.reference_times is not None:  # [limits.relative]: limits from this machine's reference
                settings = settings.model_copy(update={"reference_times": checked.reference_times})
    except GraderError as exc:
        raise CliError(exc) from None
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

    progress = BatchProgress(console)
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
        console.print(f"exports: {', '.join(str(p.relative_to(out_dir)) for p in written)}")
    print_batch_summary(console, summary, out_dir)
    if summary.grader_errors:
        sys.exit(EXIT_GRADER_ERROR)
    if summary.problems:
        sys.exit(EXIT_ATTENTION)


@main.command()
@click.argument("notebook", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--assignment", "assignment_name", help="Assignment name, when it cannot be inferred.")
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
def check(notebook: Path, assignment_name: str | None, course_dir: Path | None) -> None:
    """Run the visible tests on your NOTEBOOK and explain what to fix."""
    from grader.batch.console import print_student_view
    from grader.doctor import probe_sandbox
    from grader.grading.pipeline import grade as grade_one
    from grader.settings import GradeSettings
    from grader.student.check import check_view, find_assignment_for

    console = _console()
    try:
        loaded = find_assignment_for(notebook, assignment_name, course_dir)
    except GraderError as exc:
        raise CliError(exc) from None
    sandbox = "bwrap" if probe_sandbox("bwrap").ok else "none"
    if sandbox == "none":
        console.print("[dim]note: no sandbox available here; your own code runs as a plain subprocess[/dim]")
    report = grade_one(notebook, loaded, GradeSettings(sandbox=sandbox, tests="visible"))
    view = check_view(report, loaded)  # everything the student reads comes from the student view
    print_student_view(console, view)
    if view.status == "graded" and view.score == view.max_score:
        console.print("[green]All visible tests pass.[/green] Hidden tests decide the grade.")
    if view.status == "grader_error":
        sys.exit(EXIT_GRADER_ERROR)


@main.command()
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["csv", "html", "junit", "gradescope"]),
    help="Export format (repeatable; default: all).",
)
def export(out_dir: Path, formats: tuple[str, ...]) -> None:
    """Write exports of the gradebook in OUT_DIR to OUT_DIR/export."""
    from grader.batch.exports import FORMATS, write_exports

    try:
        written = write_exports(out_dir, formats or FORMATS)
    except GraderError as exc:
        raise CliError(exc) from None
    for path in written:
        _console().print(f"wrote {path}")


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
    """Write the student bundle of ASSIGNMENT: template, visible tests, public assignment.toml."""
    from grader.authoring.release import release
    from grader.grading.spec import load_assignment

    try:
        target = release(load_assignment(assignment, course_dir), out_dir)
    except GraderError as exc:
        raise CliError(exc) from None
    _console().print(f"released {assignment} to {target}/")


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
        console.print(f"{mark} {item.name:<14} {escape(item.detail)}")
    if not all(c.ok for c in checks if c.name in ("bubblewrap", "sandbox")):
        sys.exit(SandboxUnavailable.exit_code)
    if not all(c.ok for c in checks):
        sys.exit(EXIT_ATTENTION)


if __name__ == "__main__":
    main()
