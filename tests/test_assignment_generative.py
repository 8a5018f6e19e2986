"""The generative assignment end to end, in the real sandbox: solution, template, visible tests,
samples and the variants of solutions/generative/variants/ (expected.toml says how each scores)."""

from __future__ import annotations

import operator
import tomllib
from collections.abc import Callable
from pathlib import Path

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
VARIANTS = REPO_ROOT / "solutions" / "generative" / "variants"
FULL_MARKS = 100.0
RECONSTRUCTION, KL_BEHAVIOUR = "test_vae_reconstructs_held_out_digits", "test_vae_kl_term_behaves"
COVERAGE, NEAR_MODES = "test_gan_covers_the_modes", "test_gan_samples_land_near_the_modes"
D_STEP, G_STEP = "test_discriminator_step", "test_generator_step"

# Score, and the status of every test that does not pass; samples/generative/EXPECTED.md explains them.
EXPECTED_SAMPLES = {
    "correct": (100.0, {}),
    "partly_wrong": (
        76.0,
        {"test_gaussian_kl": "failed", "test_elbo_loss": "failed", "test_generator_loss": "failed", D_STEP: "failed"},
    ),
    "broken": (
        4.0,
        {
            "test_reparameterize_gradients": "failed",
            "test_reparameterize_samples": "failed",
            "test_gaussian_kl": "failed",
            "test_elbo_loss": "failed",
            RECONSTRUCTION: "failed",
            KL_BEHAVIOUR: "failed",
            "test_discriminator_loss": "failed",
            "test_generator_loss": "failed",
            "test_gan_shapes": "error",
            D_STEP: "error",
            G_STEP: "error",
            COVERAGE: "error",
            NEAR_MODES: "error",
        },
    ),
}
# Cells that raise when the broken sample is loaded: {cell index: exception type}.
BROKEN_CELL_ERRORS = {3: "SyntaxError", 5: "NameError", 11: "IndentationError"}
# What the student reads about a variant's main fault (a fragment of the test's message).
VARIANT_MESSAGES = {
    "kl_wrong_sign": {"test_gaussian_kl": "it has the wrong sign", "test_elbo_loss": "the kl term has the wrong sign"},
    "kl_missing_half": {"test_gaussian_kl": "the factor 1/2 is missing"},
    "logvar_as_std": {"test_reparameterize_gradients": "the gradient of z by logvar"},
    "sampling_without_reparameterization": {"test_reparameterize_gradients": "no gradient reaches mu"},
    "saturating_generator_loss": {"test_generator_loss": "this is the saturating loss"},
    "discriminator_on_non_detached_fakes": {D_STEP: "detach the fakes"},
    "labels_swapped": {"test_discriminator_loss": "the labels are swapped", D_STEP: "did not move the discriminator"},
    "one_optimizer_for_both_networks": {G_STEP: "the generator step changed the discriminator's parameters"},
    "discriminator_step_keeps_stale_gradients": {D_STEP: "clear the gradients"},
}
BOUNDS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def grade_generative(course: Path, submission: Path, sandbox_mode: str, **settings: object) -> SubmissionReport:
    """Grade one file against the course copy's generative assignment."""
    assignment = load_assignment(course / "assignments" / "generative")
    return grade(submission, assignment, GradeSettings(sandbox=sandbox_mode, **settings))  # type: ignore[arg-type]


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


def expected_variants() -> dict[str, dict[str, object]]:
    """solutions/generative/variants/expected.toml: one table per variant file."""
    return tomllib.loads((VARIANTS / "expected.toml").read_text())


def meets(score: float, bound: str) -> bool:
    """Whether `score` meets a bound such as "== full", "< full", ">= 60"."""
    comparison, value = bound.split()
    limit = FULL_MARKS if value == "full" else float(value)
    return BOUNDS[comparison](score, limit)


def test_template_is_generated_from_the_solution() -> None:
    solution = REPO_ROOT / "solutions" / "generative" / "generative.ipynb"
    template = REPO_ROOT / "assignments" / "generative" / "generative.ipynb"
    assert template.read_text() == template_text(solution), "regenerate the template from the solution"


def test_solution_breaks_no_rule_and_trains_nothing_at_the_top_level() -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / "generative")
    notebook = nbformat.read(REPO_ROOT / "solutions" / "generative" / "generative.ipynb", as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert check_cells(tuple(Cell(i, source) for i, source in enumerate(code)), assignment.spec.static) == []
    assert code[-1].startswith('if __name__ == "__main__":'), "the demo must stay behind __main__"


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("from torch.distributions import Normal", "import of torch.distributions"),
        ("z = torch.distributions.Normal(mu, std).rsample()", "use of distributions"),
        ("kl = D.kl_divergence(q, p)\nimport torch.distributions as D", "import of torch.distributions"),
        ("from sklearn.datasets import load_digits", "import of sklearn"),
    ],
)
def test_the_spec_forbids_torch_distributions_and_sklearn(source: str, forbidden: str) -> None:
    assignment = load_assignment(REPO_ROOT / "assignments" / "generative")
    violations = check_cells((Cell(0, source),), assignment.spec.static)
    assert forbidden in [v.what for v in violations]


def test_every_variant_has_an_expectation_and_a_docstring() -> None:
    expected = expected_variants()
    files = {path.stem: path for path in VARIANTS.glob("*.py")}
    assert set(files) == set(expected), "variants and expected.toml disagree"
    kinds = {name: entry["kind"] for name, entry in expected.items()}
    assert sum(kind == "correct" for kind in kinds.values()) >= 2
    for name, path in files.items():
        assert path.read_text().startswith('"""'), f"{name}.py: the module docstring says what it does and why"
        entry = expected[name]
        assert entry["kind"] in ("bug", "correct") and isinstance(entry["why"], str) and entry["why"], name
        bound = str(entry["score"])
        assert bound.split()[0] in BOUNDS, f"{name}: score bound {bound!r}"
        if entry["kind"] == "correct":
            assert bound == "== full", f"{name}: a correct variant must score full marks"


@pytest.mark.slow
def test_solution_scores_full_marks(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_generative(repo_course, repo_course / "solutions" / "generative" / "generative.ipynb", sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, report.max_score) == (FULL_MARKS, FULL_MARKS), not_passed(report)
    assert all(cell.ok for cell in report.cells)
    assert report.warnings == []


@pytest.mark.slow
def test_template_scores_zero_and_is_graded(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_generative(
        repo_course, repo_course / "assignments" / "generative" / "generative.ipynb", sandbox_mode
    )
    assert (report.status, report.score, report.max_score) == ("graded", 0.0, FULL_MARKS)
    assert {test.status for test in report.tests} == {"error"}
    assert all("NotImplementedError" in test.message for test in report.tests)


@pytest.mark.slow
def test_visible_tests_pass_on_the_solution_and_not_on_the_template(repo_course: Path, sandbox_mode: str) -> None:
    solution, template = (
        grade_generative(
            repo_course, repo_course / folder / "generative" / "generative.ipynb", sandbox_mode, tests="visible"
        )
        for folder in ("solutions", "assignments")
    )
    assert (solution.status, solution.score, solution.max_score) == ("graded", 5.0, 5.0), not_passed(solution)
    assert (template.status, template.score) == ("graded", 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    score, statuses = EXPECTED_SAMPLES[name]
    report = grade_generative(repo_course, repo_course / "samples" / "generative" / f"{name}.ipynb", sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, not_passed(report)) == (score, statuses), [(t.name, t.score, t.message) for t in report.tests]
    if name == "broken":
        failing = {cell.index: cell.message.split(":")[0] for cell in report.cells if not cell.ok}
        assert failing == BROKEN_CELL_ERRORS
        assert report.warnings == ["cell 1: shell command '!pip install torch' was not run"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(expected_variants()))
def test_variant_scores_as_expected(name: str, repo_course: Path, sandbox_mode: str) -> None:
    entry = expected_variants()[name]
    report = grade_generative(repo_course, VARIANTS / f"{name}.py", sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None and meets(report.score, str(entry["score"])), (report.score, not_passed(report))
    if entry["kind"] == "bug":
        assert report.score < FULL_MARKS
    if "not_passed" in entry:
        assert not_passed(report) == entry["not_passed"], [(t.name, t.score, t.message) for t in report.tests]
    messages = {test.name: test.message for test in report.tests}
    for test_name, fragment in VARIANT_MESSAGES.get(name, {}).items():
        assert fragment in messages[test_name], (test_name, messages[test_name])


@pytest.mark.slow
def test_grading_the_solution_is_deterministic(repo_course: Path, sandbox_mode: str) -> None:
    solution = repo_course / "solutions" / "generative" / "generative.ipynb"
    runs = [grade_generative(repo_course, solution, sandbox_mode) for _ in range(2)]
    outcomes = {
        tuple(
            (
                test.name,
                test.status,
                test.score,
                tuple(sorted((k, v) for k, v in test.metrics.items() if k != "train_seconds")),
            )
            for test in report.tests
        )
        for report in runs
    }
    assert len(outcomes) == 1, outcomes
    assert runs[0].score == FULL_MARKS
