"""Exports of a gradebook: CSV, HTML feedback and class summary, JUnit XML, Gradescope JSON, LMS imports.

Every export a student may read (CSV, JUnit, feedback pages, Gradescope, the LMS files' feedback) is made
from ``grader.grading.student_view``; only the class summary and grades.json are the TA's. Every export
shows the final score: the automatic one with the TA's adjustments and the late penalty applied
(``grader.batch.adjustments.grade_lines``), and marks the rows that need attention.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from grader.batch.adjustments import LateContext, final_report, grade_lines, read_log

# Re-exported: the settings moved to grader.batch.export_settings (light to import, issue 20).
from grader.batch.export_settings import SETTINGS_FILE as SETTINGS_FILE
from grader.batch.export_settings import ExportSettings, load_settings
from grader.batch.export_settings import save_settings as save_settings
from grader.batch.exports.gradescope import write_gradescope
from grader.batch.exports.html import write_feedback, write_summary
from grader.batch.exports.tables import write_csv, write_grades_json, write_junit
from grader.batch.gradebook import read_attention, read_rows
from grader.batch.lms import write_canvas, write_moodle_worksheet
from grader.errors import UsageError
from grader.grading.spec import FeedbackPolicy

FORMATS = ("csv", "html", "junit", "gradescope")
LMS_FORMATS = ("moodle", "canvas", "json")  # moodle, canvas: student-facing (feedback comments); json: the TA's
ALL_FORMATS = FORMATS + LMS_FORMATS
EXPORT_SUBDIR = "export"
POLICY_FILE = "feedback-policy.json"  # the assignment's [feedback], kept for a later `grader export`
MOODLE_FILE = "moodle-grading-worksheet.csv"
CANVAS_FILE = "canvas-gradebook.csv"


def _policy(out_dir: Path, policy: FeedbackPolicy | None) -> FeedbackPolicy:
    """The policy given (and remembered in out_dir), else the remembered one, else the strictest."""
    saved = out_dir / POLICY_FILE
    if policy is not None:
        saved.write_text(policy.model_dump_json(indent=2) + "\n")
        return policy
    try:
        return FeedbackPolicy.model_validate_json(saved.read_text())
    except (OSError, ValueError):
        return FeedbackPolicy()


def default_formats(settings: ExportSettings) -> tuple[str, ...]:
    """Everything that applies: the four, grades.json, Moodle's worksheet, Canvas's CSV with a Canvas roster."""
    canvas = ("canvas",) if settings.roster is not None and settings.roster.format == "canvas" else ()
    return FORMATS + ("json", "moodle") + canvas


def write_exports(
    out_dir: Path, formats: tuple[str, ...] | None = None, policy: FeedbackPolicy | None = None
) -> list[Path]:
    """Write the chosen exports of the gradebook in ``out_dir`` to ``out_dir/export``.

    ``policy`` is the assignment's ``[feedback]`` table; without one, the policy the last batch in
    ``out_dir`` used, else the one that shows students the least. ``formats`` defaults to every one that
    applies (``default_formats``).
    """
    policy = _policy(out_dir, policy)
    settings = load_settings(out_dir)
    formats = default_formats(settings) if formats is None else formats
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown:
        raise UsageError(f"unknown export format {unknown[0]!r}; choose from {', '.join(ALL_FORMATS)}")
    rows = read_rows(out_dir)
    late = None
    if settings.late is not None:
        late = LateContext(settings.late, settings.extensions, settings.submission_times)
    lines = grade_lines(rows, read_log(out_dir), policy, late, settings.roster, read_attention(out_dir))
    target = out_dir / EXPORT_SUBDIR
    target.mkdir(exist_ok=True)
    bom = settings.csv_bom
    written: list[Path | None] = []
    if "csv" in formats:
        written.append(write_csv(lines, target / "gradebook.csv", bom))
    if "json" in formats:
        written.append(write_grades_json(lines, target / "grades.json"))
    if "moodle" in formats:
        written.append(write_moodle_worksheet(lines, settings.roster, target / MOODLE_FILE, bom))
    if "canvas" in formats:
        column = settings.canvas_column or settings.title or (rows[0].report.assignment if rows else "Assignment")
        written.append(write_canvas(lines, settings.roster, target / CANVAS_FILE, column, bom))
    if "junit" in formats:
        written.append(write_junit(lines, target / "junit.xml"))
    if "html" in formats:
        written.append(write_summary(lines, target / "summary.html", settings, out_dir))
        views = {line.student_id: line.view for line in lines if line.view is not None}
        written.append(write_feedback(rows, target / "feedback", policy, views))
    if "gradescope" in formats:  # its writer makes its own student view: give it the final scores
        final = [replace(line.row, report=final_report(line)) for line in lines if line.row is not None]
        written.append(write_gradescope(final, target / "gradescope", policy))
    return [path for path in written if path is not None]
