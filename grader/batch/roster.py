"""The class roster: who should have submitted, with names and LMS identifiers (issue 15).

Read from one CSV, its kind recognised by its header (docs/lms.md cites each format):
- Moodle's grading worksheet ("Download grading worksheet"): Identifier ("Participant 12368", the number
  Moodle also puts in the file names of its submission zip), Full name, Email address, ..., Last modified
  (submission). Kept whole (header and rows), so that the worksheet written back keeps them exactly.
- Moodle's participants list ("Download table data"): First name, Last name (or Surname), Email address.
  It has no participant number, so students are matched by name to the names in the submission files.
- Canvas's gradebook export: Student, ID, SIS User ID, SIS Login ID, Section (a "Points Possible" row is
  skipped). A submission's id is matched against ID, SIS User ID and SIS Login ID.
- A plain CSV: ``id,name`` (a header naming ``id``/``student_id`` and ``name``, or just two columns).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.batch.paths import safe_path_component
from grader.errors import UsageError
from grader.grading.report import printable

RosterFormat = Literal["moodle-worksheet", "moodle-participants", "canvas", "plain"]
MOODLE_IDENTIFIER = "Identifier"  # get_string('recordid', 'assign'), English
_PARTICIPANT = re.compile(r"^(?P<prefix>\D*?)\s*(?P<number>\d+)$")
CANVAS_ID_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RosterEntry(_Model):
    ids: list[str] = Field(description="Safe ids this student may submit under; empty: match by name only.")
    name: str = Field(description="Full name, printable.")
    email: str = Field("", description="Email address, when the roster has one.")
    row: int = Field(description="Index of the student's row in Roster.rows.")


class Roster(_Model):
    format: RosterFormat = Field(description="Which kind of file it was.")
    source: str = Field(description="The file's name, for messages.")
    header: list[str] = Field(description="The header exactly as read.")
    rows: list[list[str]] = Field(description="Every student row exactly as read (worksheets are written back).")
    entries: list[RosterEntry] = Field(description="One per student row.")

    def column(self, name: str) -> int | None:
        return self.header.index(name) if name in self.header else None


class RosterMatch(_Model):
    """The roster joined with the students found: names for every id, who is missing, who is unknown."""

    by_student: dict[str, RosterEntry] = Field(description="Student id -> their roster entry.")
    missing: list[RosterEntry] = Field(description="On the roster, nothing submitted.")
    unknown: list[str] = Field(description="Submitted, not on the roster.")
    ambiguous: dict[str, str] = Field(description="Student id -> why the roster could not tell who it is.")


def name_key(name: str) -> tuple[str, ...]:
    """Equal for "Müller Anna", "Anna Müller" and "anna  MULLER": words folded, accents off, order ignored."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    return tuple(sorted(re.findall(r"\w+", folded.casefold())))


def _read(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the roster ({exc}); give a UTF-8 CSV file") from None
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in row)]
    if len(rows) < 1:
        raise UsageError(f"{path}: the roster is empty")
    return rows


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _find(header: list[str], *names: str) -> int | None:
    folded = [cell.strip().casefold() for cell in header]
    return next((folded.index(n.casefold()) for n in names if n.casefold() in folded), None)


def participant_number(identifier: str) -> str:
    """``Participant 12368`` -> ``12368`` (Moodle strips its 'hiddenuser' prefix the same way on import)."""
    found = _PARTICIPANT.match(identifier.strip())
    return found.group("number") if found else ""


def read_roster(path: Path) -> Roster:
    """Read any of the four roster kinds; UsageError naming the file when it is none of them."""
    rows = _read(path)
    header, body = [cell.strip() for cell in rows[0]], rows[1:]
    label = printable(path.name)
    if _find(header, MOODLE_IDENTIFIER) is not None:
        return _moodle_worksheet(label, rows[0], body)
    if len(header) > 3 and "Student" in header[0] and "ID" in header[1]:  # Canvas's own test (gradebook_importer)
        return _canvas(label, rows[0], body)
    if _find(header, "First name") is not None and _find(header, "Last name", "Surname") is not None:
        return _moodle_participants(label, rows[0], body)
    return _plain(label, rows)


def _moodle_worksheet(label: str, header: list[str], body: list[list[str]]) -> Roster:
    id_col, name_col = _find(header, MOODLE_IDENTIFIER), _find(header, "Full name")
    email_col = _find(header, "Email address")
    entries = []
    for index, row in enumerate(body):
        number = participant_number(_cell(row, id_col))
        if not number:
            raise UsageError(f"{label}, line {index + 2}: Identifier {_cell(row, id_col)!r} is not 'Participant N'")
        entries.append(RosterEntry(ids=[number], name=printable(_cell(row, name_col)), email=_cell(row, email_col),
                                   row=index))  # fmt: skip
    return Roster(format="moodle-worksheet", source=label, header=header, rows=body, entries=entries)


def _canvas(label: str, header: list[str], body: list[list[str]]) -> Roster:
    columns = [_find(header, name) for name in CANVAS_ID_COLUMNS]
    entries: list[RosterEntry] = []
    kept: list[list[str]] = []
    for row in body:
        first = _cell(row, 0)
        if "Points Possible" in first or all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c) for c in row):
            continue  # not a student: Canvas's second row, or its posting-policy row
        ids = [safe_path_component(v) for v in (_cell(row, c) for c in columns) if v]
        entries.append(RosterEntry(ids=list(dict.fromkeys(ids)), name=printable(_canvas_name(first)), row=len(kept)))
        kept.append(row)
    return Roster(format="canvas", source=label, header=header, rows=kept, entries=entries)


def _canvas_name(sortable: str) -> str:
    """Canvas writes "Last, First"; show "First Last"."""
    last, comma, first = sortable.partition(",")
    return f"{first.strip()} {last.strip()}" if comma else sortable.strip()


def _moodle_participants(label: str, header: list[str], body: list[list[str]]) -> Roster:
    first, last = _find(header, "First name"), _find(header, "Last name", "Surname")
    email = _find(header, "Email address")
    entries = [
        RosterEntry(
            ids=[],
            name=printable(f"{_cell(row, first)} {_cell(row, last)}".strip()),
            email=_cell(row, email),
            row=index,
        )  # fmt: skip
        for index, row in enumerate(body)
    ]
    return Roster(format="moodle-participants", source=label, header=header, rows=body, entries=entries)


def _plain(label: str, rows: list[list[str]]) -> Roster:
    header = [cell.strip() for cell in rows[0]]
    id_col = _find(header, "student_id", "id", "student id", "participant", "identifier")
    name_col = _find(header, "name", "full name", "display_name")
    body = rows[1:] if id_col is not None else rows
    id_col = 0 if id_col is None else id_col
    name_col = (1 if len(rows[0]) > 1 else None) if name_col is None else name_col
    entries = []
    for index, row in enumerate(body):
        raw = _cell(row, id_col)
        number = participant_number(raw) if raw.lower().startswith("participant") else raw
        if number:
            entries.append(RosterEntry(ids=[safe_path_component(number)], name=printable(_cell(row, name_col)),
                                       row=index))  # fmt: skip
    if not entries:
        raise UsageError(
            f"{label}: not a roster this grader reads (a Moodle grading worksheet or participants list, "
            "a Canvas gradebook export, or id,name rows)"
        )
    return Roster(format="plain", source=label, header=header if body is not rows else [], rows=body, entries=entries)


def match_roster(roster: Roster, students: Iterable[tuple[str, str]]) -> RosterMatch:
    """Join ``(student_id, display name)`` pairs with the roster: by id, else (participants list) by name."""
    students = list(students)
    by_id: dict[str, RosterEntry] = {}
    for entry in roster.entries:
        for student_id in entry.ids:
            by_id.setdefault(student_id, entry)
    by_name: dict[tuple[str, ...], list[RosterEntry]] = {}
    for entry in roster.entries:
        if not entry.ids:
            by_name.setdefault(name_key(entry.name), []).append(entry)
    found: dict[str, RosterEntry] = {}
    unknown: list[str] = []
    ambiguous: dict[str, str] = {}
    for student_id, display in students:
        if student_id in by_id:
            found[student_id] = by_id[student_id]
            continue
        named = by_name.get(name_key(display), []) if display else []
        if len(named) == 1:
            found[student_id] = named[0]
        elif len(named) > 1:
            ambiguous[student_id] = f"{len(named)} students on the roster are called {display!r}"
        else:
            unknown.append(student_id)
    taken = {entry.row for entry in found.values()}
    missing = [entry for entry in roster.entries if entry.row not in taken]
    return RosterMatch(by_student=found, missing=missing, unknown=unknown, ambiguous=ambiguous)
