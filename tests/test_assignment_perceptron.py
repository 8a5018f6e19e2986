"""The perceptron assignment end to end: solution, template, samples and variants, in the real sandbox."""

from __future__ import annotations

import importlib.util
import operator
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from grader.api import grade
from grader.authoring import template_text
from grader.report import SubmissionReport
from grader.settings import GradeSettings
from grader.spec import load_assignment

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS_DIR = REPO_ROOT / "solutions" / "perceptron" / "variants"
FULL_MARKS = 100.0

BOUNDARY, UPDATE_TIES, LABELS = (
    "test_predict_on_the_boundary",
    "test_update_on_the_boundary",
    ("test_rejects_labels_other_than_minus_one_and_plus_one"),
)
CURVE, XOR = "test_mistake_curve_on_separable_data", "test_xor_does_not_converge_and_stops_after_its_epochs"

# Score and the status of every test that does not pass; samples/perceptron/EXPECTED.md explains them.
EXPECTED_SAMPLES = {
    "correct.ipynb": (100.0, {}),
    "partly_wrong.ipynb": (65.0, {BOUNDARY: "failed", LABELS: "failed", CURVE: "failed", XOR: "failed"}),
    "broken.ipynb": (
        15.0,
        {
            "test_update_on_a_mistake": "failed",
            UPDATE_TIES: "failed",
            "test_no_update_on_a_correct_point": "failed",
            LABELS: "failed",
            "test_training_converges_on_separable_data": "error",
            "test_final_weights_on_separable_data": "error",
            CURVE: "error",
            XOR: "error",
            "test_predictions_on_held_out_points": "error",
        },
    ),
}
# What the student reads about a variant's main fault (a fragment of the test's message).
VARIANT_MESSAGES = {
    "wrong_sign_update": {"test_update_on_a_mistake": "w moved the wrong way"},
    "no_bias_update": {"test_update_on_a_mistake": "b was not updated"},
    "ignores_learning_rate": {"test_final_weights_on_separable_data": "those of lr = 1.0, not of lr = 0.5"},
    "accepts_zero_one_labels": {LABELS: "accepted labels 0 and 1 (integers) without complaint"},
    "vague_label_error": {LABELS: "its message does not say what the labels must be"},
    "np_sign_predict": {BOUNDARY: "were not predicted +1"},
    "cumulative_mistakes": {CURVE: "mistakes_per_epoch is cumulative"},
    "stops_early_without_padding": {CURVE: "the counts are right, but training stopped after epoch"},
    "loops_until_no_mistakes": {XOR: "time limit per call of 5 s"},
    "updates_on_correct_points": {"test_no_update_on_a_correct_point": "already classified correctly"},
}
BOUND = re.compile(r"^(==|<=|>=|<|>)\s*(full|\d+(?:\.\d+)?)$")
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def grade_perceptron(path: Path, course: Path, sandbox_mode: str) -> SubmissionReport:
    assignment = load_assignment(course / "assignments" / "perceptron")
    return grade(path, assignment, GradeSettings(sandbox=sandbox_mode))


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


def expected_variants() -> dict[str, dict[str, Any]]:
    with (VARIANTS_DIR / "expected.toml").open("rb") as file:
        return tomllib.load(file)


def variant_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(VARIANTS_DIR.iterdir()) if path.suffix in (".py", ".ipynb")}


def score_holds(bound: str, score: float) -> bool:
    """Whether `score` satisfies a bound such as "== full" or "<= 45"."""
    match = BOUND.match(bound.strip())
    assert match, f"unreadable score bound {bound!r}"
    limit = FULL_MARKS if match.group(2) == "full" else float(match.group(2))
    return COMPARE[match.group(1)](score, limit)


def hidden_conftest() -> ModuleType:
    """autograde_tests/perceptron/conftest.py, imported under a name of its own."""
    path = REPO_ROOT / "autograde_tests" / "perceptron" / "conftest.py"
    spec = importlib.util.spec_from_file_location("perceptron_hidden_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_is_generated_from_the_solution(repo_course: Path) -> None:
    solution = repo_course / "solutions" / "perceptron" / "perceptron.ipynb"
    template = repo_course / "assignments" / "perceptron" / "perceptron.ipynb"
    assert template.read_text() == template_text(solution), (
        "assignments/perceptron/perceptron.ipynb is out of date: regenerate it with grader.authoring.template_text"
    )


def test_expected_toml_describes_every_variant() -> None:
    expected, files = expected_variants(), variant_files()
    assert set(expected) == set(files), (
        f"variants without a table or tables without a file: {set(expected) ^ set(files)}"
    )
    kinds = [table["kind"] for table in expected.values()]
    assert kinds.count("bug") >= 5 and kinds.count("correct") >= 2, kinds
    for name, table in expected.items():
        assert table["kind"] in ("bug", "correct"), name
        assert BOUND.match(table["score"]), (name, table["score"])
        assert table.get("why"), f"{name}: say why it scores as it does"
        if table["kind"] == "correct":
            assert table["score"] == "== full" and not table.get("not_passed"), name
        assert files[name].read_text().lstrip().startswith('"""'), f"{name}: the module docstring says what it does"


def test_reference_is_the_notebooks_rule_and_the_data_is_as_calibrated() -> None:
    """The trusted data and reference behave as NOTES.md says, on the first ten seeds (no sandbox)."""
    hidden = hidden_conftest()
    for seed in range(10):
        data = hidden.make_separable(seed, 7)
        assert not data.x_train.flags.writeable
        assert np.all(data.x_train == np.round(data.x_train)), "inputs must stay integers (exact arithmetic)"
        w, b, curve = hidden.Reference.train(data.x_train, data.y_train, 100, 1.0)
        assert curve[-1] == 0 and np.argmax(curve == 0) < 50, (seed, curve[:50])
        assert curve.sum() <= data.mistake_bound()
        assert np.all(data.y_train * (data.x_train @ w + b) > 0)
        accuracy = np.mean(hidden.Reference.predict(data.x_test, w, b) == data.y_test)
        assert accuracy >= 0.8, (seed, accuracy)
        xor_x, xor_y = hidden.make_noisy_xor(seed, 9)
        assert np.all(hidden.Reference.train(xor_x, xor_y, 50, 1.0)[2] > 0)
    assert hidden.make_separable(3, 7) is hidden.make_separable(3, 7)  # cached, so read-only matters


@pytest.mark.slow
def test_solution_scores_full_marks(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_perceptron(repo_course / "solutions" / "perceptron" / "perceptron.ipynb", repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.max_score == FULL_MARKS
    assert report.score == FULL_MARKS, not_passed(report)
    assert all(cell.ok for cell in report.cells)
    assert report.warnings == []


@pytest.mark.slow
def test_template_scores_zero(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_perceptron(
        repo_course / "assignments" / "perceptron" / "perceptron.ipynb", repo_course, sandbox_mode
    )
    assert report.status == "graded", report.message
    assert report.score == 0.0
    assert all("NotImplementedError" in test.message for test in report.tests), not_passed(report)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    score, statuses = EXPECTED_SAMPLES[name]
    report = grade_perceptron(repo_course / "samples" / "perceptron" / name, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, not_passed(report)) == (score, statuses)


@pytest.mark.slow
def test_broken_sample_cells_and_warnings(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_perceptron(repo_course / "samples" / "perceptron" / "broken.ipynb", repo_course, sandbox_mode)
    errors = {cell.index: cell.message.split(":")[0] for cell in report.cells if not cell.ok}
    assert errors == {5: "SyntaxError", 8: "NameError"}
    assert report.warnings == ["cell 1: shell command '!pip install tqdm' was not run"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(variant_files()))
def test_variant_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    table = expected_variants()[name]
    path = repo_course / "solutions" / "perceptron" / "variants" / variant_files()[name].name
    report = grade_perceptron(path, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None
    assert score_holds(table["score"], report.score), (table["score"], report.score, not_passed(report))
    if table["kind"] == "bug":
        assert report.score < FULL_MARKS
    assert not_passed(report) == table.get("not_passed", {})
    messages = {test.name: test.message for test in report.tests}
    for test_name, fragment in VARIANT_MESSAGES.get(name, {}).items():
        assert fragment in messages[test_name], (test_name, messages[test_name])


@pytest.mark.slow
def test_grading_the_solution_is_deterministic(repo_course: Path, sandbox_mode: str) -> None:
    solution = repo_course / "solutions" / "perceptron" / "perceptron.ipynb"
    runs = [grade_perceptron(solution, repo_course, sandbox_mode) for _ in range(3)]
    outcomes = {tuple((test.name, test.status, test.score, test.message) for test in report.tests) for report in runs}
    assert len(outcomes) == 1, outcomes
