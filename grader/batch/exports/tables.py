"""Machine-readable exports: the CSV gradebook, grades.json and JUnit XML.

The CSV and JUnit can reach students (an LMS import shows the CSV's message; CI systems show JUnit),
so both are made from the student view, with the final scores (adjustments and late penalty applied).
CSV cells are neutralised against formula injection; every cell is one short line (details stay in
grades.json and summary.html). grades.json is the TA's: every step from the automatic score to the final.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from grader.batch.adjustments import GradeLine
from grader.grading.student_view import csv_cell, sanitize_text

CSV_EXTRA_COLUMNS = ["automatic_score", "adjustment", "late_penalty", "days_late", "submitted_at", "needs_attention"]


def test_names(lines: list[GradeLine]) -> list[str]:
    """Every test name in first-seen order, so columns are stable across students."""
    names: dict[str, None] = {}
    for line in lines:
        for test in line.row.report.tests if line.row is not None else []:
            names.setdefault(sanitize_text(test.name, keep_newlines=False), None)
    return list(names)


def _points(value: float | None) -> str:
    return "" if value is None else f"{round(value, 4):g}"


def write_csv(lines: list[GradeLine], path: Path, bom: bool = False) -> Path:
    """One row per student: id, name, status, final score (empty when it needs attention), max, one column per
    test, a one-line message, then the automatic score, adjustment, late penalty, submission time and flags."""
    tests = test_names(lines)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["student_id", "name", "status", "score", "max_score", *tests, "message", *CSV_EXTRA_COLUMNS]
    writer.writerow([csv_cell(c) for c in header])
    for line in lines:
        view = line.view
        scores = {t.name: t.score for t in view.tests} if view is not None else {}
        graded = view is not None and view.status != "grader_error"
        per_test = [_points(scores.get(name, 0.0)) if graded else "" for name in tests]
        late = line.late
        cells = [
            line.student_id, line.name, line.status, "" if line.needs_attention else _points(line.score),
            _points(line.max_score), *per_test, line.message(),
            _points(line.automatic_score), _points(line.adjustment_points) if line.applied else "",
            _points(late.penalty_points) if late is not None else "", str(late.days_late) if late is not None else "",
            late.submitted_at.isoformat(timespec="minutes") if late is not None and late.submitted_at else "",
            "yes" if line.needs_attention else "",
        ]  # fmt: skip
        text = {0, 1, 2, 5 + len(tests), len(cells) - 1}  # the rest are numbers and times: never quote-prefixed
        writer.writerow(
            [csv_cell(sanitize_text(c, keep_newlines=False)) if i in text else c for i, c in enumerate(cells)]
        )
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8", newline="")
    return path


def grades_json(line: GradeLine) -> dict[str, Any]:
    """The TA's record of one student: every step from the automatic score to the final one."""
    late = line.late.model_dump(mode="json") if line.late is not None else None
    return {
        "student_id": line.student_id, "name": line.name, "status": line.status,
        "automatic_score": line.automatic_score, "score": line.score, "max_score": line.max_score,
        "late": late, "adjustments": [a.model_dump(mode="json") for a in line.applied],
        "needs_attention": line.attention, "warnings": line.warnings,
        "sha256": line.row.report.submission.sha256 if line.row is not None else None,
    }  # fmt: skip


def write_grades_json(lines: list[GradeLine], path: Path) -> Path:
    path.write_text(json.dumps([grades_json(line) for line in lines], indent=2, ensure_ascii=True) + "\n")
    return path


def write_junit(lines: list[GradeLine], path: Path) -> Path:
    """A testsuite per student, a testcase per test; grader errors are <error> elements."""
    suites = ET.Element("testsuites", name="grader")
    for line in lines:
        view = line.view
        if view is None:
            continue
        student = sanitize_text(line.student_id, keep_newlines=False)
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
