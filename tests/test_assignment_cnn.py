"""The cnn assignment end to end: solution, template, samples and buggy variants, in the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.api import grade
from grader.authoring import template_text
from grader.report import SubmissionReport
from grader.settings import GradeSettings
from grader.spec import load_assignment

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cnn"
FULL_MARKS = 100.0
ACCURACY_TEST = "test_accuracy_on_held_out_digits"
INTEGRITY_TEST = "test_predictions_do_not_train_on_their_inputs"

# Score, and the status of every test that does not pass; samples/cnn/EXPECTED.md explains them.
EXPECTED_SAMPLES = {
    "correct.ipynb": (100.0, {}),
    "partly_wrong.ipynb": (
        65.0,
        {"test_train_loss_decreases": "failed", ACCURACY_TEST: "failed"},
    ),
    "broken.ipynb": (
        5.0,
        {
            "test_model_output_shape_and_dtype": "error",
            "test_model_uses_a_convolution": "error",
            "test_train_updates_the_parameters": "error",
            "test_train_loss_decreases": "error",
            INTEGRITY_TEST: "error",
            ACCURACY_TEST: "error",
        },
    ),
}
# Each buggy variant is named for its outcome; the docstring of each file says why.
EXPECTED_VARIANTS = {
    "never_steps_optimizer.py": (
        30.0,
        {
            "test_train_updates_the_parameters": "failed",
            "test_train_loss_decreases": "failed",
            ACCURACY_TEST: "failed",
        },
    ),
    "trains_on_test_inputs.py": (40.0, {INTEGRITY_TEST: "failed", ACCURACY_TEST: "failed"}),
    "exceeds_time_budget.py": (50.0, {ACCURACY_TEST: "timeout"}),
    "no_convolution.py": (45.0, {"test_model_uses_a_convolution": "failed", ACCURACY_TEST: "failed"}),
    "too_many_parameters.py": (
        45.0,
        {"test_model_is_within_parameter_budget": "failed", ACCURACY_TEST: "failed"},
    ),
}

# What the student reads about each variant's main fault (a fragment of the test's message).
VARIANT_MESSAGES = {
    "never_steps_optimizer.py": {
        "test_train_updates_the_parameters": "none of the model's 6 parameter tensors has changed",
        "test_train_loss_decreases": "do not decrease over 4 epochs",
    },
    "trains_on_test_inputs.py": {
        INTEGRITY_TEST: "changed while the model was only asked to predict",
        ACCURACY_TEST: "predictions not accepted: 6 parameter or buffer tensors changed",
    },
    "exceeds_time_budget.py": {ACCURACY_TEST: "longer than the time limit per call of 30 s"},
    "no_convolution.py": {
        "test_model_uses_a_convolution": "the model has no nn.Conv2d layer",
        ACCURACY_TEST: "only credited for a model that follows the rules",
    },
    "too_many_parameters.py": {
        "test_model_is_within_parameter_budget": "263882 parameters; at most 50000 are allowed",
        ACCURACY_TEST: "263882 parameters is over the budget of 50000",
    },
}


def grade_cnn(path: Path, course: Path, sandbox_mode: str) -> SubmissionReport:
    assignment = load_assignment(course / "assignments" / "cnn")
    return grade(path, assignment, GradeSettings(sandbox=sandbox_mode))


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


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
def test_buggy_variant_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    score, statuses = EXPECTED_VARIANTS[name]
    report = grade_cnn(FIXTURES / name, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None and report.score < FULL_MARKS
    assert (report.score, not_passed(report)) == (score, statuses)
    messages = {test.name: test.message for test in report.tests}
    for test_name, fragment in VARIANT_MESSAGES[name].items():
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
