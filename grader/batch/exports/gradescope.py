"""Gradescope results.json per submission, following Gradescope's autograder output spec.

Student-facing: made from the student view only. Per the spec (gradescope-autograders.readthedocs.io,
"Controlling test case visibility"), a test with ``"visibility": "hidden"`` is never shown and
then students cannot see their total score either; so a ``visible=False`` test keeps its entry
(name, points, status) with its message withheld, shown once grades are published.
``stdout_visibility`` is set to hidden on purpose: the grader's stdout is for instructors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grader.batch.gradebook import Row
from grader.batch.paths import safe_path_component
from grader.grading.spec import FeedbackPolicy
from grader.grading.student_view import StudentReport, student_view

NOT_GRADED = "Not graded because of a problem in the grader, not in your code; your TA will rerun it."


def _output(view: StudentReport) -> str:
    lines = [view.message or f"{view.assignment}: {view.status}"]
    lines += [f"cell {cell.index} raised: {cell.message}" for cell in view.failing_cells]
    lines += view.warnings
    if view.output:
        lines += ["", "What your code printed:", view.output[:5000]]
    return "\n".join(lines)


def gradescope_results(view: StudentReport) -> dict[str, Any]:
    """The results.json object: score, execution_time, output, tests[] (name, status, visibility...)."""
    tests = [
        {
            "name": test.name,
            "score": test.score,
            "max_score": test.max_score,
            "status": "passed" if test.status == "passed" else "failed",
            "output": (test.message if test.status == "passed" else f"[{test.status}] {test.message}").strip(),
            "visibility": "after_published" if test.details_hidden else "visible",
        }
        for test in view.tests
    ]
    results: dict[str, Any] = {
        "score": view.score if view.score is not None else 0.0,
        "execution_time": max(1, round(view.wall_s)),
        "output": _output(view),
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    if view.status == "grader_error":
        # Gradescope has no "not graded" state: keep the score hidden from the student until a rerun.
        results["visibility"] = "hidden"
        results["output"] = NOT_GRADED
    return results


def write_gradescope(rows: list[Row], folder: Path, policy: FeedbackPolicy) -> Path:
    """``folder/<student id>/results.json`` for every student."""
    for row in rows:
        target = folder / safe_path_component(row.student_id)
        target.mkdir(parents=True, exist_ok=True)
        results = gradescope_results(student_view(row.report, policy))
        (target / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return folder
