"""Machine-readable exports: the CSV gradebook and JUnit XML."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

from grader.batch.gradebook import Row


def test_names(rows: list[Row]) -> list[str]:
    """Every test name in first-seen order, so columns are stable across students."""
    names: dict[str, None] = {}
    for row in rows:
        for test in row.report.tests:
            names.setdefault(test.name, None)
    return list(names)


def write_csv(rows: list[Row], path: Path) -> Path:
    """One row per student: id, name, status, total, max, then one column per test."""
    tests = test_names(rows)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student_id", "name", "status", "score", "max_score", *tests, "message"])
        for row in rows:
            report = row.report
            scores = {t.name: t.score for t in report.tests}
            total = "" if report.score is None else f"{report.score:g}"
            per_test = ["" if report.status == "grader_error" else f"{scores.get(name, 0):g}" for name in tests]
            writer.writerow(
                [row.student_id, row.display_name, report.status, total, f"{report.max_score:g}", *per_test,
                 report.message]
            )  # fmt: skip
    return path


def write_junit(rows: list[Row], path: Path) -> Path:
    """A testsuite per student, a testcase per test; grader errors are <error> elements."""
    suites = ET.Element("testsuites", name="grader")
    for row in rows:
        report = row.report
        suite = ET.SubElement(
            suites, "testsuite", name=row.student_id, tests=str(len(report.tests)),
            failures=str(sum(t.status == "failed" for t in report.tests)),
            errors=str(sum(t.status not in ("passed", "failed", "skipped") for t in report.tests)),
            skipped=str(sum(t.status == "skipped" for t in report.tests)),
            time=f"{report.resources.wall_s:.3f}",
        )  # fmt: skip
        if report.status != "graded":
            case = ET.SubElement(suite, "testcase", classname=f"{report.assignment}.{row.student_id}", name="load")
            ET.SubElement(case, "error", message=report.message[:500], type=report.status)
        for test in report.tests:
            case = ET.SubElement(
                suite, "testcase", classname=f"{report.assignment}.{row.student_id}", name=test.name,
                time=f"{test.duration_s:.3f}",
            )  # fmt: skip
            if test.status == "failed":
                ET.SubElement(case, "failure", message=test.message[:500], type="failed")
            elif test.status == "skipped":
                ET.SubElement(case, "skipped", message=test.message[:500])
            elif test.status != "passed":
                ET.SubElement(case, "error", message=test.message[:500], type=test.status)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
