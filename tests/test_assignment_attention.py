"""The attention assignment end to end: solution, template, samples and variants, in the real sandbox."""

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
VARIANTS_DIR = REPO_ROOT / "solutions" / "attention" / "variants"
FULL_MARKS = 100.0
TRAINING = "test_learns_to_reverse_digits"
FULLY_MASKED, DROPOUT = "test_fully_masked_row_is_zero", "test_dropout_only_in_training"
BLOCK, BLOCK_GRADIENTS = "test_encoder_block_matches_reference", "test_encoder_block_gradients"
NOT_DEFINED = "the submission does not define scaled_dot_product_attention: check that the cell defining it runs"

# Score and the status of every test that does not pass; samples/attention/EXPECTED.md explains them.
EXPECTED_SAMPLES: dict[str, tuple[float, dict[str, str]]] = {
    "correct.ipynb": (100.0, {}),
    "partly_wrong.ipynb": (
        75.0,
        {FULLY_MASKED: "failed", BLOCK: "failed", BLOCK_GRADIENTS: "failed", DROPOUT: "failed"},
    ),
    "broken.ipynb": (
        0.0,
        {
            "test_attention_matches_reference": "failed",
            "test_attention_gradients": "failed",
            "test_causal_and_padding_masks": "failed",
            "test_masked_attention_matches_reference": "failed",
            FULLY_MASKED: "failed",
            "test_parameter_layout": "error",
            "test_self_attention_matches_reference": "failed",
            "test_cross_attention_with_padding_matches_reference": "failed",
            "test_multi_head_attention_gradients": "failed",
            BLOCK: "failed",
            BLOCK_GRADIENTS: "failed",
            DROPOUT: "failed",
            TRAINING: "failed",
        },
    ),
}
# What the student reads about the main fault (a fragment of the test's message).
MESSAGES = {
    "partly_wrong.ipynb": {
        FULLY_MASKED: "fully masked rows have weights that are not all exactly 0",
        BLOCK: "the block is post-LN",
        DROPOUT: "F.dropout(x, p) does not unless you pass training=self.training",
    },
    "broken.ipynb": {"test_attention_matches_reference": NOT_DEFINED},
    "no_scale": {"test_attention_matches_reference": "without the scale: divide the scores by sqrt(d_k)"},
    "softmax_over_queries": {"test_attention_matches_reference": "take the softmax over the last axis (dim=-1)"},
    "mask_after_softmax": {
        "test_masked_attention_matches_reference": "apply the mask to the scores before the softmax",
        "test_cross_attention_with_padding_matches_reference": "apply the mask to the scores before the softmax",
    },
    "mask_wrong_sign": {"test_masked_attention_matches_reference": "fill the scores where it is False (~mask)"},
    "large_negative_instead_of_inf": {FULLY_MASKED: "a large negative number in place of -inf"},
    "heads_split_wrong_axis": {"test_self_attention_matches_reference": "the heads are split along the wrong axis"},
    "heads_merged_wrong_axis": {"test_self_attention_matches_reference": "the heads are merged along the wrong axis"},
    "no_output_projection": {
        "test_self_attention_matches_reference": "without the output projection",
        "test_multi_head_attention_gradients": "out_proj.weight, out_proj.bias received no gradient",
    },
    "scale_by_d_model": {"test_self_attention_matches_reference": "scaled by 1/sqrt(d_model)"},
    "post_layer_norm": {BLOCK: "the block is post-LN"},
    "residual_from_normalised_input": {BLOCK: "the residual path starts from the normalised input"},
    "dropout_left_on_in_eval": {DROPOUT: "dropout must do nothing in evaluation mode"},
    "uses_nn_multihead_attention": {TRAINING: "use of MultiheadAttention (cell 4, line 19)"},
}
# The common mistakes the issue names, each with its variant (one at least).
REQUIRED_BUGS = {
    "no_scale",
    "softmax_over_queries",
    "mask_after_softmax",
    "mask_wrong_sign",
    "heads_split_wrong_axis",
    "heads_merged_wrong_axis",
    "no_output_projection",
    "post_layer_norm",
    "residual_from_normalised_input",
    "dropout_left_on_in_eval",
}
BOUND = re.compile(r"^(==|<=|>=|<|>)\s*(full|\d+(?:\.\d+)?)$")
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
FORBIDDEN_USES = {
    "layer = nn.MultiheadAttention(8, 2)": "MultiheadAttention",
    "layer = torch.nn.modules.activation.MultiheadAttention(8, 2)": "MultiheadAttention",
    "from torch.nn import MultiheadAttention as Attention": "MultiheadAttention",
    "out = F.scaled_dot_product_attention(q, k, v)": "F.scaled_dot_product_attention",
    "out = torch.nn.functional.scaled_dot_product_attention(q, k, v)": "functional.scaled_dot_product_attention",
    "from torch.nn.functional import scaled_dot_product_attention as sdpa": "functional.scaled_dot_product_attention",
    "out = torch._C._nn.scaled_dot_product_attention(q, k, v)": "_nn.scaled_dot_product_attention",
    "out = torch.ops.aten.scaled_dot_product_attention(q, k, v)": "aten.*scaled_dot_product*",
    "out = torch._scaled_dot_product_attention_math(q, k, v)": "torch._scaled_dot_product*",
    "out = F.multi_head_attention_forward(x, x, x, 8, 2)": "multi_head_attention_forward",
    "out = torch._native_multi_head_attention(x, x, x, 8, 2)": "_native_multi_head_attention",
    "layer = nn.TransformerEncoderLayer(8, 2)": "nn.Transformer*",
    "from torch.nn import TransformerEncoder": "nn.Transformer*",
    "from torch.nn.modules.transformer import _get_clones": "modules.transformer",
}


def grade_attention(path: Path, course: Path, sandbox_mode: str, **settings: Any) -> SubmissionReport:
    assignment = load_assignment(course / "assignments" / "attention")
    return grade(path, assignment, GradeSettings(sandbox=sandbox_mode, **settings))


def not_passed(report: SubmissionReport) -> dict[str, str]:
    return {test.name: test.status for test in report.tests if test.status != "passed"}


def check_messages(report: SubmissionReport, name: str) -> None:
    messages = {test.name: test.message for test in report.tests}
    for test_name, fragment in MESSAGES.get(name, {}).items():
        assert fragment in messages[test_name], (test_name, messages[test_name])


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
    """autograde_tests/attention/conftest.py, imported under a name of its own."""
    path = REPO_ROOT / "autograde_tests" / "attention" / "conftest.py"
    spec = importlib.util.spec_from_file_location("attention_hidden_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_is_generated_from_the_solution(repo_course: Path) -> None:
    solution = repo_course / "solutions" / "attention" / "attention.ipynb"
    template = repo_course / "assignments" / "attention" / "attention.ipynb"
    assert template.read_text() == template_text(solution), (
        "assignments/attention/attention.ipynb is out of date: regenerate it with grader.authoring.template_text"
    )


def test_expected_toml_describes_every_variant() -> None:
    expected, files = expected_variants(), variant_files()
    unmatched = set(expected) ^ set(files)
    assert not unmatched, f"variants without a table or tables without a file: {unmatched}"
    kinds = {name: table["kind"] for name, table in expected.items()}
    missing = REQUIRED_BUGS - {name for name, kind in kinds.items() if kind == "bug"}
    assert not missing, f"no bug variant for {missing}"
    assert list(kinds.values()).count("correct") >= 2, kinds
    for name, table in expected.items():
        assert table["kind"] in ("bug", "correct"), name
        assert BOUND.match(table["score"]), (name, table["score"])
        assert table.get("why"), f"{name}: say why it scores as it does"
        if table["kind"] == "correct":
            assert table["score"] == "== full" and not table.get("not_passed"), name
        assert files[name].read_text().lstrip().startswith('"""'), f"{name}: the module docstring says what it does"


def test_the_reference_is_pytorch_and_every_mistake_is_far_from_it() -> None:
    """The trusted reference agrees with a plain computation, and every mistake the messages name is
    off by far more than the tolerance (so a hint is never given for a right answer), seeds 0-4."""
    hidden = hidden_conftest()
    smallest = np.inf
    for seed in range(5):
        case = hidden.make_attention_case(seed, 3, (2, 3, 5, 5, 4, 3), "causal")
        out, weights = hidden.Reference.attention(case)
        scores = case.q @ np.swapaxes(case.k, -1, -2) / 2.0
        scores = np.where(case.mask, scores, -np.inf)
        plain = np.exp(scores - scores.max(axis=-1, keepdims=True))
        plain /= plain.sum(axis=-1, keepdims=True)
        assert np.allclose(weights, plain, rtol=0, atol=1e-14) and np.allclose(out, plain @ case.v, atol=1e-14)
        for _, mistaken in hidden.Mistakes.attention_weights(case):
            smallest = min(smallest, float(np.max(np.abs(mistaken - weights))))
        module_case = hidden.make_module_case(seed, 12, cross=True, masked=True)
        expected = hidden.Reference.multi_head_attention(module_case)
        for _, (mistaken_out, mistaken_weights) in hidden.Mistakes.multi_head_attention(module_case):
            error = max(np.max(np.abs(mistaken_out - expected[0])), np.max(np.abs(mistaken_weights - expected[1])))
            smallest = min(smallest, float(error))
        block_case = hidden.make_block_case(seed, 21)
        expected_block = hidden.Reference.encoder_block(block_case)
        for _, mistaken in hidden.Mistakes.encoder_block(block_case):
            smallest = min(smallest, float(np.max(np.abs(mistaken - expected_block))))
    assert smallest > 0.01, f"a mistake comes within {smallest:.3g} of the reference"


@pytest.mark.parametrize("chunk", range(0, len(FORBIDDEN_USES), 5))
def test_forbidden_uses_are_found_and_never_run(
    chunk: int, tmp_path: Path, repo_course: Path, sandbox_mode: str
) -> None:
    """Five uses per file, one per cell: the report lists the first five violations."""
    uses = list(FORBIDDEN_USES.items())[chunk : chunk + 5]
    submission = tmp_path / "forbidden.py"
    submission.write_text("".join(f"# %%\n{line}\n\n" for line, _ in uses))
    report = grade_attention(submission, repo_course, sandbox_mode)
    assert report.resources.worker_starts == 0
    assert report.score == 0.0
    assert report.warnings == []  # one reason, in the report's message and every test's (issue 13)
    reason = report.message
    assert reason.startswith("every test scores 0: the notebook uses what this assignment forbids: ")
    assert {t.message for t in report.tests} == {reason}
    for cell, (_, what) in enumerate(uses, start=1):  # cell 0: the empty text before the first marker
        assert f"use of {what} (cell {cell}, line 2)" in reason, (what, reason)


@pytest.mark.slow
def test_solution_scores_full_marks_the_same_way_three_times(repo_course: Path, sandbox_mode: str) -> None:
    solution = repo_course / "solutions" / "attention" / "attention.ipynb"
    runs = [grade_attention(solution, repo_course, sandbox_mode) for _ in range(3)]
    for report in runs:
        assert report.status == "graded", report.message
        assert (report.score, report.max_score) == (FULL_MARKS, FULL_MARKS), not_passed(report)
        assert all(cell.ok for cell in report.cells)
        assert report.warnings == []
    outcomes = {
        tuple((test.name, test.status, test.score, tuple(sorted(test.metrics.items()))) for test in report.tests)
        for report in runs
    }
    assert len(outcomes) == 1, f"grading the solution is not deterministic: {outcomes}"


@pytest.mark.slow
def test_template_scores_zero(repo_course: Path, sandbox_mode: str) -> None:
    report = grade_attention(repo_course / "assignments" / "attention" / "attention.ipynb", repo_course, sandbox_mode)
    assert (report.status, report.score, report.max_score) == ("graded", 0.0, FULL_MARKS), report.message
    assert {test.status for test in report.tests} == {"error"}
    assert all("NotImplementedError" in test.message for test in report.tests), not_passed(report)


@pytest.mark.slow
def test_visible_tests_pass_on_the_solution_and_not_on_the_template(repo_course: Path, sandbox_mode: str) -> None:
    solution = repo_course / "solutions" / "attention" / "attention.ipynb"
    template = repo_course / "assignments" / "attention" / "attention.ipynb"
    solution_report = grade_attention(solution, repo_course, sandbox_mode, tests="visible")
    template_report = grade_attention(template, repo_course, sandbox_mode, tests="visible")
    assert (solution_report.status, solution_report.score, solution_report.max_score) == ("graded", 4.0, 4.0)
    assert (template_report.status, template_report.score) == ("graded", 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_sample_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    score, statuses = EXPECTED_SAMPLES[name]
    report = grade_attention(repo_course / "samples" / "attention" / name, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert (report.score, not_passed(report)) == (score, statuses)
    check_messages(report, name)
    if name == "broken.ipynb":
        errors = {cell.index: cell.message.split(":")[0] for cell in report.cells if not cell.ok}
        assert errors == {3: "SyntaxError", 5: "NameError"}
        assert report.warnings == ["cell 1: shell command '!pip install einops' was not run"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(variant_files()))
def test_variant_gets_its_expected_score(name: str, repo_course: Path, sandbox_mode: str) -> None:
    table = expected_variants()[name]
    path = repo_course / "solutions" / "attention" / "variants" / variant_files()[name].name
    report = grade_attention(path, repo_course, sandbox_mode)
    assert report.status == "graded", report.message
    assert report.score is not None
    assert score_holds(table["score"], report.score), (table["score"], report.score, not_passed(report))
    if table["kind"] == "bug":
        assert report.score < FULL_MARKS
    assert not_passed(report) == table.get("not_passed", {})
    check_messages(report, name)
