"""Machine-readable exports: the CSV gradebook and JUnit XML.

Both can reach students (an LMS import shows the CSV's message; CI systems show JUnit), so both
are made from the student view. CSV cells are neutralised against formula injection.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

from grader.batch.gradebook import Row
from grader.grading.spec import FeedbackPolicy
from grader.grading.student_view import csv_cell, sanitize_text, student_view


def test_names(rows: list[Row]) -> list[str]:
    """Every test name in first-seen order, so columns are stable across students."""
    names: dict[str, None] = {}
    for row in rows:
        for test in row.report.tests:
            names.setdefault(sanitize_text(test.name, keep_newlines=False), None)
    return list(names)


def write_csv(rows: list[Row], path: Path, policy: FeedbackPolicy) -> Path:
    """One row per student: id, name, status, total, max, then one column per test."""
    tests = test_names(rows)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [csv_cell(c) for c in ["student_id", "name", "status", "score", "max_score", *tests, "message"]]
        )
        for row in rows:
            view = student_view(row.report, policy)
            scores = {t.name: t.score for t in view.tests}
            total = "" if view.score is None else f"{view.score:g}"
            per_test = ["" if view.status == "grader_error" else f"{scores.get(name, 0):g}" for name in tests]
            cells = [row.student_id, row.display_name, view.status, total, f"{view.max_score:g}", *per_test,
                     view.message]  # fmt: skip
            writer.writerow([csv_cell(cell) for cell in cells])
    return path


def write_junit(rows: list[Row], path: Path, policy: FeedbackPolicy) -> Path:
    """A testsuite per student, a testcase per test; grader errors are <error> elements."""
    suites = ET.Element("testsuites", name="grader")
    for row in rows:
        view = student_view(row.report, policy)
        student = sanitize_text(row.student_id, keep_newlines=False)
        classname = f"{view.assignment}.{student}"
        suite = ET.SubElement(
            suites, "testsuite", name=student, tests=str(len(view.tests)),
            failures=str(sum(t.status == "failed" for t in view.tests)),
            errors=str(sum(t.status not in ("passed", "failed", "skipped") for t in view.tests)),
            skipped=str(sum(t.status == "skipped" for t in view.tests)),
            time=f"{view.wall_s:.3f}",
        )  # fmt: skip
        if view.status != "graded":
            case = ET.SubElement(suite, "testcase", classname=classname, name="load")
            ET.SubElement(case, "error", message=view.message[:500], type=view.status)
        for test in view.tests:
            case = ET.SubElement(suite, "testcase", classname=classname, name=test.name, time=f"{test.duration_s:.3f}")
            if test.status == "failed":
                ET.SubElement(case, "failure", message=test.message[:500], type="failed")
            elif test.status == "skipped":
                ET.SubElement(case, "skipped", message=test.message[:500])
            elif test.status != "passed":
                ET.SubElement(case, "error", message=test.message[:500], type=test.status)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
