"""A TA's changes to automatic scores: an append-only log in the gradebook, applied at every export (issue 15).

Each entry says who, when, why and against which report (the submission's sha256, the assignment's
fingerprint and the automatic score it was made against). Nothing is ever deleted: ``undo`` and
``confirm`` are entries too. A regrade keeps every adjustment; one whose test no longer exists, or whose
automatic score changed under it, is flagged for review (shown in every export, the row marked as needing
attention) until the TA confirms it against the new report or undoes it: never silently dropped, never
silently applied.

Order of application (docs/lms.md): the automatic score, then per-test adjustments (each test kept within
0 and its points), then adjustments of the whole submission's points, then the late penalty, then a
``--set-score`` of the whole submission (an academic-integrity zero is final), kept within 0 and the maximum.
"""

# Over ~400 lines: the log, its application order and the review flags belong together; splitting
# the flags from the arithmetic would spread one rule over two files.

from __future__ import annotations

import getpass
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from grader.batch.gradebook import GRADEBOOK_FILE, Row, read_rows
from grader.batch.late import (
    Extension,
    LateOutcome,
    SubmissionTime,
    describe,
    file_time,
    late_outcome,
    parse_time,
)
from grader.batch.roster import Roster, RosterEntry, RosterMatch, match_roster
from grader.errors import UsageError
from grader.grading.report import SubmissionReport, valid_text
from grader.grading.spec import FeedbackPolicy, LatePolicy
from grader.grading.student_view import (
    StudentGradeChange,
    StudentReport,
    sanitize_text,
    student_view,
    with_grade_changes,
)

Kind = Literal["points", "set_score", "undo", "confirm"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS adjustments (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id    TEXT NOT NULL,
    test          TEXT,
    kind          TEXT NOT NULL,
    value         REAL,
    reason        TEXT NOT NULL,
    show_reason   INTEGER NOT NULL,
    author        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    against_sha256      TEXT,
    against_fingerprint TEXT NOT NULL,
    against_score REAL,
    target        INTEGER
);
"""
_COLUMNS = ("seq", "student_id", "test", "kind", "value", "reason", "show_reason", "author", "created_at",
            "against_sha256", "against_fingerprint", "against_score", "target")  # fmt: skip


class Adjustment(BaseModel):
    """One entry of the log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(description="Position in the log (1, 2, ...); what undo and confirm name.")
    student_id: str = Field(description="Whose score it changes.")
    test: str | None = Field(description="The test it changes; null: the whole submission.")
    kind: Kind = Field(description="points: add value; set_score: set it; undo/confirm: act on entry `target`.")
    value: float | None = Field(description="Points added, or the score set; null for undo and confirm.")
    reason: str = Field(description="Why, in the TA's words.")
    show_reason: bool = Field(description="Whether the student's feedback shows the reason.")
    author: str = Field(description="Who made it.")
    created_at: float = Field(description="When, as a Unix time.")
    against_sha256: str | None = Field(description="sha256 of the submission graded in the report it was made against.")
    against_fingerprint: str = Field(description="Assignment fingerprint of that report.")
    against_score: float | None = Field(
        description="The automatic score (the test's or the total) it was made against."
    )
    target: int | None = Field(description="The entry undone or confirmed.")


class Applied(BaseModel):
    """An adjustment as it acts on the current report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adjustment: Adjustment
    change: float = Field(description="Points it changed the score by (0 when not applied).")
    applied: bool = Field(description="False when its test no longer exists.")
    flag: str = Field("", description="Why a TA must review it; empty when it is current.")


def _connect(folder: Path, write: bool) -> sqlite3.Connection:
    path = folder / GRADEBOOK_FILE
    if not path.exists():
        raise UsageError(
            f"{folder} has no {GRADEBOOK_FILE}; grade into it first with `grader grade ... --out {folder}`"
        )
    if not write:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=30)  # a running batch commits often and briefly
    db.executescript(SCHEMA)
    return db


def read_log(folder: Path) -> list[Adjustment]:
    """Every entry, oldest first; empty for a gradebook that never had one."""
    db = _connect(folder, write=False)
    try:
        found = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM adjustments ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # no such table: nothing adjusted yet
        return []
    finally:
        db.close()
    return [Adjustment(**dict(zip(_COLUMNS, values, strict=True))) for values in found]


def _row(folder: Path, student_id: str) -> Row:
    rows = {row.student_id: row for row in read_rows(folder)}
    if student_id not in rows:
        known = ", ".join(sorted(rows)[:10]) + (", ..." if len(rows) > 10 else "")
        raise UsageError(f"no student {student_id!r} in {folder}'s gradebook (students: {known})")
    return rows[student_id]


def _automatic(report: SubmissionReport, test: str | None) -> float | None:
    if test is None:
        return report.score
    return next((t.score for t in report.tests if t.name == test), None)


def add(
    folder: Path,
    student_id: str,
    *,
    test: str | None,
    points: float | None,
    set_score: float | None,
    reason: str,
    show_reason: bool = False,
    author: str | None = None,
) -> Adjustment:
    """Append one adjustment after checking it against the student's current report."""
    if (points is None) == (set_score is None):
        raise UsageError("give exactly one of --points P or --set-score S")
    if not reason.strip():
        raise UsageError("--reason is required: say why, for the log (and for the student with --show-reason)")
    row = _row(folder, student_id)
    report = row.report
    if report.status == "grader_error":
        raise UsageError(f"{student_id} has a grader error, no score to adjust; rerun the grading first")
    if test is not None and all(t.name != test for t in report.tests):
        names = ", ".join(t.name for t in report.tests) or "none"
        raise UsageError(f"{student_id}'s report has no test {test!r} (tests: {names})")
    ceiling = report.max_score if test is None else next(t.max_score for t in report.tests if t.name == test)
    if set_score is not None and not 0 <= set_score <= ceiling:
        raise UsageError(f"--set-score {set_score:g} is outside 0..{ceiling:g}")
    kind: Kind = "points" if points is not None else "set_score"
    value = points if points is not None else set_score
    return _append(folder, student_id, test, kind, value, reason, show_reason, author, report, row.fingerprint, None)


def undo(folder: Path, seq: int, reason: str = "", author: str | None = None) -> Adjustment:
    """Append an entry that cancels adjustment ``seq``."""
    target = _target(folder, seq)
    row = _row(folder, target.student_id)
    return _append(folder, target.student_id, target.test, "undo", None, reason or "undone", False, author,
                   row.report, row.fingerprint, seq)  # fmt: skip


def confirm(folder: Path, seq: int, reason: str = "", author: str | None = None) -> Adjustment:
    """Append an entry that re-anchors adjustment ``seq`` on the student's current report (clears its flag)."""
    target = _target(folder, seq)
    row = _row(folder, target.student_id)
    return _append(folder, target.student_id, target.test, "confirm", None, reason or "confirmed after regrade",
                   False, author, row.report, row.fingerprint, seq)  # fmt: skip


def _target(folder: Path, seq: int) -> Adjustment:
    log = read_log(folder)
    found = next((a for a in log if a.seq == seq), None)
    if found is None or found.kind not in ("points", "set_score"):
        raise UsageError(f"no adjustment number {seq} in {folder} (see `grader adjust list {folder}`)")
    if any(a.kind == "undo" and a.target == seq for a in log):
        raise UsageError(f"adjustment {seq} is already undone")
    return found


def _append(
    folder: Path, student_id: str, test: str | None, kind: Kind, value: float | None, reason: str,
    show_reason: bool, author: str | None, report: SubmissionReport, fingerprint: str, target: int | None,
) -> Adjustment:  # fmt: skip
    who = author or os.environ.get("GRADER_TA") or getpass.getuser()
    values = (student_id, test, kind, value, valid_text(reason.strip()), int(show_reason), valid_text(who), time.time(),
              report.submission.sha256, fingerprint, _automatic(report, test), target)  # fmt: skip
    db = _connect(folder, write=True)
    try:
        insert = f"INSERT INTO adjustments ({', '.join(_COLUMNS[1:])}) VALUES ({', '.join('?' * 12)})"
        cursor = db.execute(insert, values)
        seq = int(cursor.lastrowid or 0)
    finally:
        db.close()
    return Adjustment(**dict(zip(_COLUMNS, (seq, *values), strict=True)))


def active(log: list[Adjustment], student_id: str) -> list[Adjustment]:
    """The student's adjustments that are not undone, each re-anchored by its latest confirm."""
    undone = {a.target for a in log if a.kind == "undo"}
    anchors = {a.target: a for a in log if a.kind == "confirm"}
    found = []
    for entry in log:
        if entry.student_id != student_id or entry.kind not in ("points", "set_score") or entry.seq in undone:
            continue
        anchor = anchors.get(entry.seq)
        if anchor is not None:
            entry = entry.model_copy(update={"against_score": anchor.against_score,
                                             "against_sha256": anchor.against_sha256})  # fmt: skip
        found.append(entry)
    return found


def _flag(entry: Adjustment, current: float | None) -> str:
    if entry.against_score is None or current is None or abs(entry.against_score - current) < 1e-9:
        return ""
    what = f"test {entry.test}" if entry.test else "the automatic score"
    return (
        f"adjustment {entry.seq}: {what} was {entry.against_score:g} when it was made and is {current:g} now; "
        f"review it: `grader adjust confirm OUT {entry.seq}` or `grader adjust undo OUT {entry.seq}`"
    )


def apply_tests(report: SubmissionReport, entries: list[Adjustment]) -> tuple[dict[str, float], list[Applied]]:
    """Per-test scores after the per-test adjustments, and what each did."""
    scores = {t.name: t.score for t in report.tests}
    ceilings = {t.name: t.max_score for t in report.tests}
    done = []
    for entry in entries:
        if entry.test is None:
            continue
        if entry.test not in scores:
            flag = (f"adjustment {entry.seq}: test {entry.test} is no longer in the report, so it was not applied; "
                    f"`grader adjust undo OUT {entry.seq}`, then adjust the test that replaced it")  # fmt: skip
            done.append(Applied(adjustment=entry, change=0.0, applied=False, flag=flag))
            continue
        before = scores[entry.test]
        flag = _flag(entry, next(t.score for t in report.tests if t.name == entry.test))
        value = entry.value or 0.0
        after = before + value if entry.kind == "points" else value
        scores[entry.test] = min(max(after, 0.0), ceilings[entry.test])
        done.append(Applied(adjustment=entry, change=scores[entry.test] - before, applied=True, flag=flag))
    return scores, done


def apply_total(
    report: SubmissionReport, entries: list[Adjustment], score: float, stage: Literal["points", "set_score"]
) -> tuple[float, list[Applied]]:
    """The total after the whole-submission adjustments of one kind (points before the penalty, set after)."""
    done = []
    for entry in entries:
        if entry.test is not None or entry.kind != stage:
            continue
        before = score
        score = score + (entry.value or 0.0) if stage == "points" else entry.value or 0.0
        score = min(max(score, 0.0), report.max_score)
        done.append(Applied(adjustment=entry, change=score - before, applied=True, flag=_flag(entry, report.score)))
    return score, done


# ------------------------------------------------------------------------------------ final grades


@dataclass(frozen=True)
class GradeLine:
    """One student in every export: the automatic score, what changed it, the final score, what needs a look."""

    student_id: str
    name: str
    status: str  # the report's status, "missing" (on the roster, nothing submitted) or "not_graded"
    automatic_score: float | None
    score: float | None
    max_score: float
    late: LateOutcome | None = None
    applied: list[Applied] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    view: StudentReport | None = None
    row: Row | None = None
    roster: RosterEntry | None = None

    @property
    def adjustment_points(self) -> float:
        return sum(a.change for a in self.applied)

    @property
    def penalty_points(self) -> float:
        return self.late.penalty_points if self.late is not None else 0.0

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    def message(self, limit: int = 200) -> str:
        """One short line: what needs attention, else the student view's message (never a traceback)."""
        text = "needs attention: " + "; ".join(self.attention) if self.attention else ""
        if not text and self.view is not None:
            text = self.view.message
        if not text and self.status == "missing":
            text = "no submission"
        line = " ".join(sanitize_text(text, keep_newlines=False).split())
        return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class LateContext:
    """What late work needs: the policy, extensions and submission times (each optional but the policy)."""

    policy: LatePolicy
    extensions: dict[str, Extension] = field(default_factory=dict)
    times: dict[str, SubmissionTime] = field(default_factory=dict)


def grade_lines(
    rows: list[Row],
    log: list[Adjustment],
    policy: FeedbackPolicy,
    late: LateContext | None = None,
    roster: Roster | None = None,
    not_graded: dict[str, str] | None = None,
) -> list[GradeLine]:
    """A line per student in the gradebook, per student on the roster who submitted nothing, and per student
    whose every submission needs attention (``not_graded``: id -> why, from the last batch's intake)."""
    match = match_roster(roster, [(r.student_id, r.display_name) for r in rows]) if roster else None
    lines = [_line(row, log, policy, late, roster, match) for row in rows]
    graded = {row.student_id for row in rows}
    for student_id, why in sorted((not_graded or {}).items()):
        if student_id not in graded:
            entry = match.by_student.get(student_id) if match else None
            lines.append(GradeLine(student_id, entry.name if entry else "", "not_graded", None, None, 0.0,
                                   attention=[why], roster=entry))  # fmt: skip
    for entry in match.missing if match else []:
        student_id = entry.ids[0] if entry.ids else ""
        if student_id in (not_graded or {}):
            continue
        lines.append(GradeLine(student_id, entry.name, "missing", None, None, rows[0].report.max_score if rows else 0.0,
                               roster=entry))  # fmt: skip
    return lines


def _line(
    row: Row, log: list[Adjustment], policy: FeedbackPolicy, late: LateContext | None,
    roster: Roster | None, match: RosterMatch | None,
) -> GradeLine:  # fmt: skip
    report, sid = row.report, row.student_id
    entry = match.by_student.get(sid) if match else None
    attention = [row.attention] if row.attention else []
    if report.status == "grader_error":
        attention.append("grader error: not graded; rerun it (summary.html has the command)")
    if match is not None and sid in match.unknown:
        attention.append(f"not on the roster {roster.source if roster else ''}".strip())
    if match is not None and sid in match.ambiguous:
        attention.append(match.ambiguous[sid])
    entries = active(log, sid)
    view = student_view(report, policy)
    if report.score is None:
        flags = [f"adjustment {e.seq} waits for a grade (grader error)" for e in entries]
        return GradeLine(sid, _name(row, entry), report.status, None, None, report.max_score,
                         attention=attention + flags, view=view, row=row, roster=entry)  # fmt: skip
    test_scores, applied = apply_tests(report, entries)
    raw = report.score + sum(a.change for a in applied)
    raw, points = apply_total(report, entries, raw, "points")
    outcome, warnings = _late(row, late, roster, entry, raw)
    after = raw - (outcome.penalty_points if outcome else 0.0)
    final, settled = apply_total(report, entries, after, "set_score")
    changes = [_change(a) for a in applied + points if a.applied]
    if outcome is not None and outcome.penalty_points:
        changes.append(
            StudentGradeChange(kind="late_penalty", points=-outcome.penalty_points, reason=describe(outcome))
        )
    changes += [_change(a) for a in settled]
    applied += points + settled
    attention += [a.flag for a in applied if a.flag]
    view = with_grade_changes(view, final, test_scores, changes)
    return GradeLine(sid, _name(row, entry), report.status, report.score, final, report.max_score, outcome, applied,
                     attention, warnings, view, row, entry)  # fmt: skip


def _name(row: Row, entry: RosterEntry | None) -> str:
    return entry.name if entry is not None and entry.name else row.display_name


def _change(applied: Applied) -> StudentGradeChange:
    entry = applied.adjustment
    return StudentGradeChange(kind="adjustment", test=entry.test, points=applied.change,
                              reason=entry.reason if entry.show_reason else "")  # fmt: skip


def _late(
    row: Row, late: LateContext | None, roster: Roster | None, entry: RosterEntry | None, raw: float
) -> tuple[LateOutcome | None, list[str]]:
    if late is None:
        return None, []
    sid, warnings = row.student_id, []
    submitted = late.times.get(sid) or _lms_time(roster, entry, late.policy)
    if submitted is None:
        submitted = file_time(Path(row.report.submission.path), sid, ZoneInfo(late.policy.timezone))
        if submitted is not None:
            warnings.append("submission time taken from the file's modification time; give the LMS export's times")
    if submitted is None:
        warnings.append("submission time unknown: counted as on time")
    outcome = late_outcome(late.policy, submitted, late.extensions.get(sid), raw, row.report.max_score)
    return outcome, warnings


def _lms_time(roster: Roster | None, entry: RosterEntry | None, policy: LatePolicy) -> SubmissionTime | None:
    """Moodle's "Last modified (submission)", read in the policy's time zone (Moodle writes no zone)."""
    if roster is None or entry is None or roster.format != "moodle-worksheet":
        return None
    column = roster.column("Last modified (submission)")
    cell = roster.rows[entry.row][column].strip() if column is not None and column < len(roster.rows[entry.row]) else ""
    if cell in ("", "-"):
        return None
    try:
        at = parse_time(cell, ZoneInfo(policy.timezone))
    except ValueError:
        return None
    return SubmissionTime(student_id=entry.ids[0], at=at, source="lms export")


def final_report(line: GradeLine) -> SubmissionReport:
    """The line's report with the final scores in it, for a writer that makes its own student view."""
    if line.row is None:
        raise ValueError(f"{line.student_id} has no report")
    report = line.row.report
    if line.view is None or not line.view.grade_changes:
        return report
    scores = {t.name: t.score for t in line.view.tests}
    tests = [t.model_copy(update={"score": scores.get(t.name, t.score)}) for t in report.tests]
    return report.model_copy(update={"score": line.score, "tests": tests})
