"""Gradescope results.json per submission, following Gradescope's autograder output spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grader.batch.gradebook import Row
from grader.grading.report import SubmissionReport


def gradescope_results(report: SubmissionReport) -> dict[str, Any]:
    """The results.json object: score, execution_time, output, tests[] (name, status, visibility...)."""
    tests = [
        {
            "name": test.name,
            "score": test.score,
            "max_score": test.max_score,
            "status": "passed" if test.status == "passed" else "failed",
            "output": (test.message if test.status == "passed" else f"[{test.status}] {test.message}").strip(),
            "visibility": "visible" if test.visible else "after_published",
        }
        for test in report.tests
    ]
    output = report.message or f"{report.assignment}: {report.status}"
    if report.warnings:
        output += "\n" + "\n".join(report.warnings)
    results: dict[str, Any] = {
        "score": report.score if report.score is not None else 0.0,
        "execution_time": max(1, round(report.resources.wall_s)),
        "output": output,
        "tests": tests,
    }
    if report.status == "grader_error":
        # Gradescope has no "not graded" state: keep the score hidden from the student until a rerun.
        results["visibility"] = "hidden"
        results["output"] = "Not graded because of a problem in the grader, not in your code: " + report.message
    return results


def write_gradescope(rows: list[Row], folder: Path) -> Path:
    """``folder/<student id>/results.json`` for every student."""
    for row in rows:
        target = folder / row.student_id
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.json").write_text(json.dumps(gradescope_results(row.report), indent=2) + "\n")
    return folder
