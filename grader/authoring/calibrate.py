"""`grader calibrate`: thresholds from data. Grade the solution over seeds, summarise metrics."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from grader.errors import GraderError
from grader.grading.pipeline import grade
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

LOWER_IS_BETTER = ("loss", "error", "time_s", "seconds")


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one test across seeds, with the proposed threshold."""

    test: str
    metric: str
    values: tuple[float, ...]
    proposed: float
    lower_is_better: bool

    @property
    def line(self) -> str:
        values = self.values
        direction = "<=" if self.lower_is_better else ">="
        return (
            f"{self.test}.{self.metric}: min {min(values):.4g}, mean {statistics.fmean(values):.4g}, "
            f"max {max(values):.4g} over {len(values)} seeds -> threshold {direction} {self.proposed:.4g}"
        )


def propose(values: list[float], lower_is_better: bool, margin: float) -> float:
    """The worst value the reference reached, moved by ``margin`` (a fraction of it) towards failing."""
    if lower_is_better:
        worst = max(values)
        return worst + abs(worst) * margin
    worst = min(values)
    return worst - abs(worst) * margin


def calibrate(assignment: Assignment, seeds: list[int], margin: float, settings: GradeSettings) -> list[MetricSummary]:
    """Grade the reference solution once per seed; every metric its tests record, summarised."""
    solution = assignment.solutions_dir / assignment.spec.notebook
    collected: dict[tuple[str, str], list[float]] = {}
    suites = SuiteCache()
    try:
        for seed in seeds:
            report = grade(solution, assignment, settings.model_copy(update={"seed": seed}), suites=suites)
            if report.status != "graded":
                raise GraderError(f"the solution was not graded with seed {seed}: {report.status}: {report.message}")
            for test in report.tests:
                for name, value in test.metrics.items():
                    collected.setdefault((test.name, name), []).append(value)
    finally:
        suites.close()
    summaries = []
    for (test_name, name), values in collected.items():
        lower = name.endswith(LOWER_IS_BETTER)
        summaries.append(MetricSummary(test_name, name, tuple(values), propose(values, lower, margin), lower))
    return summaries
