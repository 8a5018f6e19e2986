"""LMS grade imports: Moodle's grading worksheet and Canvas's gradebook CSV, read and written (issue 15).

Formats and the sources they were taken from are in docs/lms.md. In short:
- Moodle (mod/assign/feedback/offline) finds its columns by their English header names: "Identifier"
  ("Participant N"), "Grade" and "Last modified (grade)" are required, a "Feedback comments" column is
  imported when present; an empty Grade is skipped, a grade above the maximum is skipped, and a grade
  changed in Moodle after "Last modified (grade)" is not overwritten. Given Moodle's own worksheet as the
  roster, the worksheet written back is that file with Grade and Feedback comments filled in: every other
  column, the header and every Identifier stay exactly as Moodle wrote them.
- Canvas (GradebookImporter) wants the header to start with "Student", "ID", then optionally "SIS User ID"
  and "SIS Login ID", then "Section", then one column per assignment; a row whose first cell holds
  "Points Possible" gives the points. Students are found by ID, then SIS ids, then name.

A row that needs attention (stale grade, duplicate, flagged adjustment, grader error) never carries a grade
here: Moodle's Grade keeps the worksheet's value (empty: skipped on import) and its Status cell says why;
Canvas's cell is left empty (not imported). Both lists are also in summary.html.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.batch.adjustments import GradeLine
from grader.batch.roster import Roster, participant_number
from grader.grading.student_view import csv_cell

MOODLE_HEADER = [
    "Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
    "Last modified (submission)", "Last modified (grade)", "Feedback comments",
]  # fmt: skip
MOODLE_PARTICIPANT = "Participant "  # get_string('hiddenuser', 'assign'), English, with its trailing space
ATTENTION_STATUS = "dl-grader: needs attention, not graded"
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "    Points Possible"  # Canvas's own export indents it; the importer looks for the words


def _number(value: float) -> str:
    """A grade as Moodle's unformat_float and Canvas read it: '.' decimals, at most two places."""
    return f"{round(value, 2):g}"


def _write(path: Path, header: list[str], rows: list[list[str]], bom: bool) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8", newline="")
    return path


def _scaled(line: GradeLine, moodle_max: float | None) -> float | None:
    """The final score on Moodle's scale when the worksheet's maximum differs from the grader's."""
    if line.score is None:
        return None
    if moodle_max is None or line.max_score <= 0 or abs(moodle_max - line.max_score) < 1e-9:
        return line.score
    return line.score * moodle_max / line.max_score


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def moodle_feedback(line: GradeLine) -> str:
    """The Feedback comments cell: one short line for the student, from the student view only."""
    view = line.view
    if view is None:
        return ""
    parts = [f"{_number(view.score or 0)} / {_number(view.max_score)} points"] if view.score is not None else []
    if view.message:
        parts.append(view.message)
    for change in view.grade_changes:
        sign = "+" if change.points >= 0 else ""
        what = (
            "late penalty"
            if change.kind == "late_penalty"
            else f"adjustment{f' ({change.test})' if change.test else ''}"
        )
        parts.append(f"{what} {sign}{_number(change.points)}" + (f": {change.reason}" if change.reason else ""))
    text = " ".join("; ".join(parts).split())
    return text if len(text) <= 500 else text[:497] + "..."


def write_moodle_worksheet(lines: list[GradeLine], roster: Roster | None, path: Path, bom: bool = False) -> Path | None:
    """Moodle's worksheet filled in: the roster's own worksheet when there is one, else one in Moodle's layout.

    Without the worksheet, only students whose id is a participant number (from Moodle's file names) get a
    row. Returns None when no student can be written.
    """
    by_number = {line.student_id: line for line in lines if line.student_id.isdigit()}
    if roster is not None and roster.format == "moodle-worksheet":
        header, rows = list(roster.header), [list(row) for row in roster.rows]
        columns = {name: roster.column(name) for name in MOODLE_HEADER}
        maximum = columns["Maximum Grade"]
        for entry, row in zip(roster.entries, rows, strict=True):
            line = by_number.get(entry.ids[0])
            if line is not None:
                row += [""] * (len(header) - len(row))
                _fill_moodle(row, line, columns, _float(row[maximum]) if maximum is not None else None)
        return _write(path, header, rows, bom)
    written = [_moodle_row(line) for line in lines if line.student_id.isdigit() and line.status != "missing"]
    if not written:
        return None
    return _write(path, MOODLE_HEADER, written, bom)


def _fill_moodle(row: list[str], line: GradeLine, columns: dict[str, int | None], moodle_max: float | None) -> None:
    status, grade, feedback = columns["Status"], columns["Grade"], columns["Feedback comments"]
    if line.needs_attention or line.score is None:
        if status is not None:
            row[status] = f"{ATTENTION_STATUS} ({line.message(150)}); {row[status]}".rstrip("; ")
        return  # Grade and feedback stay as Moodle has them: nothing stale or unreviewed is imported
    if grade is not None:
        row[grade] = _number(_scaled(line, moodle_max) or 0.0)
    if feedback is not None:
        row[feedback] = moodle_feedback(line)


def _moodle_row(line: GradeLine) -> list[str]:
    submitted = line.late.submitted_at if line.late is not None else None
    when = submitted.strftime("%A, %d %B %Y, %I:%M %p") if submitted is not None else "-"
    attention = line.needs_attention or line.score is None
    status = f"{ATTENTION_STATUS} ({line.message(150)})" if attention else "Graded by dl-grader"
    grade = "" if attention else _number(line.score or 0.0)
    email = line.roster.email if line.roster is not None else ""
    feedback = "" if attention else moodle_feedback(line)
    # Numbers and Moodle's own "-" stay as they are; text is neutralised against formula injection.
    return [f"{MOODLE_PARTICIPANT}{line.student_id}", csv_cell(line.name), csv_cell(email), csv_cell(status), grade,
            _number(line.max_score), "Yes", when, "-", csv_cell(feedback)]  # fmt: skip


def read_moodle_worksheet(path: Path) -> dict[str, tuple[str, str]]:
    """Participant number -> (Grade, Feedback comments), found by header name as Moodle's importer finds them."""
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    missing = [name for name in ("Identifier", "Grade", "Last modified (grade)") if name not in header]
    if missing:
        raise ValueError(f"{path.name}: Moodle would refuse it, no column {', '.join(missing)}")
    ident, grade = header.index("Identifier"), header.index("Grade")
    feedback = header.index("Feedback comments") if "Feedback comments" in header else None
    return {
        participant_number(row[ident]): (row[grade], row[feedback] if feedback is not None else "")
        for row in rows[1:]
        if row
    }


def write_canvas(lines: list[GradeLine], roster: Roster | None, path: Path, column: str, bom: bool = False) -> Path:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then ``column``.

    With Canvas's own export as the roster, its ID and SIS columns are copied; without one, ID is empty and
    the student id goes into SIS User ID (Canvas then finds the student by SIS id, else by name).
    """
    rows = []
    maximum = max((line.max_score for line in lines), default=0.0)
    for line in lines:
        if line.status == "missing":
            continue
        ids, section, name = ["", line.student_id, ""], "", line.name or line.student_id
        if roster is not None and roster.format == "canvas" and line.roster is not None:
            source = roster.rows[line.roster.row]
            name = source[0]
            ids = [source[i].strip() if i is not None and i < len(source) else "" for i in
                   (roster.column("ID"), roster.column("SIS User ID"), roster.column("SIS Login ID"))]  # fmt: skip
            index = roster.column("Section")
            section = source[index] if index is not None and index < len(source) else ""
        score = "" if line.needs_attention or line.score is None else _number(line.score)
        rows.append([csv_cell(name), *(csv_cell(i) for i in ids), csv_cell(section), score])
    points = [CANVAS_POINTS_ROW, "", "", "", "", _number(maximum)]
    return _write(path, [*CANVAS_HEADER, column], [points, *rows], bom)
