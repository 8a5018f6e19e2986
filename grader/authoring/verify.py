"""`grader verify`: the checks a course's CI runs on every assignment."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.authoring.release import release, template_text
from grader.authoring.robustness import LOOP_CALL_TIMEOUT_S, check_robustness
from grader.authoring.variants import VariantsCheck, check_variants
from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings


@dataclass(frozen=True)
class Table:
    """What a check graded: a title line and aligned rows, as plain text."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        widths = [max(len(row[i]) for row in (self.header, *self.rows)) for i in range(len(self.header))]
        lines = [self.title]
        for row in (self.header, *self.rows):
            lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        return lines + [f"  note: {line}" for line in self.footer]


@dataclass
class Verdict:
    """The outcome of verifying one assignment."""

    assignment: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_assignment(
    assignment: Assignment,
    settings: GradeSettings,
    *,
    variants: bool = True,
    robustness: bool = True,
    loop_call_timeout_s: float = LOOP_CALL_TIMEOUT_S,
) -> Verdict:
    """Solution full marks (twice, same score), template zero and graded, template in sync, time;
    then the known variants against expected.toml and the wrong answers of the robustness check.

    The solution is graded once with freshly collected tests and once more, after the template,
    with the same collected tests, as a grading process does in a batch: a hidden test that keeps
    state between submissions shows up as two different scores. Variants and robustness run only
    when the solution scores full marks (they are judged against it).
    """
    suites = SuiteCache()
    try:
        verdict, solution = _verify(assignment, settings, suites)
        if solution is None:
            skipped = [name for name, wanted in (("variants", variants), ("robustness", robustness)) if wanted]
            if skipped:
                verdict.notes.append(f"{' and '.join(skipped)} not checked: the solution does not score full marks")
            return verdict
        if variants:
            _add_variants(verdict, check_variants(assignment, settings, suites))
        if robustness:
            _add_robustness(verdict, assignment, settings, solution, suites, loop_call_timeout_s)
        return verdict
    finally:
        suites.close()


def _add_variants(verdict: Verdict, check: VariantsCheck) -> None:
    folder = check.variants_dir
    if not folder.is_dir():
        verdict.notes.append(f"no {folder.parent.name}/{folder.name} folder: no known variants checked")
        return
    verdict.failures += check.failures
    if check.results:
        title = f"variants: {len(check.results)} in {folder} (expected.toml), graded in {check.wall_s:.1f} s"
        rows = tuple(tuple(row) for row in check.rows())
        verdict.tables.append(Table(title, check.HEADER, rows))
        verdict.notes.append(f"{len(check.results)} variants")


def _add_robustness(
    verdict: Verdict, assignment: Assignment, settings: GradeSettings, solution: SubmissionReport,
    suites: SuiteCache, loop_call_timeout_s: float,
) -> None:  # fmt: skip
    check = check_robustness(assignment, settings, solution, suites, loop_call_timeout_s)
    verdict.failures += check.failures
    if not check.targets:
        verdict.notes += check.notes
    else:
        title = (
            f"robustness: {len(check.targets)} solution functions, {len(check.cases)} wrong submissions graded in "
            f"{check.wall_s:.1f} s ({check.loop_wall_s:.1f} s of them never returning); each cell is the "
            f"submission's score of {solution.max_score:g} (! = a violation below; n/a = the solution's function "
            "returns None, nothing to spoil; - = not tried on __init__; never-returns calls capped at "
            f"{loop_call_timeout_s:g} s)"
        )
        rows = tuple(tuple(row) for row in check.rows())
        verdict.tables.append(Table(title, tuple(check.header()), rows, tuple(check.notes)))
        verdict.notes.append(f"{len(check.cases)} wrong answers")


def _verify(
    assignment: Assignment, settings: GradeSettings, suites: SuiteCache
) -> tuple[Verdict, SubmissionReport | None]:
    """The base checks, and the solution's report when it scored full marks."""
    verdict = Verdict(assignment.name)
    solution = assignment.solutions_dir / assignment.spec.notebook
    template = assignment.assignment_dir / assignment.spec.notebook
    if not solution.exists():
        verdict.failures.append(f"no solution notebook at {solution}")
        return verdict, None
    first = grade(solution, assignment, settings, suites=suites)
    if template.exists():
        template_report = grade(template, assignment, settings, suites=suites)
    second = grade(solution, assignment, settings, suites=suites)
    limit = assignment.spec.limits.submission_timeout_s
    for report in (first, second):
        if report.status != "graded" or report.score != report.max_score:
            failing = [f"{t.name} ({t.status}: {t.message})" for t in report.tests if t.score < t.max_score]
            verdict.failures.append(  # whole messages: a CI log is where the course reads them
                f"solution scored {report.score} / {report.max_score} ({report.status}) {report.message}"
                + (f"; not full marks: {', '.join(failing)}" if failing else "")
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
    full = first if first.status == "graded" and first.score == first.max_score else None
    if not template.exists():
        verdict.failures.append(f"no template notebook at {template}")
        return verdict, full
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
    return verdict, full
