"""The student's side: find which assignment a notebook belongs to, and what its check shows."""

from __future__ import annotations

from pathlib import Path

from grader.errors import UsageError
from grader.grading.report import SubmissionReport
from grader.grading.spec import SPEC_FILE, Assignment, load_assignment, load_spec
from grader.grading.student_view import StudentReport, student_view


def find_assignment_for(notebook: Path, name: str | None, course_dir: Path | None) -> Assignment:
    """By --assignment, by the notebook's own folder, or by the notebook's file name."""
    if name is not None:
        return load_assignment(name, course_dir)
    folder = notebook.resolve().parent
    if (folder / SPEC_FILE).exists():
        return load_assignment(folder)
    course = (course_dir or Path.cwd()).resolve()
    matches = [
        spec_path.parent
        for spec_path in sorted((course / "assignments").glob(f"*/{SPEC_FILE}"))
        if load_spec(spec_path).notebook == notebook.name
    ]
    if len(matches) == 1:
        return load_assignment(matches[0])
    raise UsageError(f"cannot tell which assignment {notebook.name} belongs to; pass --assignment NAME")


def check_view(report: SubmissionReport, assignment: Assignment) -> StudentReport:
    """What the check command shows: the student view of a run of the visible tests."""
    return student_view(report, assignment.spec.feedback, tests="visible")
