"""Terminal output: the per-test table for TAs and friendly feedback for students."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from grader.grading.report import SubmissionReport

if TYPE_CHECKING:
    from grader.batch.runner import BatchSummary

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


class BatchProgress:
    """A progress bar with counts and ETA on a terminal; one plain line per submission otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, total: int) -> None:
        if total == 0:
            self.console.print("nothing to grade: every submission is up to date (use --force to regrade)")
        elif self.console.is_terminal:
            self.bar = Progress(
                TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=self.console,
            )  # fmt: skip
            self.task = self.bar.add_task("grading", total=total)
            self.bar.start()
        else:
            self.console.print(f"grading {total} submissions")

    def advance(self, report: SubmissionReport, done: int, total: int) -> None:
        line = f"[{done}/{total}] {report.submission.id}: {report.status} {_score(report)}"
        line += f" ({report.resources.wall_s:.1f} s)"
        if self.bar is not None and self.task is not None:
            self.bar.console.print(line)
            self.bar.advance(self.task)
        else:
            self.console.print(line)


def print_batch_summary(console: Console, summary: BatchSummary, out_dir: Path) -> None:
    """The end of every batch: counts, then everything a TA must look at."""
    graded = [r for r in summary.reports if r.status == "graded"]
    mean = sum(r.score or 0 for r in graded) / len(graded) if graded else 0.0
    console.print(
        f"\n[bold]{summary.total} submissions[/bold]: {summary.graded} graded now"
        + (f" (mean {mean:.1f})" if graded else "")
        + f", {summary.up_to_date} already up to date, {summary.invalid} invalid, "
        f"{len(summary.grader_errors)} grader errors, {summary.with_timeouts} with timeouts"
    )
    for error in summary.grader_errors:
        console.print(f"  [red]grader error[/red] {error}")
    for problem in summary.problems:
        console.print(f"  [yellow]needs attention[/yellow] {problem}")
    console.print(f"reports and gradebook in {out_dir}/")
