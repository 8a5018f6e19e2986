"""The explainability assignment end to end: data, solution, template, samples and variants, in the sandbox."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from grader.api import grade
from grader.authoring import template_text
from grader.report import SubmissionReport
from grader.settings import GradeSettings
from grader.spec import load_assignment
from grader.static_checks import check_cells
from grader.submission import Cell

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME = "explainability"
VARIANTS = REPO_ROOT / "solutions" / NAME / "variants"
EXPECTED_VARIANTS = tomllib.loads((VARIANTS / "expected.toml").read_text())
FULL_MARKS = 100.0

# Score, and the status of every test that does not pass; samples/explainability/EXPECTED.md explains them.
EXPECTED_SAMPLES: dict[str, tuple[float, dict[str, str]]] = {
    "correct": (100.0, {}),
    "partly_wrong": (
        64.0,
        {
            "test_saliency_matches_reference": "failed",
            "test_integrated_gradients_from_a_black_image": "failed",
            "test_integrated_gradients_from_a_noise_baseline": "failed",
        },
    ),
    "broken": (
        0.0,
        {
            "test_saliency_shape": "failed",
            "test_integrated_gradients_shape": "error",
            "test_grad_cam_shape": "failed",
            "test_saliency_matches_reference": "failed",
            "test_integrated_gradients_from_a_black_image": "error",
            "test_integrated_gradients_from_a_noise_baseline": "error",
            "test_integrated_gradients_completeness": "error",
            "test_grad_cam_on_conv2": "failed",
            "test_grad_cam_on_conv1": "failed",
            "test_saliency_changes_when_weights_are_randomised": "failed",
            "test_integrated_gradients_change_when_weights_are_randomised": "error",
            "test_grad_cam_changes_when_weights_are_randomised": "failed",
            "test_methods_leave_the_model_as_they_found_it": "failed",
        },
    ),
}
# Cells that raise when the notebook is loaded: {cell index: exception type}.
EXPECTED_CELL_ERRORS = {"broken": {6: "NameError", 7: "SyntaxError"}}
NO_SALIENCY = "the submission does not define saliency: check that the cell defining it runs without an error"
# The exact first line a student reads, for the outcomes whose message is the point.
EXPECTED_MESSAGES = {
    "broken": {
        "test_saliency_matches_reference": NO_SALIENCY,
        "test_grad_cam_on_conv2": "grad_cam() should return a torch tensor of shape (8, 8, 8), not a NoneType",
    },
    "partly_wrong": {
        "test_saliency_matches_reference": "saliency maps have negative entries: the saliency of a pixel is the "
        "absolute value of the gradient of the target logit with respect to it",
    },
    "saliency_without_abs": {
        "test_saliency_matches_reference": "saliency maps have negative entries: the saliency of a pixel is the "
        "absolute value of the gradient of the target logit with respect to it",
    },
    "grad_cam_without_relu": {
        "test_grad_cam_on_conv2": "Grad-CAM on conv2: the maps have negative entries; Grad-CAM keeps only the "
        "positive part of the weighted sum of activation maps (a ReLU)",
    },
    "integrated_gradients_with_abs": {
        "test_integrated_gradients_from_a_black_image": "integrated gradients from a black image: all your "
        "attributions are non-negative, but attributions are signed (a pixel can speak against the class): "
        "do not take an absolute value",
    },
    "leaves_hooks_registered": {
        "test_methods_leave_the_model_as_they_found_it": "the methods changed the model they were given: hooks are "
        "still registered on the model's layers (remove each handle when done)",
    },
}
# A fragment of the message, where the whole text carries measured numbers.
EXPECTED_FRAGMENTS = {
    "grad_cam_weights_summed_over_space": {
        "test_grad_cam_on_conv2": "they are proportional to the right maps, off by one constant factor",
    },
    "uses_global_model": {
        "test_saliency_changes_when_weights_are_randomised": "with the weights of fc re-drawn at random, the maps "
        "hardly change (mean distance 0 ",
    },
    "integrated_gradients_times_input": {
        "test_integrated_gradients_completeness": "completeness from a noise baseline with 256 steps",
    },
}
# The engine's wording around it may change; the rule broken and where are what a student must read.
FORBIDDEN_FRAGMENT = "forbids: import of captum (cell 3, line 4)"


def grade_explainability(course: Path, submission: Path, sandbox_mode: str, **settings: object) -> SubmissionReport:
    """Grade one file against the course copy's explainability assignment."""
    assignment = load_assignment(course / "assignments" / NAME)
    return grade(submission, assignment, GradeSettings(sandbox=sandbox_mode, **settings))  # type: ignore[arg-type]


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


def check_messages(report: SubmissionReport, name: str) -> None:
    """EXPECTED_MESSAGES word for word (first line: pytest's outer rewriting may append more), fragments too."""
    messages = {test.name: test.message.split("\n")[0] for test in report.tests}
    for test_name, message in EXPECTED_MESSAGES.get(name, {}).items():
        assert messages[test_name] == message, f"{test_name}: {messages[test_name]!r}"
    for test_name, fragment in EXPECTED_FRAGMENTS.get(name, {}).items():
        assert fragment in messages[test_name], f"{test_name}: {messages[test_name]!r}"


def score_holds(bound: str, score: float, full: float) -> bool:
    """Whether `score` satisfies an expected.toml bound such as "== 84", "< full" or ">= 50"."""
    match = re.fullmatch(r"\s*(==|<=|>=|<|>)\s*(full|[0-9.]+)\s*", bound)
    assert match, f"cannot read the score bound {bound!r}"
    operator, value = match.group(1), full if match.group(2) == "full" else float(match.group(2))
    return {
        "==": score == value,
        "<=": score <= value,
        ">=": score >= value,
        "<": score < value,
        ">": score > value,
    }[operator]


def class_source(source: str, name: str = "DigitsCNN") -> str:
    """The source of class `name` in `source`, normalised by the AST (comments and spacing aside)."""
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.dump(node)


# ---------------------------------------------------------------- fast checks


def test_template_is_generated_from_the_solution() -> None:
    solution = REPO_ROOT / "solutions" / NAME / f"{NAME}.ipynb"
    template = REPO_ROOT / "assignments" / NAME / f"{NAME}.ipynb"
    assert template.read_text() == template_text(solution), (
        "assignments/explainability/explainability.ipynb is out of date: regenerate it with "
        "grader.authoring.template_text"
    )


def test_template_gives_students_the_network_the_grader_builds() -> None:
    """DigitsCNN in the template (outside any solution block) is the probes' class, which the grader uses."""
    notebook = nbformat.read(REPO_ROOT / "assignments" / NAME / f"{NAME}.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if c.cell_type == "code" and "class DigitsCNN" in c.source)
    assert "NotImplementedError" not in cell, "DigitsCNN must be given, not left to the student"
    probes = (REPO_ROOT / "autograde_tests" / NAME / "probes.py").read_text()
    assert class_source(cell) == class_source(probes)


def test_shipped_weights_load_safely_and_classify_the_digits() -> None:
    """digits_cnn.pt loads with weights_only=True into DigitsCNN and still classifies the digits."""
    import runpy

    from sklearn.datasets import load_digits

    path = REPO_ROOT / "assignments" / NAME / "data" / "digits_cnn.pt"
    assert path.stat().st_size < 100_000
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = runpy.run_path(str(REPO_ROOT / "autograde_tests" / NAME / "probes.py"))["DigitsCNN"]()
    model.load_state_dict(state)  # strict: the same names and shapes
    model.eval()
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor((images / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1).numpy() == labels).mean())
    assert accuracy >= 0.97, accuracy


def test_the_data_folder_is_the_assignments_public_one() -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / NAME)
    assert assignment.data_dir == (REPO_ROOT / "assignments" / NAME / "data").resolve()
    assert sorted(p.name for p in assignment.data_dir.iterdir()) == ["digits_cnn.pt"]


def test_hidden_tests_read_scikit_learns_digits_without_importing_it() -> None:
    import runpy

    from sklearn.datasets import load_digits

    digits = runpy.run_path(str(REPO_ROOT / "autograde_tests" / NAME / "conftest.py"))["digits"]
    images, labels = digits()
    expected_images, expected_labels = load_digits(return_X_y=True)
    assert np.array_equal(images, (expected_images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
    assert np.array_equal(labels, expected_labels)


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("import captum", "captum"),
        ("from captum.attr import IntegratedGradients", "captum"),
        ("import pytorch_grad_cam", "pytorch_grad_cam"),
        ("from torchcam.methods import GradCAM", "torchcam"),
        ("import zennit.attribution", "zennit"),
    ],
)
def test_the_spec_forbids_explanation_libraries(source: str, forbidden: str) -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / NAME)
    violations = check_cells((Cell(0, source),), assignment.spec.static)
    assert [v.what for v in violations][:1] == [f"import of {forbidden}"]


def test_variants_table_names_every_variant_file() -> None:
    files = {path.stem for path in VARIANTS.glob("*.py")}
    assert files == set(EXPECTED_VARIANTS)
    kinds = {entry["kind"] for entry in EXPECTED_VARIANTS.values()}
    assert kinds == {"bug", "correct"}
    assert sum(entry["kind"] == "correct" for entry in EXPECTED_VARIANTS.values()) >= 2


def test_forbidden_submission_is_never_run(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_explainability(
        repo_course, repo_course / "solutions" / NAME / "variants" / "imports_captum.py", sandbox_mode
    )
    assert (report.status, report.score) == ("graded", 0.0)
    assert report.resources.worker_starts == 0
    assert all(FORBIDDEN_FRAGMENT in test.message for test in report.tests), [t.message for t in report.tests]


# ---------------------------------------------------------------- gradings in the sandbox


@pytest.mark.slow
def test_solution_scores_full_marks(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_explainability(repo_course, repo_course / "solutions" / NAME / f"{NAME}.ipynb", sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, report.max_score) == (FULL_MARKS, FULL_MARKS), not_passed(report)
    assert all(cell.ok for cell in report.cells)
    assert report.warnings == []


@pytest.mark.slow
def test_template_scores_zero_and_is_graded(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_explainability(repo_course, repo_course / "assignments" / NAME / f"{NAME}.ipynb", sandbox_mode)
    assert (report.status, report.score, report.max_score) == ("graded", 0.0, FULL_MARKS)
    assert {test.status for test in report.tests} == {"error"}
    assert all("NotImplementedError" in test.message for test in report.tests)


@pytest.mark.slow
def test_visible_tests_pass_on_the_solution_and_not_on_the_template(repo_course: Path, sandbox_mode: str) -> None:
    solution = grade_explainability(
        repo_course, repo_course / "solutions" / NAME / f"{NAME}.ipynb", sandbox_mode, tests="visible"
    )
    template = grade_explainability(
        repo_course, repo_course / "assignments" / NAME / f"{NAME}.ipynb", sandbox_mode, tests="visible"
    )
    assert (solution.status, solution.score, solution.max_score) == ("graded", 4.0, 4.0), not_passed(solution)
    assert (template.status, template.score) == ("graded", 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(repo_course: Path, sandbox_mode: str, name: str) -> None:
    score, statuses = EXPECTED_SAMPLES[name]
    report = grade_explainability(repo_course, repo_course / "samples" / NAME / f"{name}.ipynb", sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score == score, [(t.name, t.score, t.message) for t in report.tests]
    assert not_passed(report) == statuses
    check_messages(report, name)
    failing = {cell.index: cell.message.split(":")[0] for cell in report.cells if not cell.ok}
    assert failing == EXPECTED_CELL_ERRORS.get(name, {})


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_VARIANTS))
def test_variant_gets_its_expected_score(repo_course: Path, sandbox_mode: str, name: str) -> None:
    expected = EXPECTED_VARIANTS[name]
    report = grade_explainability(
        repo_course, repo_course / "solutions" / NAME / "variants" / f"{name}.py", sandbox_mode
    )
    assert report.status == "graded", report.message
    assert score_holds(expected["score"], report.score, report.max_score), (report.score, not_passed(report))
    if expected["kind"] == "bug":
        assert report.score < report.max_score
    else:
        assert report.score == report.max_score, not_passed(report)
    if "not_passed" in expected:
        assert not_passed(report) == expected["not_passed"]
    check_messages(report, name)
