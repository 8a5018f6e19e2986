"""Known variants (solutions/<name>/variants + expected.toml): the bound grammar, the file's
checks, and `grader verify` enforcing each variant's score, kind and not_passed (issue 14)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from grader.authoring.release import template_text
from grader.authoring.variants import Bound, check_variant, check_variants, load_expectations, parse_bound
from grader.authoring.verify import verify_assignment
from grader.errors import SpecError
from grader.grading.spec import Assignment, load_assignment
from grader.settings import GradeSettings
from tests.conftest import write_notebook

SPEC = """
title = "Toy"
notebook = "toy.ipynb"
preload = ["numpy"]

[limits]
call_timeout_s = 5
submission_timeout_s = 60
memory_mb = 512
"""

HIDDEN = """
import numpy as np
from grader.testing import assert_close, points


@points(5)
def test_double(submission):
    x = np.arange(3.0)
    assert_close(submission.double(x), 2 * x, "double(x)")


@points(5)
def test_square(submission):
    x = np.arange(3.0)
    assert_close(submission.square(x), x**2, "square(x)")
"""

SOLUTION = (
    "import numpy as np",
    "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
    "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION\n",
)

VARIANTS = {
    "square_is_double.py": '"""Bug: square returns 2 x."""\ndef double(x):\n    return 2 * x\n\n'
    "def square(x):\n    return 2 * x\n",
    "written_differently.py": '"""Correct: x + x and x ** 2."""\ndef double(x):\n    return x + x\n\n'
    "def square(x):\n    return x ** 2\n",
}

EXPECTED = """
[square_is_double]
kind = "bug"
score = "== 5"
why = "square returns 2 x"
not_passed = { test_square = "failed" }

[written_differently]
kind = "correct"
score = "== full"
why = "x + x and x ** 2"
"""


def build_course(root: Path, expected: str | None = EXPECTED, variants: dict[str, str] = VARIANTS) -> Assignment:
    """A course with one assignment 'toy', its solution, generated template and variants."""
    (root / "assignments" / "toy" / "tests").mkdir(parents=True)
    (root / "autograde_tests" / "toy").mkdir(parents=True)
    (root / "solutions" / "toy" / "variants").mkdir(parents=True)
    (root / "assignments" / "toy" / "assignment.toml").write_text(SPEC)
    (root / "autograde_tests" / "toy" / "test_toy.py").write_text(HIDDEN)
    solution = write_notebook(root / "solutions" / "toy" / "toy.ipynb", *SOLUTION)
    (root / "assignments" / "toy" / "toy.ipynb").write_text(template_text(solution))
    for name, source in variants.items():
        (root / "solutions" / "toy" / "variants" / name).write_text(source)
    if expected is not None:
        (root / "solutions" / "toy" / "variants" / "expected.toml").write_text(textwrap.dedent(expected))
    return load_assignment(root / "assignments" / "toy")


@pytest.mark.parametrize(
    ("text", "bound", "score", "full", "holds"),
    [
        ("== full", Bound("==", None), 100, 100, True),
        ("== full", Bound("==", None), 95, 100, False),
        ("< full", Bound("<", None), 95, 100, True),
        ("< full", Bound("<", None), 100, 100, False),
        ("== 45", Bound("==", 45), 45, 100, True),
        ("  ==45 ", Bound("==", 45), 45.5, 100, False),
        ("<= 40", Bound("<=", 40), 40, 100, True),
        ("<= 40", Bound("<=", 40), 40.5, 100, False),
        (">= 2.5", Bound(">=", 2.5), 2.5, 10, True),
        ("< 10", Bound("<", 10), 10, 10, False),
        ("> 0", Bound(">", 0), 0.5, 10, True),
        ("> 0", Bound(">", 0), 0, 10, False),
    ],
)
def test_bound_grammar(text: str, bound: Bound, score: float, full: float, holds: bool) -> None:
    assert parse_bound(text) == bound
    assert bound.holds(score, full) is holds


@pytest.mark.parametrize("text", ["", "full", "45", "= 45", "=< 40", "== -5", "<= forty", "!= full", "== full marks"])
def test_bounds_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r'is not a score bound; write one of "== full", "< full", "== N"'):
        parse_bound(text)


def test_bounds_print_as_written() -> None:
    assert [str(parse_bound(t)) for t in ("== full", "<=40", "> 2.5")] == ["== full", "<= 40", "> 2.5"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda text: text.replace('score = "== 5"', 'socre = "== 5"'),
            "[square_is_double] socre: unknown field; did you mean `score`? (the fields are kind, score, why, "
            "not_passed)",
        ),
        (
            lambda text: text.replace('score = "== 5"', ""),
            "[square_is_double] score: required field is missing; add `score = ...`",
        ),
        (
            lambda text: text.replace('score = "== 5"', 'score = "at most 5"'),
            "[square_is_double] score: 'at most 5' is not a score bound; write one of",
        ),
        (
            lambda text: text.replace('kind = "bug"', 'kind = "buggy"'),
            "[square_is_double] kind: Input should be 'bug' or 'correct' (got 'buggy')",
        ),
        (
            lambda text: text.replace('"failed" }', '"wrong" }'),
            "[square_is_double] not_passed.test_square: Input should be 'failed', 'error', 'timeout'",
        ),
        (
            lambda text: text.replace("[written_differently]", "[written_diferently]"),
            "no table [written_differently] for the variant file written_differently.py; add one",
        ),
        (
            lambda text: text.replace("[written_differently]", "[written_diferently]"),
            "[written_diferently] has no variant file written_diferently.py or written_diferently.ipynb in",
        ),
        (
            lambda text: text.replace('score = "== full"', 'score = ">= 9"'),
            '[written_differently]: kind = "correct" must score full marks: write score = "== full", not ">= 9"',
        ),
        (
            lambda text: text.replace('score = "== 5"', 'score = "== full"'),
            '[square_is_double]: kind = "bug" must score below full marks, but score = "== full" asks for full',
        ),
        (lambda text: text.replace("[square_is_double]", "[square_is_double"), "is not valid TOML"),
    ],
)
def test_expected_toml_mistakes_name_the_file_the_variant_and_the_field(tmp_path: Path, edit, message: str) -> None:
    assignment = build_course(tmp_path / "course", expected=edit(textwrap.dedent(EXPECTED)))
    variants_dir = assignment.solutions_dir / "variants"
    with pytest.raises(SpecError) as raised:
        load_expectations(variants_dir)
    assert str(variants_dir / "expected.toml") in str(raised.value)
    assert message in str(raised.value)


def test_variant_files_without_expected_toml_are_an_error(tmp_path: Path) -> None:
    assignment = build_course(tmp_path / "course", expected=None)
    with pytest.raises(SpecError, match=r"expected.toml does not exist: write one table per variant file "):
        load_expectations(assignment.solutions_dir / "variants")


def test_the_toml_parses_into_bounds_and_statuses(tmp_path: Path) -> None:
    expectations = load_expectations(build_course(tmp_path / "course").solutions_dir / "variants")
    assert expectations["square_is_double"].score == Bound("==", 5)
    assert expectations["square_is_double"].not_passed == {"test_square": "failed"}
    assert expectations["written_differently"].not_passed is None


def test_variants_that_meet_their_tables_pass(tmp_path: Path, sandbox_mode: str) -> None:
    check = check_variants(build_course(tmp_path / "course"), GradeSettings(sandbox=sandbox_mode))
    assert check.failures == []
    assert check.rows() == [
        ["square_is_double", "bug", "== 5", "5 / 10", "ok"],
        ["written_differently", "correct", "== full", "10 / 10", "ok"],
    ]
    bug = check.results[0]
    unlisted = bug.expected.model_copy(update={"not_passed": {"test_double": "timeout"}})
    assert check_variant(bug.name, unlisted, bug.report).failures == [
        "variant square_is_double (bug, score == 5): the tests that do not pass differ from not_passed: "
        "test_double is passed, not timeout; test_square is failed, not in not_passed"
    ]


def test_a_variant_outside_its_bound_fails_verify_naming_variant_bound_and_score(
    tmp_path: Path, sandbox_mode: str
) -> None:
    expected = EXPECTED.replace('score = "== 5"', 'score = "<= 3"').replace(
        '{ test_square = "failed" }', '{ test_square = "failed", test_double = "failed" }'
    )
    course = tmp_path / "course"
    assignment = build_course(course, expected=expected)
    verdict = verify_assignment(assignment, GradeSettings(sandbox=sandbox_mode), robustness=False)
    assert verdict.failures == [
        "variant square_is_double (bug, score <= 3): scored 5 of 10, which is not <= 3 (full = 10); "
        "expected.toml says why: square returns 2 x",
        "variant square_is_double (bug, score <= 3): the tests that do not pass differ from not_passed: "
        "test_double is passed, not failed",
    ]
    result = CliRunner().invoke(cli.main, ["verify", "--course", str(course), "--no-robustness"])
    assert result.exit_code == 1, result.output
    assert "square_is_double     bug      <= 3     5 / 10   FAIL" in result.output
    assert "scored 5 of 10, which is not <= 3 (full = 10); expected.toml says why: square returns 2 x" in result.output
    assert "failing: toy" in result.output


def test_a_bug_that_scores_full_marks_fails(tmp_path: Path, sandbox_mode: str) -> None:
    variants = {"square_is_double.py": VARIANTS["written_differently.py"]}
    expected = EXPECTED.split("[written_differently]")[0].replace('score = "== 5"', 'score = "< full"')
    expected = expected.replace('not_passed = { test_square = "failed" }', "")
    check = check_variants(build_course(tmp_path / "course", expected, variants), GradeSettings(sandbox=sandbox_mode))
    assert check.failures == ["variant square_is_double (bug, score < full): scored 10 of 10, which is not < full "
                              "(full = 10); expected.toml says why: square returns 2 x"]  # fmt: skip


def test_verify_reports_a_broken_expected_toml_and_no_folder_is_no_failure(tmp_path: Path, sandbox_mode: str) -> None:
    settings = GradeSettings(sandbox=sandbox_mode)
    broken = build_course(tmp_path / "broken", expected=EXPECTED.replace("why =", "whi ="))
    verdict = verify_assignment(broken, settings, robustness=False)
    path = broken.solutions_dir / "variants" / "expected.toml"
    assert verdict.failures == [
        f"{path}: [{name}] {line}"
        for name in ("square_is_double", "written_differently")
        for line in (
            "why: required field is missing; add `why = ...`",
            "whi: unknown field; did you mean `why`? (the fields are kind, score, why, not_passed)",
        )
    ]
    plain = build_course(tmp_path / "plain", expected=None, variants={})
    (plain.solutions_dir / "variants").rmdir()
    verdict = verify_assignment(plain, settings, robustness=False)
    assert verdict.ok, verdict.failures
    assert "no toy/variants folder: no known variants checked" in verdict.notes
