"""The `grader` command: parses arguments, calls grader's API, maps errors to exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from grader.errors import GraderError, SandboxUnavailable

EXIT_GRADER_ERROR = 3


class CliError(click.ClickException):
    """A GraderError shown as one message with the error's exit code."""

    def __init__(self, error: GraderError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


@click.group()
@click.version_option(package_name="dl-grader")
def main() -> None:
    """Sandboxed autograder for deep-learning course notebooks."""


@main.command()
@click.argument("assignment")
@click.argument("submissions", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("grading"),
    show_default=True,
    help="Folder for the JSON reports.",
)
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
def grade(
    assignment: str, submissions: tuple[Path, ...], out_dir: Path, course_dir: Path | None, sandbox: str
) -> None:
    """Grade SUBMISSIONS (notebooks or .py files) against ASSIGNMENT; write DIR/<id>.json."""
    from grader.api import grade as grade_one
    from grader.console import print_report, print_summary
    from grader.doctor import probe_sandbox
    from grader.report import write_report
    from grader.settings import GradeSettings
    from grader.spec import load_assignment

    console = _console()
    try:
        loaded = load_assignment(assignment, course_dir)
        if sandbox == "bwrap":
            check = probe_sandbox("bwrap")
            if not check.ok:
                raise SandboxUnavailable(
                    f"the sandbox does not work here: {check.detail}\n"
                    "Run `grader doctor` for details, or pass --sandbox none to grade without "
                    "isolation (only for code you trust)."
                )
        else:
            console.print("[yellow]warning: --sandbox none: student code runs without isolation[/yellow]")
    except GraderError as exc:
        raise CliError(exc) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = GradeSettings(sandbox=sandbox)
    reports = []
    for path in submissions:
        report = grade_one(path, loaded, settings)
        write_report(report, out_dir / f"{report.submission.id}.json")
        print_report(console, report)
        reports.append(report)
    print_summary(console, reports)
    console.print(f"reports written to {out_dir}/")
    if any(r.status == "grader_error" for r in reports):
        sys.exit(EXIT_GRADER_ERROR)


@main.command()
@click.argument("notebook", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--assignment", "assignment_name", help="Assignment name, when it cannot be inferred.")
@click.option("--course", "course_dir", type=click.Path(path_type=Path, file_okay=False))
def check(notebook: Path, assignment_name: str | None, course_dir: Path | None) -> None:
    """Run the visible tests on your NOTEBOOK and explain what to fix."""
    from grader.api import grade as grade_one
    from grader.console import print_report
    from grader.doctor import probe_sandbox
    from grader.settings import GradeSettings
    from grader.student import find_assignment_for

    console = _console()
    try:
        loaded = find_assignment_for(notebook, assignment_name, course_dir)
    except GraderError as exc:
        raise CliError(exc) from None
    sandbox = "bwrap" if probe_sandbox("bwrap").ok else "none"
    if sandbox == "none":
        console.print("[dim]note: no sandbox available here; your own code runs as a plain subprocess[/dim]")
    report = grade_one(notebook, loaded, GradeSettings(sandbox=sandbox, tests="visible"))
    print_report(console, report)
    for cell in report.cells:
        if not cell.ok:
            console.print(f"[red]cell {cell.index} raised[/red]: {cell.message.splitlines()[0][:200]}")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow]: {warning}")
    if report.status == "graded" and report.score == report.max_score:
        console.print("[green]All visible tests pass.[/green] Hidden tests decide the grade.")
    if report.status == "grader_error":
        sys.exit(EXIT_GRADER_ERROR)


@main.command()
def doctor() -> None:
    """Check whether the sandbox works on this machine, and why not."""
    from grader.doctor import run_checks

    console = _console()
    checks = run_checks()
    for item in checks:
        mark = "[green]ok[/green]  " if item.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {item.name:<11} {item.detail}")
    if not all(c.ok for c in checks if c.name in ("bubblewrap", "sandbox")):
        sys.exit(SandboxUnavailable.exit_code)


if __name__ == "__main__":
    main()
