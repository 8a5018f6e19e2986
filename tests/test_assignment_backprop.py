"""The backprop assignment end to end in the real sandbox: solution, template, samples and variants."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from grader.api import grade
from grader.authoring import template_text
from grader.settings import GradeSettings
from grader.spec import load_assignment
from tests.conftest import REPO_ROOT


def grade_file(course: Path, path: Path, sandbox: str, tests: str = "hidden"):
    assignment = load_assignment(course / "assignments" / "backprop")
    return grade(path, assignment, GradeSettings(sandbox=sandbox, tests=tests))  # type: ignore[arg-type]


def scores(report) -> dict[str, float]:
    return {t.name: t.score for t in report.tests}


def test_solution_scores_full_marks(repo_course, sandbox_mode):
    report = grade_file(repo_course, repo_course / "solutions" / "backprop" / "backprop.ipynb", sandbox_mode)
    assert report.status == "graded"
    assert report.score == report.max_score == 100
    assert {t.status for t in report.tests} == {"passed"}


def test_template_scores_zero_and_is_graded(repo_course, sandbox_mode):
    report = grade_file(repo_course, repo_course / "assignments" / "backprop" / "backprop.ipynb", sandbox_mode)
    assert report.status == "graded"
    assert report.score == 0 and report.max_score == 100
    assert {t.status for t in report.tests} == {"error"}
    assert all("NotImplementedError" in t.message for t in report.tests)


def test_partly_wrong_gets_exactly_its_partial_points(repo_course, sandbox_mode):
    report = grade_file(repo_course, repo_course / "samples" / "backprop" / "partly_wrong.ipynb", sandbox_mode)
    assert report.status == "graded"
    assert report.score == 65
    got = scores(report)
    assert got["test_linear_backward"] == 0
    assert got["test_sigmoid_backward"] == 0
    assert got["test_softmax_cross_entropy_loss"] == 5
    assert got["test_softmax_cross_entropy_gradient"] == 5
    message = next(t.message for t in report.tests if t.name == "test_linear_backward")
    assert message == "dx has shape (4, 15), expected shape (4, 3, 5)"


def test_broken_notebook_keeps_what_works(repo_course, sandbox_mode):
    report = grade_file(repo_course, repo_course / "samples" / "backprop" / "broken.ipynb", sandbox_mode)
    assert report.status == "graded"
    assert report.score == 40
    assert any("shell command '!pip install tqdm' was not run" in w for w in report.warnings)
    failing = [c for c in report.cells if not c.ok]
    assert [c.message.split(":")[0] for c in failing] == ["NameError", "SyntaxError"]


def test_correct_sample_scores_full_marks(repo_course, sandbox_mode):
    report = grade_file(repo_course, repo_course / "samples" / "backprop" / "correct.ipynb", sandbox_mode)
    assert report.score == 100


def test_visible_tests_pass_on_the_solution_and_fail_on_the_template(repo_course, sandbox_mode):
    solution = grade_file(
        repo_course, repo_course / "solutions" / "backprop" / "backprop.ipynb", sandbox_mode, tests="visible"
    )
    template = grade_file(
        repo_course, repo_course / "assignments" / "backprop" / "backprop.ipynb", sandbox_mode, tests="visible"
    )
    assert solution.status == template.status == "graded"
    assert solution.score == solution.max_score > 0
    assert template.score == 0


def test_committed_template_is_generated_from_the_solution():
    expected = template_text(REPO_ROOT / "solutions" / "backprop" / "backprop.ipynb")
    committed = (REPO_ROOT / "assignments" / "backprop" / "backprop.ipynb").read_text()
    assert committed == expected, "assignments/backprop/backprop.ipynb drifted: run `grader release backprop`"


@pytest.mark.parametrize("name", ["correct", "partly_wrong", "broken"])
def test_samples_have_no_solution_markers_leaking_hidden_code(name):
    text = (REPO_ROOT / "samples" / "backprop" / f"{name}.ipynb").read_text()
    assert "autograde_tests" not in text


def test_stored_digits_split_is_scikit_learns_split():
    """The hidden tests read the digits without importing scikit-learn (1.8 s per grading process);
    the data and split they get must be exactly load_digits + train_test_split(random_state=0)."""
    import importlib.util

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    spec = importlib.util.spec_from_file_location(
        "backprop_conftest", REPO_ROOT / "autograde_tests/backprop/conftest.py"
    )
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    stored = conftest._digits_split()
    images, labels = load_digits(return_X_y=True)
    expected = train_test_split(images / 16.0, labels, test_size=450, stratify=labels, random_state=0)
    for got, want in zip((stored.x_train, stored.x_test, stored.y_train, stored.y_test), expected, strict=True):
        assert got.dtype == (np.float64 if want.dtype.kind == "f" else np.int64)
        np.testing.assert_array_equal(got, want)
    assert not stored.x_train.flags.writeable


# ---------------------------------------------------------------- variants (solutions/backprop/variants)

VARIANTS = REPO_ROOT / "solutions" / "backprop" / "variants"
EXPECTED_VARIANTS: dict[str, dict[str, Any]] = tomllib.loads((VARIANTS / "expected.toml").read_text())
# What the student reads about each bug (a fragment of the test's message).
VARIANT_MESSAGES = {
    "db_averaged_over_the_batch": {"test_linear_backward": "db: relative error against a numerical gradient"},
    "relu_backward_masks_by_upstream_gradient": {"test_relu_backward": "relu_backward output: 31 of 60 entries"},
    "sigmoid_backward_from_the_input": {"test_sigmoid_backward": "sigmoid_backward output: 18 of 18 entries"},
    "softmax_gradient_not_divided_by_the_batch": {"test_softmax_cross_entropy_gradient": "dlogits: 35 of 35 entries"},
    "softmax_without_the_max_shift": {
        "test_softmax_cross_entropy_loss": "subtract the row maximum before exponentiating",
        "test_softmax_cross_entropy_gradient": "entries of dlogits are nan or inf for logits near 1000",
    },
}


def within(bound: str, score: float, full: float) -> bool:
    """Whether `score` meets an expected.toml bound such as "== full", "< full" or "<= 40"."""
    operator, value = bound.split()
    target = full if value == "full" else float(value)
    checks = {
        "==": score == target,
        "<": score < target,
        "<=": score <= target,
        ">": score > target,
        ">=": score >= target,
    }
    return checks[operator]


def test_every_variant_has_an_expectation():
    files = {path.stem for path in VARIANTS.iterdir() if path.suffix in (".py", ".ipynb")}
    assert files == set(EXPECTED_VARIANTS), "solutions/backprop/variants and its expected.toml disagree"
    kinds = [expected["kind"] for expected in EXPECTED_VARIANTS.values()]
    assert kinds.count("bug") >= 4 and kinds.count("correct") >= 2
    for name, expected in EXPECTED_VARIANTS.items():
        assert expected["kind"] in ("bug", "correct") and expected["why"], name
        if expected["kind"] == "correct":
            assert expected["score"] == "== full" and "not_passed" not in expected, name
    assert set(VARIANT_MESSAGES) <= set(EXPECTED_VARIANTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_VARIANTS))
def test_variant_gets_its_expected_score(name, repo_course, sandbox_mode):
    expected = EXPECTED_VARIANTS[name]
    path = next((repo_course / "solutions" / "backprop" / "variants").glob(f"{name}.*"))
    report = grade_file(repo_course, path, sandbox_mode)
    assert report.status == "graded", report.message
    if expected["kind"] == "bug":
        assert report.score < report.max_score, f"{name} is a bug but scored full marks"
    else:
        assert report.score == report.max_score, scores(report)
    assert within(expected["score"], report.score, report.max_score), scores(report)
    assert {t.name: t.status for t in report.tests if t.status != "passed"} == expected.get("not_passed", {})
    messages = {t.name: t.message for t in report.tests}
    for test_name, fragment in VARIANT_MESSAGES.get(name, {}).items():
        assert fragment in messages[test_name], (test_name, messages[test_name])
