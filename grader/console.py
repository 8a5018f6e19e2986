"""Terminal output: the per-test table for TAs and friendly feedback for students."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from grader.report import SubmissionReport

STATUS_STYLE = {
    "passed": "green", "failed": "red", "error": "red", "timeout": "yellow", "memory": "yellow",
    "crashed": "magenta", "invalid": "magenta", "skipped": "dim",
}  # fmt: skip


def _score(report: SubmissionReport) -> str:
    if report.score is None:
        return f"— / {report.max_score:g}"
    return f"{report.score:g} / {report.max_score:g}"


def print_report(console: Console, report: SubmissionReport, show_messages: bool = True) -> None:
    """One submission: a header line, then a row per test."""
    head = f"[bold]{report.submission.id}[/bold]  {report.status}  {_score(report)}"
    head += f"  ({report.resources.wall_s:.2f} s)"
    console.print(head)
    if report.message:
        console.print(f"  [yellow]{report.message}[/yellow]")
    if report.status != "graded":
        return
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("test")
    table.add_column("status")
    table.add_column("points", justify="right")
    table.add_column("message", overflow="fold")
    for test in report.tests:
        style = STATUS_STYLE.get(test.status, "")
        message = test.message if show_messages and test.visible else ""
        table.add_row(
            test.name,
            f"[{style}]{test.status}[/{style}]",
            f"{test.score:g}/{test.max_score:g}",
            message.splitlines()[0][:160] if message else "",
        )
    console.print(table)


def print_summary(console: Console, reports: list[SubmissionReport]) -> None:
    """Counts by status and the mean score, after a run of several submissions."""
    graded = [r for r in reports if r.status == "graded"]
    invalid = sum(r.status == "invalid_submission" for r in reports)
    errors = [r for r in reports if r.status == "grader_error"]
    mean = sum(r.score or 0 for r in graded) / len(graded) if graded else 0.0
    console.print(
        f"\n[bold]{len(reports)} submissions[/bold]: {len(graded)} graded (mean {mean:.1f}), "
        f"{invalid} invalid, {len(errors)} grader errors"
    )
    for report in errors:
        console.print(f"  [red]grader error[/red] {report.submission.id}: {report.message[:300]}")
