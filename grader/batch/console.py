"""Terminal output: the per-test table for TAs and friendly feedback for students.

Every string that came from a submission, a file name or a test is shown as plain rich Text
(never parsed as markup) after `sanitize_text`, so no escape sequence reaches a terminal raw
(an OSC title change or a cursor-position query would act on the TA's terminal, issue 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.padding import Padding
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
from rich.text import Text

from grader.grading.report import SubmissionReport
from grader.grading.student_view import ALL_PASS, PRACTICE_NOTE, StudentReport, sanitize_text

if TYPE_CHECKING:
    from grader.batch.runner import BatchSummary

STATUS_STYLE = {
    "passed": "green", "failed": "red", "error": "red", "timeout": "yellow", "memory": "yellow",
    "crashed": "magenta", "invalid": "magenta", "skipped": "dim",
}  # fmt: skip


def _score(report: SubmissionReport | StudentReport) -> str:
    if report.score is None:
        return f"— / {report.max_score:g}"
    return f"{report.score:g} / {report.max_score:g}"


def _line(text: str) -> str:
    """One terminal line of untrusted text: controls (newlines too) made visible."""
    return sanitize_text(text, keep_newlines=False)


def _first_line(text: str, limit: int = 160) -> str:
    """Up to the first newline; a carriage return or U+2028 does not end it but is made visible."""
    return _line(sanitize_text(text).split("\n", 1)[0][:limit])


def _test_table(rows: Sequence[tuple[str, str, str, str]]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("test")
    table.add_column("status")
    table.add_column("points", justify="right")
    table.add_column("message", overflow="fold")
    for name, status, points, message in rows:
        table.add_row(Text(_line(name)), Text(status, style=STATUS_STYLE.get(status, "")), points, Text(message))
    return table


def _head(submission_id: str, status: str, score: str, wall_s: float) -> Text:
    return Text.assemble((_line(submission_id), "bold"), f"  {status}  {score}  ({wall_s:.2f} s)")


def print_report(console: Console, report: SubmissionReport, show_messages: bool = True) -> None:
    """The TA's view of one submission: a header line, then a row per test, every message included."""
    console.print(_head(report.submission.id, report.status, _score(report), report.resources.wall_s))
    if report.message:
        console.print(Text("  " + _line(report.message), style="yellow"))
    if report.status != "graded":
        return
    rows = []
    for test in report.tests:
        message = _first_line(test.message) if show_messages else ""
        if message and not test.visible:
            message = "(hidden from students) " + message
        rows.append((test.name, test.status, f"{test.score:g}/{test.max_score:g}", message))
    console.print(_test_table(rows))


STATUS_WORD = {"passed": "passed", "failed": "FAILED", "error": "ERROR"}


def print_student_view(console: Console, view: StudentReport, details: bool = False, notes: Sequence[str] = ()) -> None:
    """The student's view of one submission (the check command): only what the student view holds.

    One line per test and its message below it, wrapped at any width and never cut mid-line; by
    default a message's first line, with ``details`` all of it (issue 13). ``notes`` are lines the
    check adds under the heading (no practice checks, a notebook older than the kernel).
    """
    practice = view.tests_run == "visible"
    if practice:
        passed = sum(t.status == "passed" for t in view.tests)
        head = f"practice checks: {passed} of {len(view.tests)} pass" if view.tests else "load report"
        console.print(Text.assemble((_line(view.submission_id), "bold"), f"  {head}  ({view.wall_s:.2f} s)"))
        note = PRACTICE_NOTE if view.tests else "Not your grade: the hidden tests decide it."
        console.print(Padding(Text(note, style="dim"), (0, 0, 0, 2)))
    else:
        console.print(_head(view.submission_id, view.status, _score(view), view.wall_s))
    for note in notes:
        console.print(Padding(Text(_line(note)), (0, 0, 0, 2)))
    if view.message:
        console.print(Padding(Text(_line(view.message), style="yellow"), (0, 0, 0, 2)))
    cut = False
    if view.status == "graded":
        for test in view.tests:
            word = STATUS_WORD.get(test.status, test.status)
            points = "" if practice else f"  {test.score:g}/{test.max_score:g}"
            console.print(
                Text.assemble("  ", (f"{word:<7}", STATUS_STYLE.get(test.status, "")), " ", _line(test.name), points)
            )
            lines = sanitize_text(test.message).split("\n") if test.message else []
            cut = cut or len(lines) > 1 and not details
            for line in lines if details else lines[:1]:
                console.print(Padding(Text(_line(line)), (0, 0, 0, 11)))
    if view.failing_cells:
        console.print(Text("  cells that did not run to their end when the notebook loaded:"))
    for cell in view.failing_cells:
        text = sanitize_text(cell.line)
        lines = text.split("\n")
        cut = cut or len(lines) > 1 and not details
        console.print(Padding(Text(_line(lines[0]), style="red"), (0, 0, 0, 4)))
        for line in lines[1:] if details else []:
            console.print(Padding(Text(_line(line)), (0, 0, 0, 6)))
    for warning in view.warnings:
        console.print(Padding(Text.assemble(("warning", "yellow"), ": ", _line(warning)), (0, 0, 0, 2)))
    if cut:
        console.print(Text("  (messages cut to their first line; --details shows them whole)", style="dim"))
    if practice and view.status == "graded" and view.tests and all(t.status == "passed" for t in view.tests):
        console.print(Text(ALL_PASS, "green"))


class BatchProgress:
    """A progress bar with counts and ETA on a terminal; one plain line per submission otherwise."""

    def __init__(self, console: Console, names: dict[str, str] | None = None) -> None:
        self.console = console
        self.names = names or {}  # student id -> display name: progress lines show both (issue 15)
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
            self.console.print(f"grading {_count(total, 'submission')}", soft_wrap=True)

    def advance(self, report: SubmissionReport, done: int, total: int) -> None:
        student = _line(report.submission.id)
        name = _line(self.names.get(report.submission.id, ""))
        line = Text(f"[{done}/{total}] {student}{f' {name}' if name else ''}: {report.status} {_score(report)}")
        line.append(f" ({report.resources.wall_s:.1f} s)")
        if self.bar is not None and self.task is not None:
            self.bar.console.print(line, soft_wrap=True)
            self.bar.advance(self.task)
        else:
            self.console.print(line, soft_wrap=True)  # piped: one line per submission, never wrapped


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def print_batch_summary(console: Console, summary: BatchSummary, out_dir: Path) -> None:
    """The end of every batch: counts, then everything a TA must look at."""
    graded = [r for r in summary.reports if r.status == "graded"]
    mean = sum(r.score or 0 for r in graded) / len(graded) if graded else 0.0
    console.print(
        f"\n[bold]{_count(summary.total, 'submission')}[/bold]: {summary.graded} graded now"
        + (f" (mean {mean:.1f})" if graded else "")
        + f", {summary.up_to_date} already up to date, {summary.invalid} invalid, "
        f"{_count(len(summary.grader_errors), 'grader error')}, {summary.with_timeouts} with timeouts",
        soft_wrap=True,  # piped output is read by tools and by grep: no line is ever wrapped (issue 15)
    )
    for error in summary.grader_errors:
        console.print(Text.assemble("  ", ("grader error", "red"), " ", _line(error)), soft_wrap=True)
    for problem in summary.problems:
        console.print(Text.assemble("  ", ("needs attention", "yellow"), " ", _line(problem)), soft_wrap=True)
    for student in summary.stale:
        name = summary.names.get(student, "")
        console.print(
            Text.assemble("  ", ("stale grade", "yellow"), f" {_line(student)}{f' {_line(name)}' if name else ''}: "
                          "the gradebook's grade is from an earlier run; marked in every export until resolved"),
            soft_wrap=True,
        )  # fmt: skip
    if summary.ignored:
        n = len(summary.ignored)
        shown = ", ".join(_line(name) for name in summary.ignored[:10])
        more = f" and {len(summary.ignored) - 10} more" if len(summary.ignored) > 10 else ""
        console.print(
            Text(
                f"  ignored {_count(n, 'file')} that {'is not a submission' if n == 1 else 'are not submissions'}: "
                f"{shown}{more}"
            ),
            soft_wrap=True,
        )
    console.print(Text(f"reports and gradebook in {_line(str(out_dir))}/"), soft_wrap=True)
