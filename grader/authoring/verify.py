"""`grader verify`: the checks a course's CI runs on every assignment."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.authoring.release import release, template_text
from grader.grading.pipeline import grade
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings


@dataclass
class Verdict:
    """The outcome of verifying one assignment."""

    assignment: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_assignment(assignment: Assignment, settings: GradeSettings) -> Verdict:
    """Solution full marks (twice, same score), template zero and graded, template in sync, time.

    The solution is graded once with freshly collected tests and once more, after the template,
    with the same collected tests, as a grading process does in a batch: a hidden test that keeps
    state between submissions shows up as two different scores.
    """
    suites = SuiteCache()
    try:
        return _verify(assignment, settings, suites)
    finally:
        suites.close()


def _verify(assignment: Assignment, settings: GradeSettings, suites: SuiteCache) -> Verdict:
    verdict = Verdict(assignment.name)
    solution = assignment.solutions_dir / assignment.spec.notebook
    template = assignment.assignment_dir / assignment.spec.notebook
    if not solution.exists():
        verdict.failures.append(f"no solution notebook at {solution}")
        return verdict
    first = grade(solution, assignment, settings, suites=suites)
    if template.exists():
        template_report = grade(template, assignment, settings, suites=suites)
    second = grade(solution, assignment, settings, suites=suites)
    limit = assignment.spec.limits.submission_timeout_s
    for report in (first, second):
        if report.status != "graded" or report.score != report.max_score:
            failing = [f"{t.name} ({t.status}: {t.message[:120]})" for t in report.tests if t.score < t.max_score]
            verdict.failures.append(
                f"solution scored {report.score} / {report.max_score} ({report.status}) {report.message[:300]}"
                + (f"; not full marks: {', '.join(failing[:5])}" if failing else "")
            )
            break
    if first.score != second.score:
        verdict.failures.append(
            f"grading the solution twice gave {first.score} and {second.score} (the second time after the "
            "template, with the same collected tests: does a hidden test keep state between submissions?)"
        )
    slowest = max(first.resources.wall_s, second.resources.wall_s)
    verdict.notes.append(f"solution graded in {slowest:.1f} s (limit {limit:g} s)")
    if slowest > limit:
        verdict.failures.append(f"grading the solution took {slowest:.1f} s, over submission_timeout_s = {limit:g}")
    if not template.exists():
        verdict.failures.append(f"no template notebook at {template}")
        return verdict
    if template.read_text() != template_text(solution):
        verdict.failures.append(
            f"{template} differs from what `grader release {assignment.name}` makes from the solution; "
            "regenerate it from the solution"
        )
    if template_report.status != "graded" or template_report.score != 0:
        verdict.failures.append(
            f"template scored {template_report.score} ({template_report.status}), expected 0 and graded"
        )
    with tempfile.TemporaryDirectory() as scratch:
        release(assignment, Path(scratch))
    return verdict
