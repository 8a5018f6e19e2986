"""Late work: when each student submitted, their deadline (due date or extension) and the penalty (issue 15).

The policy is the assignment's ``[late]`` table (``grader.grading.spec.LatePolicy``). Submission times come,
in this order of trust, from a CSV the TA gives (``--submission-times``), from the LMS export (Moodle's
grading worksheet, "Last modified (submission)"), else from the files' modification times (an archive's
member times, kept at extraction), which a warning says are only as good as the export that set them.
Extensions are a CSV, ``student_id,due`` with an absolute date-time or ``+3d`` / ``+36h`` after the due date.

Penalty arithmetic: late by ``t`` = submitted - deadline. ``t <= grace`` is on time. Otherwise every started
day counts (``ceil(t / 24 h)``, the grace not subtracted: 1 minute past the grace is one day late), and the
penalty is ``min(days * penalty_percent_per_day, max_penalty_percent)`` percent of the points available (or
of the points earned, ``penalty_basis = "score"``), never more than the score itself.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from grader.batch.paths import safe_path_component
from grader.errors import UsageError
from grader.grading.spec import LatePolicy

TimeSource = Literal["times file", "lms export", "file time"]
_RELATIVE = re.compile(r"^\+\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>d|h|days?|hours?)$", re.IGNORECASE)
_ID_HEADERS = ("student_id", "id", "student", "participant", "identifier")
_TIME_HEADERS = ("submitted_at", "submitted", "time", "timestamp", "last modified (submission)")
_DUE_HEADERS = ("due", "extension", "new_due", "extended_due", "until")
# Moodle's userdate() in English ("strftimedaydatetime": '%A, %d %B %Y, %I:%M %p'), as its worksheets carry it.
MOODLE_TIME_FORMATS = ("%A, %d %B %Y, %I:%M %p", "%A, %d %B %Y, %H:%M", "%d %B %Y, %I:%M %p", "%d %B %Y, %H:%M")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmissionTime(_Model):
    student_id: str = Field(description="Safe student id.")
    at: datetime = Field(description="When the student submitted, time-zone aware.")
    source: TimeSource = Field(description="Where the time came from; 'file time' is the least trustworthy.")


class Extension(_Model):
    student_id: str = Field(description="Safe student id.")
    due: datetime = Field(description="The student's own deadline, time-zone aware.")
    note: str = Field("", description="Why, as the extensions file says.")


class LateOutcome(_Model):
    """What the due date means for one submission."""

    deadline: datetime = Field(description="The deadline that applied: the due date or the student's extension.")
    extended: bool = Field(description="The deadline is an extension.")
    submitted_at: datetime | None = Field(description="When the student submitted; null when unknown.")
    time_source: TimeSource | None = Field(description="Where submitted_at came from.")
    late_minutes: float = Field(description="Minutes after the deadline (0 when on time or unknown).")
    days_late: int = Field(description="Started days late after the grace; 0 when on time.")
    penalty_percent: float = Field(description="Penalty in percent of the basis, after the cap.")
    penalty_points: float = Field(description="Points taken off.")

    @property
    def late(self) -> bool:
        return self.days_late > 0


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date-time (``2026-11-20 23:59``, with or without offset) or Moodle's English date; zone if none."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for layout in MOODLE_TIME_FORMATS:
            try:
                parsed = datetime.strptime(value, layout)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{value!r} is not a date-time (use ISO 8601, e.g. 2026-11-20T23:59:00+01:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _rows(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the {what} ({exc}); give a UTF-8 CSV file") from None
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    if not rows:
        raise UsageError(f"{path}: the {what} is empty")
    return [cell.strip().casefold() for cell in rows[0]], rows


def _column(header: list[str], names: tuple[str, ...], fallback: int) -> int:
    return next((header.index(name) for name in names if name in header), fallback)


def _student(raw: str) -> str:
    """The safe id of a cell: ``12368``, or Moodle's ``Participant 12368``."""
    raw = raw.strip()
    found = re.fullmatch(r"\D+\s(\d+)", raw)
    return safe_path_component(found.group(1) if found else raw)


def read_submission_times(path: Path, zone: ZoneInfo) -> dict[str, SubmissionTime]:
    """``student_id,submitted_at`` rows (a header naming them, or the first two columns)."""
    header, rows = _rows(path, "submission times file")
    id_col, time_col = _column(header, _ID_HEADERS, 0), _column(header, _TIME_HEADERS, 1)
    body = rows[1:] if header[id_col] in _ID_HEADERS or header[time_col] in _TIME_HEADERS else rows
    times: dict[str, SubmissionTime] = {}
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        if max(id_col, time_col) >= len(row) or row[time_col].strip() in ("", "-"):
            continue
        try:
            at = parse_time(row[time_col], zone)
        except ValueError as exc:
            raise UsageError(f"{path}, line {number}: {exc}") from None
        student = _student(row[id_col])
        times[student] = SubmissionTime(student_id=student, at=at, source="times file")
    return times


def read_extensions(path: Path, policy: LatePolicy) -> dict[str, Extension]:
    """``student_id,due[,note]``: due is a date-time (in the policy's zone unless it has an offset) or ``+2d``."""
    zone = ZoneInfo(policy.timezone)
    header, rows = _rows(path, "extensions file")
    id_col, due_col = _column(header, _ID_HEADERS, 0), _column(header, _DUE_HEADERS, 1)
    body = rows[1:] if header[id_col] in _ID_HEADERS or header[due_col] in _DUE_HEADERS else rows
    found: dict[str, Extension] = {}
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        if max(id_col, due_col) >= len(row):
            raise UsageError(f"{path}, line {number}: expected student_id,due; got {','.join(row)!r}")
        cell = row[due_col].strip()
        relative = _RELATIVE.match(cell)
        try:
            if relative:
                hours = float(relative.group("n")) * (24 if relative.group("unit").lower().startswith("d") else 1)
                due = policy.due + timedelta(hours=hours)
            else:
                due = parse_time(cell, zone)
        except ValueError as exc:
            raise UsageError(f"{path}, line {number}: {exc}; or write +3d / +36h after the due date") from None
        note = ",".join(cell.strip() for i, cell in enumerate(row) if i not in (id_col, due_col))
        student = _student(row[id_col])
        found[student] = Extension(student_id=student, due=due, note=note)
    return found


def file_time(path: Path, student_id: str, zone: ZoneInfo) -> SubmissionTime | None:
    """The file's modification time. A file extracted from an LMS archive (under ``OUT/extracted``) has the
    member's time, which a zip stores as the LMS server's wall-clock time without a zone: it is read in ``zone``
    (the [late] time zone); any other file's time is an instant."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    if "extracted" in path.parts:  # intake set it with time.mktime from the member's naive date_time
        at = datetime.fromtimestamp(mtime).replace(tzinfo=zone)
    else:
        at = datetime.fromtimestamp(mtime).astimezone()
    return SubmissionTime(student_id=student_id, at=at, source="file time")


def late_outcome(
    policy: LatePolicy,
    submitted: SubmissionTime | None,
    extension: Extension | None,
    score: float | None,
    max_score: float,
) -> LateOutcome:
    """Deadline, lateness and penalty of one submission; an unknown time is never late (and says so)."""
    deadline = extension.due if extension is not None else policy.due
    late_s = (submitted.at - deadline).total_seconds() if submitted is not None else 0.0
    days = 0 if late_s <= policy.grace_minutes * 60 else math.ceil(late_s / 86400)
    percent = min(days * policy.penalty_percent_per_day, policy.max_penalty_percent)
    basis = max_score if policy.penalty_basis == "max_score" else (score or 0.0)
    points = min(round(basis * percent / 100, 6), max(score or 0.0, 0.0))
    return LateOutcome(
        deadline=deadline,
        extended=extension is not None,
        submitted_at=submitted.at if submitted is not None else None,
        time_source=submitted.source if submitted is not None else None,
        late_minutes=max(late_s, 0.0) / 60,
        days_late=days,
        penalty_percent=percent,
        penalty_points=points,
    )


def describe(outcome: LateOutcome) -> str:
    """One line for a TA or a student: ``2 days late (submitted 2026-11-22 10:00 +01:00): -20 % (-4 points)``."""
    if outcome.submitted_at is None:
        return "submission time unknown: counted as on time"
    when = outcome.submitted_at.strftime("%Y-%m-%d %H:%M %z")
    deadline = "extended deadline" if outcome.extended else "due date"
    if not outcome.late:
        return f"on time (submitted {when}, {deadline} {outcome.deadline.strftime('%Y-%m-%d %H:%M %z')})"
    days = f"{outcome.days_late} day{'s' if outcome.days_late != 1 else ''}"
    return (
        f"{days} late (submitted {when}, {deadline} {outcome.deadline.strftime('%Y-%m-%d %H:%M %z')}): "
        f"-{outcome.penalty_percent:g} %"
    )
