"""Exports of a gradebook: CSV, HTML feedback and class summary, JUnit XML, Gradescope JSON.

Every export a student may read (CSV, JUnit, feedback pages, Gradescope) is made from
``grader.grading.student_view``; only the class summary is the TA's.
"""

from __future__ import annotations

from pathlib import Path

from grader.batch.exports.gradescope import write_gradescope
from grader.batch.exports.html import write_feedback, write_summary
from grader.batch.exports.tables import write_csv, write_junit
from grader.batch.gradebook import read_rows
from grader.errors import UsageError
from grader.grading.spec import FeedbackPolicy

FORMATS = ("csv", "html", "junit", "gradescope")
EXPORT_SUBDIR = "export"
POLICY_FILE = "feedback-policy.json"  # the assignment's [feedback], kept for a later `grader export`


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


def write_exports(
    out_dir: Path, formats: tuple[str, ...] = FORMATS, policy: FeedbackPolicy | None = None
) -> list[Path]:
    """Write the chosen exports of the gradebook in ``out_dir`` to ``out_dir/export``.

    ``policy`` is the assignment's ``[feedback]`` table; without one, the policy the last batch in
    ``out_dir`` used, else the one that shows students the least.
    """
    policy = _policy(out_dir, policy)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    rows = read_rows(out_dir)
    target = out_dir / EXPORT_SUBDIR
    target.mkdir(exist_ok=True)
    written: list[Path] = []
    if "csv" in formats:
        written.append(write_csv(rows, target / "gradebook.csv", policy))
    if "junit" in formats:
        written.append(write_junit(rows, target / "junit.xml", policy))
    if "html" in formats:
        written.append(write_summary(rows, target / "summary.html"))
        written.append(write_feedback(rows, target / "feedback", policy))
    if "gradescope" in formats:
        written.append(write_gradescope(rows, target / "gradescope", policy))
    return written
