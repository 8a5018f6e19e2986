"""Known variants of a solution (solutions/<name>/variants/) and the scores they must get.

Each buggy or correct variant is one ``.py`` or ``.ipynb`` file beside an ``expected.toml`` with
one table per file stem::

    [no_convolution]
    kind = "bug"          # "bug": below full marks; "correct": full marks
    score = "== 45"       # "== full", "< full", "== N", "<= N", ">= N", "< N", "> N"
    why = "an MLP: no convolution at all, yet it classifies digits well"
    not_passed = { test_model_uses_a_convolution = "failed" }   # optional: exactly these tests

`grader verify` grades every variant and enforces its table, so a course proves in CI that its
hidden tests catch its known bugs (issue 14).
"""

from __future__ import annotations

import difflib
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from grader.errors import SpecError
from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import Assignment
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

EXPECTED_FILE = "expected.toml"
VARIANT_SUFFIXES = (".py", ".ipynb")
BOUND_GRAMMAR = '"== full", "< full", "== N", "<= N", ">= N", "< N", "> N"'
_BOUND = re.compile(r"^\s*(==|<=|>=|<|>)\s*(full|\d+(?:\.\d+)?)\s*$")

Operator = Literal["==", "<=", ">=", "<", ">"]
NotPassedStatus = Literal["failed", "error", "timeout", "memory", "crashed", "invalid", "skipped"]


@dataclass(frozen=True)
class Bound:
    """A bound on a score: ``operator`` and ``value`` (None: the assignment's full marks)."""

    operator: Operator
    value: float | None

    def target(self, full: float) -> float:
        return full if self.value is None else self.value

    def holds(self, score: float, full: float) -> bool:
        target = self.target(full)
        return {
            "==": score == target,
            "<=": score <= target,
            ">=": score >= target,
            "<": score < target,
            ">": score > target,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.operator} {'full' if self.value is None else f'{self.value:g}'}"


def parse_bound(text: object) -> Bound:
    """``"<= 40"`` -> Bound("<=", 40.0); anything outside the grammar is a ValueError."""
    match = _BOUND.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a score bound; write one of {BOUND_GRAMMAR}")
    operator, value = match.groups()
    return Bound(operator, None if value == "full" else float(value))  # type: ignore[arg-type]  # the regex


class VariantExpectation(BaseModel):
    """One table of expected.toml: what one variant is and the score it must get."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bug", "correct"] = Field(description='"bug": must score below full marks; "correct": full marks.')
    score: Annotated[Bound, BeforeValidator(parse_bound)] = Field(
        description=f"Bound on the variant's score: {BOUND_GRAMMAR}."
    )
    why: str = Field(min_length=1, description="What the variant does and why it must score as it does.")
    not_passed: dict[str, NotPassedStatus] | None = Field(
        None, description="Exactly the tests that do not pass, with their status; omitted: not checked."
    )

    def contradiction(self) -> str:
        """Why kind and score (or not_passed) cannot both hold; empty when they can."""
        if self.kind == "correct" and str(self.score) != "== full":
            return f'kind = "correct" must score full marks: write score = "== full", not "{self.score}"'
        if self.kind == "correct" and self.not_passed:
            return 'kind = "correct" passes every test: remove not_passed'
        if self.kind == "bug" and self.score.value is None and self.score.operator in ("==", ">="):
            return f'kind = "bug" must score below full marks, but score = "{self.score}" asks for full marks'
        return ""


def variant_files(variants_dir: Path) -> dict[str, Path]:
    """The variant files of a folder, by stem."""
    files = sorted(p for p in variants_dir.iterdir() if p.is_file() and p.suffix in VARIANT_SUFFIXES)
    return {path.stem: path for path in files}


def _describe(path: Path, name: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(table)"
        if item["type"] == "extra_forbidden":
            known = list(VariantExpectation.model_fields)
            close = difflib.get_close_matches(where, known, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "check its spelling"
            lines.append(f"{path}: [{name}] {where}: unknown field; {hint} (the fields are {', '.join(known)})")
        elif item["type"] == "missing":
            lines.append(f"{path}: [{name}] {where}: required field is missing; add `{where} = ...`")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}: [{name}] {where}: {message} (got {item.get('input')!r})")
    return lines


def load_expectations(variants_dir: Path) -> dict[str, VariantExpectation]:
    """expected.toml checked against the folder's files; SpecError naming file, variant and field."""
    path = variants_dir / EXPECTED_FILE
    files = variant_files(variants_dir)
    if not path.exists():
        raise SpecError(f"{path} does not exist: write one table per variant file ({', '.join(sorted(files))})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    problems: list[str] = []
    expectations: dict[str, VariantExpectation] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            problems.append(f"{path}: {name} = {table!r} is not a table; write [{name}] with kind, score and why")
            continue
        try:
            expectations[name] = expectation = VariantExpectation.model_validate(table)
        except ValidationError as exc:
            problems += _describe(path, name, exc)
            continue
        if expectation.contradiction():
            problems.append(f"{path}: [{name}]: {expectation.contradiction()}")
    for name in sorted(set(files) - set(data)):
        problems.append(f"{path}: no table [{name}] for the variant file {files[name].name}; add one")
    for name in sorted(set(data) - set(files)):
        problems.append(f"{path}: [{name}] has no variant file {name}.py or {name}.ipynb in {variants_dir}")
    if problems:
        raise SpecError("\n".join(problems))
    return expectations


@dataclass
class VariantResult:
    """One graded variant against its table."""

    name: str
    expected: VariantExpectation
    report: SubmissionReport
    failures: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        score = "not graded" if self.report.score is None else f"{self.report.score:g} / {self.report.max_score:g}"
        return [self.name, self.expected.kind, str(self.expected.score), score, "FAIL" if self.failures else "ok"]


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


def check_variant(name: str, expected: VariantExpectation, report: SubmissionReport) -> VariantResult:
    """The variant's report against its table: graded, bound, kind and not_passed."""
    result = VariantResult(name, expected, report)
    prefix = f"variant {name} ({expected.kind}, score {expected.score})"
    if report.status != "graded" or report.score is None:
        result.failures.append(f"{prefix}: not graded ({report.status}): {report.message}")
        return result
    score, full = report.score, report.max_score
    if not expected.score.holds(score, full):
        result.failures.append(
            f"{prefix}: scored {score:g} of {full:g}, which is not {expected.score} (full = {full:g}); "
            f"expected.toml says why: {expected.why}"
        )
    elif expected.kind == "bug" and score >= full:
        result.failures.append(f"{prefix}: scored full marks ({score:g}): the hidden tests do not catch this bug")
    actual = not_passed(report)
    if expected.not_passed is not None and actual != expected.not_passed:
        listed = expected.not_passed
        differences = [f"{t} is {actual.get(t, 'passed')}, not {v}" for t, v in listed.items() if actual.get(t) != v]
        differences += [f"{t} is {v}, not in not_passed" for t, v in actual.items() if t not in listed]
        result.failures.append(f"{prefix}: the tests that do not pass differ from not_passed: {'; '.join(differences)}")
    return result


@dataclass
class VariantsCheck:
    """Every variant of an assignment, graded and checked."""

    variants_dir: Path
    results: list[VariantResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    HEADER = ("variant", "kind", "bound", "score", "result")

    def rows(self) -> list[list[str]]:
        return [result.row() for result in self.results]


def check_variants(assignment: Assignment, settings: GradeSettings, suites: SuiteCache | None = None) -> VariantsCheck:
    """Grade each variant in solutions/<name>/variants and check it against expected.toml.

    A folder that does not exist is no failure (the course declares no known bugs); an
    expected.toml that does not match the folder's files, or does not parse, is one.
    """
    started = time.monotonic()
    check = VariantsCheck(assignment.solutions_dir / "variants")
    if not check.variants_dir.is_dir():
        return check
    try:
        expectations = load_expectations(check.variants_dir)
    except SpecError as exc:
        check.failures += str(exc).split("\n")
        return check
    files = variant_files(check.variants_dir)
    for name, expected in expectations.items():
        report = grade(files[name], assignment, settings, suites=suites)
        result = check_variant(name, expected, report)
        check.results.append(result)
        check.failures += result.failures
    check.wall_s = time.monotonic() - started
    return check
