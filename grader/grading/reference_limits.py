"""Time limits measured from the reference solution on the grading machine (issue 20).

Fixed seconds are either too tight for a slow machine or too loose for an infinite loop. An
assignment may instead declare a limit as a multiple of the reference's own time, with a floor
and a ceiling (``[limits.relative]`` in assignment.toml). The reference is graded a few times on
the grading machine before the batch (pre-flight); its longest call per test, its load time and
its whole grading time are kept with the assignment's fingerprint, and every limit hit says how
it was derived ("20x the reference's 0.06 s on this machine"). Without measurements (a student's
own check, a course without a solution) the fixed limits apply.
"""

from __future__ import annotations

import platform
import statistics
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from grader.grading.report import SubmissionReport


class RelativeLimit(BaseModel):
    """``factor`` times the reference's time, clamped to [min_s, max_s]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: float = Field(gt=0, description="Multiple of the reference solution's measured time.")
    min_s: float = Field(gt=0, description="Never less than this many seconds (timer noise, slow starts).")
    max_s: float = Field(gt=0, description="Never more than this many seconds.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_s > self.max_s:
            raise ValueError(f"min_s ({self.min_s:g}) is larger than max_s ({self.max_s:g})")
        return self

    def seconds(self, reference_s: float) -> float:
        return min(self.max_s, max(self.min_s, self.factor * reference_s))

    def describe(self, reference_s: float) -> str:
        value = self.seconds(reference_s)
        derived = f"{self.factor:g}x the reference's {reference_s:.3g} s on this machine"
        if value == self.min_s and self.factor * reference_s < self.min_s:
            return f"{derived}, raised to the floor of {self.min_s:g} s"
        if value == self.max_s and self.factor * reference_s > self.max_s:
            return f"{derived}, capped at {self.max_s:g} s"
        return derived


class RelativeLimits(BaseModel):
    """``[limits.relative]``: which limits follow the reference, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call: RelativeLimit | None = Field(None, description="Per call, from the reference's longest call in that test.")
    load: RelativeLimit | None = Field(None, description="Loading the notebook, from the reference's load time.")
    submission: RelativeLimit | None = Field(None, description="The whole submission, from the reference's total.")


class ReferenceTimes(BaseModel):
    """The reference solution's times on one machine, for one version of the assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str = Field(description="assignment_fingerprint() these times belong to.")
    machine: str = Field(description="Where they were measured (host name, CPU count).")
    repeats: int = Field(ge=1, description="How many gradings of the reference they come from.")
    load_s: float = Field(ge=0, description="Longest load of the notebook over the repeats.")
    submission_s: float = Field(ge=0, description="Longest whole grading over the repeats.")
    call_s: dict[str, float] = Field(description="Per test: its longest single call over the repeats.")
    spread: dict[str, float] = Field(
        default_factory=dict, description="Per test: max/min of its longest call over the repeats (noise)."
    )


def this_machine() -> str:
    import os

    return f"{platform.node()} ({os.cpu_count()} CPUs)"


def measure(reports: list[SubmissionReport], fingerprint: str) -> ReferenceTimes:
    """ReferenceTimes from gradings of the reference (all graded, full marks)."""
    calls: dict[str, list[float]] = {}
    for report in reports:
        for test in report.tests:
            calls.setdefault(test.name, []).append(test.max_call_s)
    return ReferenceTimes(
        fingerprint=fingerprint,
        machine=this_machine(),
        repeats=len(reports),
        load_s=max(r.resources.load_s or 0.0 for r in reports),
        submission_s=max(r.resources.wall_s for r in reports),
        call_s={name: max(values) for name, values in calls.items()},
        spread={name: max(values) / max(min(values), 1e-3) for name, values in calls.items() if len(values) > 1},
    )


def summary(times: ReferenceTimes) -> str:
    """One line: what was measured."""
    median_call = statistics.median(times.call_s.values()) if times.call_s else 0.0
    return (
        f"reference times over {times.repeats} gradings on {times.machine}: load {times.load_s:.2f} s, "
        f"whole {times.submission_s:.2f} s, median longest call {median_call:.3f} s"
    )
