"""Where the code to compare comes from: a batch's OUT folder, earlier years' archives, the template."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grader.grading.submission import InvalidSubmission, load_submission

REPORT_SUFFIX = ".json"


@dataclass(frozen=True)
class Found:
    """One submission file to compare, with the id and name the batch knows it by."""

    id: str
    label: str
    path: Path


def _resolve(recorded: str, out_dir: Path) -> Path:
    path = Path(recorded)
    if path.is_absolute() or path.exists():
        return path
    for base in (out_dir, out_dir.parent):
        if (base / path).exists():
            return base / path
    return path


def batch_files(out_dir: Path) -> tuple[list[Found], list[str]]:
    """Submissions of a graded batch: the gradebook's rows, or else the reports ``OUT/<id>.json``."""
    from grader.batch.gradebook import GRADEBOOK_FILE, read_rows
    from grader.grading.report import read_report

    found: list[Found] = []
    problems: list[str] = []
    if (out_dir / GRADEBOOK_FILE).exists():
        for row in read_rows(out_dir):
            found.append(Found(row.student_id, row.display_name, _resolve(row.report.submission.path, out_dir)))
        return found, problems
    for report_path in sorted(out_dir.glob(f"*{REPORT_SUFFIX}")):
        try:
            report = read_report(report_path)
        except Exception as exc:  # a stray JSON file is not a report; say so and go on
            problems.append(f"{report_path.name}: not a grading report ({type(exc).__name__}); skipped")
            continue
        found.append(Found(report.submission.id, "", _resolve(report.submission.path, out_dir)))
    return found, problems


def batch_assignment(out_dir: Path) -> str | None:
    """The assignment a graded batch is of, as its reports record it (None for a folder with no report)."""
    from grader.grading.report import read_report

    for report_path in sorted(out_dir.glob(f"*{REPORT_SUFFIX}")):
        try:
            return read_report(report_path).assignment
        except Exception:  # not a report: look at the next file
            continue
    return None


def archive_files(archive: Path, scratch: Path) -> tuple[list[Found], list[str]]:
    """An earlier year: a graded OUT folder, a folder of submissions, or a .zip of them."""
    from grader.batch.intake import collect

    if archive.is_dir() and any(archive.glob(f"*{REPORT_SUFFIX}")):
        found, problems = batch_files(archive)
    else:
        intake = collect([archive], "", scratch)
        found = [Found(c.student_id, c.display_name, c.path) for c in intake.candidates]
        problems = list(intake.problems)
    return [Found(f"{archive_label(archive)}/{f.id}", f.label, f.path) for f in found], problems


def archive_label(archive: Path) -> str:
    """How the report names an earlier year: its folder's name, or its .zip's without the suffix."""
    return archive.stem if archive.suffix == ".zip" else archive.name


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(cell index, source) of every code cell, through the grader's own loader; raises InvalidSubmission."""
    return [(cell.index, cell.source) for cell in load_submission(path).cells]


def loaded(found: list[Found], problems: list[str]) -> Iterator[tuple[Found, list[tuple[int, str]]]]:
    """Each submission's cells; one that cannot be read is listed in ``problems`` and left out."""
    for item in found:
        try:
            yield item, code_cells(item.path)
        except InvalidSubmission as exc:
            problems.append(f"{item.id}: not compared: {exc}")


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """Where archives in .zip form are unpacked for the duration of one comparison."""
    return tempfile.TemporaryDirectory(prefix="grader-similarity-")
