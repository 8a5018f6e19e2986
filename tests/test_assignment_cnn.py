"""The cnn assignment end to end: solution, template, samples and variants, in the sandbox."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from grader.api import grade
from grader.authoring import template_text
from grader.report import SubmissionReport
from grader.settings import GradeSettings
from grader.spec import load_assignment

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = REPO_ROOT / "solutions" / "cnn" / "variants"
EXPECTED_VARIANTS: dict[str, dict[str, Any]] = tomllib.loads((VARIANTS / "expected.toml").read_text())
FULL_MARKS = 100.0
ACCURACY_TEST = "test_accuracy_on_held_out_digits"
INTEGRITY_TEST = "test_predictions_do_not_train_on_their_inputs"
LOGITS_TEST = "test_model_outputs_logits_not_probabilities"
ACTIVATION_TEST = "test_model_has_an_activation_after_each_convolution"
TRAINING_MODE_TEST = "test_train_runs_the_model_in_training_mode"
GRADIENT_TEST = "test_train_uses_each_batchs_own_gradient"
LOSS_TEST = "test_train_loss_decreases"
MEAN_LOSS_TEST = "test_train_returns_mean_epoch_losses"

# Score, and the status of every test that does not pass; samples/cnn/EXPECTED.md explains them.
EXPECTED_SAMPLES = {
    "correct.ipynb": (100.0, {}),
    "partly_wrong.ipynb": (
        40.0,
        {
            LOGITS_TEST: "failed",
            TRAINING_MODE_TEST: "failed",
            LOSS_TEST: "failed",
            MEAN_LOSS_TEST: "failed",
            ACCURACY_TEST: "failed",
        },
    ),
    "broken.ipynb": (
        5.0,
        {
            "test_model_output_shape_and_dtype": "error",
            LOGITS_TEST: "error",
            "test_model_uses_a_convolution": "error",
            ACTIVATION_TEST: "error",
            "test_train_updates_the_parameters": "error",
            TRAINING_MODE_TEST: "error",
            GRADIENT_TEST: "error",
            LOSS_TEST: "error",
            MEAN_LOSS_TEST: "error",
            INTEGRITY_TEST: "error",
            ACCURACY_TEST: "error",
        },
    ),
}

# What the student reads about each variant's main fault (a fragment of the test's message).
VARIANT_MESSAGES = {
    "never_steps_optimizer": {
        "test_train_updates_the_parameters": "none of the model's 6 parameter tensors has changed",
        LOSS_TEST: "do not decrease over 4 epochs",
    },
    "trains_on_test_inputs": {
        INTEGRITY_TEST: "changed while the model was only asked to predict",
        ACCURACY_TEST: "predictions not accepted: 6 parameter or buffer tensors changed",
    },
    "exceeds_time_budget": {ACCURACY_TEST: "longer than the time limit per call of 30 s"},
    "no_convolution": {
        "test_model_uses_a_convolution": "the model has no nn.Conv2d layer",
        ACCURACY_TEST: "only credited for a model that follows the rules",
    },
    "too_many_parameters": {
        "test_model_is_within_parameter_budget": "263882 parameters; at most 50000 are allowed",
        ACCURACY_TEST: "263882 parameters is over the budget of 50000",
    },
    "no_nonlinearity": {ACTIVATION_TEST: "the model is an affine function of its input"},
    "no_activation_function": {
        ACTIVATION_TEST: "2 of the model's 2 convolutions pass their output on to the next layer without an activation"
    },
    "softmax_before_cross_entropy": {
        LOGITS_TEST: "the model's outputs are probabilities",
        ACCURACY_TEST: "not credited: the model's outputs are probabilities",
    },
    "loss_summed_over_batches": {MEAN_LOSS_TEST: "for epoch 1 is 16 times the mean of the 16 batch losses"},
    "loss_of_last_batch": {MEAN_LOSS_TEST: "the mean of the 16 batch losses it computed in that epoch"},
    "evaluates_each_epoch_in_eval_mode": {
        TRAINING_MODE_TEST: "48 of the 64 forward passes of train() ran the model in evaluation mode"
    },
    "no_zero_grad": {
        GRADIENT_TEST: "in 63 of the 64 backward passes of train(), the new gradients were added",
        ACCURACY_TEST: "not credited: 644 of its training steps used gradients added to those of earlier batches",
    },
    "dropout_always_on": {INTEGRITY_TEST: "look for dropout left on"},
    "nll_loss_on_logits": {LOSS_TEST: "measured independently, the model's cross-entropy"},
    "shuffles_images_not_labels": {
        LOSS_TEST: "in 64 of the 64 batches whose labels could be checked, the loss was given labels",
        ACCURACY_TEST: "is below 0.50",
    },
}


def grade_cnn(path: Path, course: Path, sandbox_mode: str) -> SubmissionReport:
    assignment = load_assignment(course / "assignments" / "cnn")
    return grade(path, assignment, GradeSettings(sandbox=sandbox_mode))


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


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


def test_every_variant_has_an_expectation_and_a_docstring() -> None:
    files = {path.stem: path for path in VARIANTS.iterdir() if path.suffix in (".py", ".ipynb")}
    assert set(files) == set(EXPECTED_VARIANTS), "solutions/cnn/variants and its expected.toml disagree"
    for name, expected in EXPECTED_VARIANTS.items():
        assert expected["kind"] in ("bug", "correct"), name
        operator, value = expected["score"].split()
        assert operator in ("==", "<", "<=", ">", ">=") and (value == "full" or float(value) >= 0), name
        assert expected["why"], name
        if expected["kind"] == "correct":
            assert expected["score"] == "== full" and "not_passed" not in expected, name
        assert files[name].read_text().startswith('"""'), f"{name}: the module docstring says what it is and why"
    assert set(VARIANT_MESSAGES) <= set(EXPECTED_VARIANTS)


def test_template_is_generated_from_the_solution(repo_course: Path) -> None:
    solution = repo_course / "solutions" / "cnn" / "cnn.ipynb"
    template = repo_course / "assignments" / "cnn" / "cnn.ipynb"
    assert template.read_text() == template_text(solution), (
        "assignments/cnn/cnn.ipynb is out of date: regenerate it with grader.authoring.template_text"
    )


@pytest.mark.slow
def test_solution_scores_full_marks(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_cnn(repo_course / "solutions" / "cnn" / "cnn.ipynb", repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.max_score == FULL_MARKS
    assert report.score == FULL_MARKS, not_passed(report)
    assert all(cell.ok for cell in report.cells)
    assert report.warnings == []


@pytest.mark.slow
def test_template_scores_zero(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_cnn(repo_course / "assignments" / "cnn" / "cnn.ipynb", repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score == 0.0
    assert all("NotImplementedError" in test.message for test in report.tests)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    score, statuses = EXPECTED_SAMPLES[name]
    report = grade_cnn(repo_course / "samples" / "cnn" / name, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, not_passed(report)) == (score, statuses)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_VARIANTS))
def test_variant_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    expected = EXPECTED_VARIANTS[name]
    path = next((repo_course / "solutions" / "cnn" / "variants").glob(f"{name}.*"))
    report = grade_cnn(path, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None and report.max_score == FULL_MARKS
    if expected["kind"] == "bug":
        assert report.score < FULL_MARKS, f"{name} is a bug but scored full marks"
    else:
        assert report.score == FULL_MARKS, not_passed(report)
    assert within(expected["score"], report.score, FULL_MARKS), (expected["score"], report.score, not_passed(report))
    assert not_passed(report) == expected.get("not_passed", {})
    messages = {test.name: test.message for test in report.tests}
    for test_name, fragment in VARIANT_MESSAGES.get(name, {}).items():
        assert fragment in messages[test_name], (test_name, messages[test_name])


@pytest.mark.slow
def test_grading_the_solution_is_deterministic(repo_course: Path, sandbox_mode: str) -> None:
    solution = repo_course / "solutions" / "cnn" / "cnn.ipynb"
    runs = [grade_cnn(solution, repo_course, sandbox_mode) for _ in range(5)]
    outcomes = {
        (
            report.score,
            tuple((test.name, test.status, test.score) for test in report.tests),
            {t.name: t.metrics for t in report.tests}[ACCURACY_TEST].get("accuracy"),
        )
        for report in runs
    }
    assert len(outcomes) == 1, outcomes
    assert runs[0].score == FULL_MARKS
