"""The lstm assignment end to end, in the real sandbox: solution, template, samples, variants."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader.api import grade
from grader.authoring import template_text
from grader.report import SubmissionReport
from grader.settings import GradeSettings
from grader.spec import load_assignment
from grader.static_checks import check_cells
from grader.submission import Cell

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = REPO_ROOT / "solutions" / "lstm" / "variants"
EXPECTED_VARIANTS: dict[str, dict[str, Any]] = tomllib.loads((VARIANTS / "expected.toml").read_text())

SHAPES, FIRST_STEP, SEQUENCE = (
    "test_parameters_and_output_shapes",
    "test_first_step_matches_reference",
    "test_sequence_matches_reference",
)
INPUT_GRADIENTS, PARAMETER_GRADIENTS = "test_gradients_by_inputs_and_initial_state", "test_gradients_by_parameters"
TRAINING = "test_learns_running_sum"
ALL_TESTS = {SHAPES, FIRST_STEP, SEQUENCE, INPUT_GRADIENTS, PARAMETER_GRADIENTS, TRAINING}

# (score, the tests that pass); samples/lstm/EXPECTED.md explains each.
EXPECTED_SAMPLES = {
    "correct": (100.0, ALL_TESTS),
    "partly_wrong": (65.0, {SHAPES, FIRST_STEP, SEQUENCE, TRAINING}),
    "broken": (0.0, set()),
}
FORBIDDEN_MESSAGE = (
    "every test scores 0: the notebook uses what this assignment forbids: "
    "use of nn.LSTMCell (cell 2, line 8); use of torch.lstm_cell (cell 2, line 13)"
)
NO_LSTM_CELL = "the submission does not define LSTMCell: check that the cell defining it runs without an error"
# The exact text a student reads, for the outcomes whose message is the point.
EXPECTED_MESSAGES = {
    "broken": dict.fromkeys(ALL_TESTS, NO_LSTM_CELL),
    "partly_wrong": {
        INPUT_GRADIENTS: "h0, c0 received no gradient: the loss does not reach them through "
        "LSTMCell.forward (a .detach() of the input or state cuts the graph)"
    },
    "missing_bias": {PARAMETER_GRADIENTS: "bias_hh received no gradient: LSTMCell.forward does not use it"},
    "uses_nn_lstmcell": dict.fromkeys(ALL_TESTS, FORBIDDEN_MESSAGE),
}
# Cells that raise when the notebook is loaded: {cell index: exception type}.
EXPECTED_CELL_ERRORS = {"broken": {2: "NameError", 4: "SyntaxError"}}


def grade_lstm(course: Path, submission: Path, sandbox_mode: str, **settings: object) -> SubmissionReport:
    """Grade one file against the course copy's lstm assignment."""
    assignment = load_assignment(course / "assignments" / "lstm")
    return grade(submission, assignment, GradeSettings(sandbox=sandbox_mode, **settings))  # type: ignore[arg-type]


def passed(report: SubmissionReport) -> set[str]:
    """The names of the tests that passed."""
    return {test.name for test in report.tests if test.status == "passed"}


def check_messages(report: SubmissionReport, name: str) -> None:
    """The messages of EXPECTED_MESSAGES[name], word for word.

    Only the first line: under this outer pytest, its assertion-rewriting import hook also
    rewrites the hidden test module, which appends the failing expression's values to the
    message; `grader grade` runs without that hook and reports the first line alone.
    """
    messages = {test.name: test.message.split("\n")[0] for test in report.tests}
    for test_name, message in EXPECTED_MESSAGES.get(name, {}).items():
        assert messages[test_name] == message, f"{test_name}: {messages[test_name]!r}"


def not_passed(report: SubmissionReport) -> dict[str, str]:
    """The status of every test that did not pass."""
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


def training_loss(report: SubmissionReport) -> float:
    """The normalised test error the training test recorded."""
    return next(test for test in report.tests if test.name == TRAINING).metrics["final_loss"]


def test_template_is_generated_from_the_solution() -> None:
    solution = REPO_ROOT / "solutions" / "lstm" / "lstm.ipynb"
    template = REPO_ROOT / "assignments" / "lstm" / "lstm.ipynb"
    assert template.read_text() == template_text(solution), "regenerate the template from the solution"


def test_solution_notebook_defines_no_forbidden_call_and_no_top_level_training() -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / "lstm")
    notebook = nbformat.read(REPO_ROOT / "solutions" / "lstm" / "lstm.ipynb", as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert check_cells(tuple(Cell(i, source) for i, source in enumerate(code)), assignment.spec.static) == []
    assert code[-1].startswith('if __name__ == "__main__":'), "the training demo must stay behind __main__"


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("layer = torch.nn.LSTM(3, 5)", "nn.LSTM"),
        ("from torch.nn import LSTMCell as Cell", "nn.LSTMCell"),
        ("layer = nn.GRUCell(3, 5)", "nn.GRU*"),
        ("layer = nn.RNN(3, 5)", "nn.RNN*"),
        ("out = torch.lstm_cell(x, (h, c), w1, w2)", "torch.lstm_cell"),
        ("out = torch._VF.lstm_cell(x, (h, c), w1, w2)", "_VF.lstm_cell"),
    ],
)
def test_the_spec_forbids_every_recurrent_layer(source: str, forbidden: str) -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / "lstm")
    violations = check_cells((Cell(0, source),), assignment.spec.static)
    assert [v.what for v in violations] == [f"use of {forbidden}"]


@pytest.mark.slow
def test_template_scores_zero_and_is_graded(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_lstm(repo_course, repo_course / "assignments" / "lstm" / "lstm.ipynb", sandbox_mode)
    assert (report.status, report.score, report.max_score) == ("graded", 0.0, 100.0)
    assert {test.status for test in report.tests} == {"error"}
    assert all("NotImplementedError" in test.message for test in report.tests)


@pytest.mark.slow
def test_visible_tests_pass_on_the_solution_and_not_on_the_template(repo_course: Path, sandbox_mode: str) -> None:
    solution = grade_lstm(repo_course, repo_course / "solutions" / "lstm" / "lstm.ipynb", sandbox_mode, tests="visible")
    template = grade_lstm(
        repo_course, repo_course / "assignments" / "lstm" / "lstm.ipynb", sandbox_mode, tests="visible"
    )
    assert (solution.status, solution.score, solution.max_score) == ("graded", 4.0, 4.0)
    assert (template.status, template.score) == ("graded", 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(repo_course: Path, sandbox_mode: str, name: str) -> None:
    score, passing = EXPECTED_SAMPLES[name]
    report = grade_lstm(repo_course, repo_course / "samples" / "lstm" / f"{name}.ipynb", sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score == score, [(t.name, t.score, t.message) for t in report.tests]
    assert passed(report) == passing
    if name != "correct":
        assert report.score < report.max_score
    check_messages(report, name)
    failing = {cell.index: cell.message.split(":")[0] for cell in report.cells if not cell.ok}
    assert failing == EXPECTED_CELL_ERRORS.get(name, {})


def test_every_variant_has_an_expectation() -> None:
    files = {path.stem for path in VARIANTS.iterdir() if path.suffix in (".py", ".ipynb")}
    assert files == set(EXPECTED_VARIANTS), "solutions/lstm/variants and its expected.toml disagree"
    for name, expected in EXPECTED_VARIANTS.items():
        assert expected["kind"] in ("bug", "correct") and expected["why"], name
        assert set(expected.get("not_passed", {})) <= ALL_TESTS, name
        if expected["kind"] == "correct":
            assert expected["score"] == "== full" and "not_passed" not in expected, name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_VARIANTS))
def test_variant_gets_its_expected_score(repo_course: Path, sandbox_mode: str, name: str) -> None:
    expected = EXPECTED_VARIANTS[name]
    path = next((repo_course / "solutions" / "lstm" / "variants").glob(f"{name}.*"))
    report = grade_lstm(repo_course, path, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None and report.max_score == 100.0
    if expected["kind"] == "bug":
        assert report.score < report.max_score, f"{name} is a bug but scored full marks"
    else:
        assert report.score == report.max_score, not_passed(report)
    assert within(expected["score"], report.score, report.max_score), [
        (t.name, t.score, t.message) for t in report.tests
    ]
    assert not_passed(report) == expected.get("not_passed", {})
    check_messages(report, name)


def test_forbidden_submission_is_never_run(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_lstm(repo_course, VARIANTS / "uses_nn_lstmcell.py", sandbox_mode)
    assert report.resources.worker_starts == 0
    assert report.message == FORBIDDEN_MESSAGE
    assert report.warnings == []


@pytest.mark.slow
def test_solution_scores_full_marks_on_each_of_five_gradings(repo_course: Path, sandbox_mode: str) -> None:
    """Full marks, and the same to the last bit every time: one test, to grade only 5 times."""
    solution = repo_course / "solutions" / "lstm" / "lstm.ipynb"
    runs = [grade_lstm(repo_course, solution, sandbox_mode) for _ in range(5)]
    for report in runs:
        assert report.status == "graded", report.message
        assert (report.score, report.max_score) == (100.0, 100.0), [(t.name, t.message) for t in report.tests]
        assert all(cell.ok for cell in report.cells)
    losses = {training_loss(report) for report in runs}
    assert len(losses) == 1, f"the training loss varies between gradings: {sorted(losses)}"
