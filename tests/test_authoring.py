"""Authoring: templates from solution markers, releases that never leak, verify and calibrate."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

import cli
import grader
from grader.authoring.calibrate import calibrate, propose
from grader.authoring.release import release, strip_solution
from grader.authoring.verify import verify_assignment
from grader.errors import UsageError
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings
from tests.conftest import write_notebook


def test_strip_solution_keeps_indentation_and_docstrings():
    source = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x * 2\n    return y\n    ### END SOLUTION\n'
    assert strip_solution(source) == 'def f(x):\n    """Doc."""\n    raise NotImplementedError\n'


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "is never closed"),
        ("x = 1\n### END SOLUTION\n", "line 2: ### END SOLUTION without a ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "line 2: ### BEGIN SOLUTION inside another"),
    ],
)
def test_unbalanced_markers_are_named(source, message):
    with pytest.raises(UsageError, match=message):
        strip_solution(source, "backprop.ipynb, cell 3")


def solution_lines(notebook_path: Path) -> list[str]:
    """Substantive lines that appear only inside the solution blocks (the answers)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    inside_lines, outside_lines, inside = [], set(), False
    for cell in notebook.cells:
        for line in cell.source.split("\n"):
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = False
            elif inside and cell.cell_type == "code" and len(line.strip()) >= 12:
                inside_lines.append(line.strip())
            else:
                outside_lines.add(line.strip())
    return [line for line in inside_lines if line not in outside_lines]


def released_texts(target: Path, data_dir: Path | None = None) -> list[str]:
    """Every file of a release as text. The checker's wheel must hold the engine exactly as installed
    (byte for byte, so nothing of the course can hide in it) and its metadata, which is scanned too;
    data/ must be the assignment's public data folder, byte for byte."""
    texts = []
    package = Path(grader.__file__).resolve().parent
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        relative = path.relative_to(target)
        if relative.parts[0] == "data":
            assert data_dir is not None, f"{relative} released, but the assignment has no public data"
            assert path.read_bytes() == (data_dir / Path(*relative.parts[1:])).read_bytes(), relative
            continue
        if path.suffix != ".whl":
            texts.append(path.read_text())
            continue
        with zipfile.ZipFile(path) as wheel:
            for name in wheel.namelist():
                data = wheel.read(name)
                if name.startswith("grader/"):
                    assert data == (package / name.removeprefix("grader/")).read_bytes(), f"{name} is not the engine's"
                elif name == "cli.py":
                    assert data == Path(cli.__file__).read_bytes()
                else:
                    assert name.startswith("dl_grader-0.1.0.dist-info/"), f"{name} does not belong in the wheel"
                    texts.append(data.decode())
    return texts


REPO_ASSIGNMENTS = sorted(
    p.parent.name for p in (Path(__file__).resolve().parent.parent / "assignments").glob("*/assignment.toml")
)


@pytest.mark.parametrize("name", REPO_ASSIGNMENTS)
def test_release_never_leaks_solutions_or_hidden_tests(repo_course, tmp_path, name):
    assignment = load_assignment(repo_course / "assignments" / name)
    target = release(assignment, tmp_path / "release")
    released = "\n".join(released_texts(target, assignment.data_dir))
    public_data = assignment.data_dir is not None and assignment.data_dir.is_relative_to(assignment.assignment_dir)
    assert (target / "data").is_dir() == public_data, "public data (model weights) ships with the release"
    secrets = solution_lines(assignment.solutions_dir / assignment.spec.notebook)
    assert secrets, "the solution should have solution blocks"
    template_code = "\n".join(
        c.source for c in nbformat.read(target / assignment.spec.notebook, as_version=4).cells if c.cell_type == "code"
    )
    # Whole lines: a given helper may contain a solution line as part of a longer one
    # (generative's evaluation code calls gaussian_kl(...).mean().item()).
    template_lines = {line.strip() for line in template_code.splitlines()}
    leaked = [line for line in secrets if line in template_lines]
    assert leaked == []
    assert "BEGIN SOLUTION" not in released
    hidden_names = []
    for hidden in sorted(assignment.hidden_tests_dir.glob("test_*.py")):
        hidden_names += re.findall(r"^def (test_\w+)", hidden.read_text(), flags=re.MULTILINE)
    if assignment.probes_path.exists():  # probe names with an underscore: "predict" alone is an English word
        probe_names = re.findall(r"^def ([a-z]\w*_\w+)", assignment.probes_path.read_text(), flags=re.MULTILINE)
        # A probe may mirror a helper the notebook itself gives students (lstm's train_running_sum).
        hidden_names += [name for name in probe_names if f"def {name}(" not in template_code]
    assert hidden_names
    for function in hidden_names:
        assert not re.search(rf"\b{function}\b", released), f"{function} from the hidden tests is in the release"
    assert "seed" not in (target / "assignment.toml").read_text()
    assert sorted(p.name for p in (target / "tests").iterdir()) == sorted(
        p.name for p in assignment.visible_tests_dir.glob("*.py")
    )


def test_release_refuses_a_non_empty_folder(repo_course, tmp_path):
    assignment = load_assignment(repo_course / "assignments" / "backprop")
    (tmp_path / "backprop").mkdir()
    (tmp_path / "backprop" / "old.txt").write_text("x")
    with pytest.raises(UsageError, match="is not empty"):
        release(assignment, tmp_path)


HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_answer(submission, metric, grading_seed):
    value = expect_scalar(submission.answer(grading_seed), "answer()")
    metric("accuracy", value)
    assert value > 0.5, "answer too small"
"""

SOLUTION = "def answer(seed):\n    ### BEGIN SOLUTION\n    return 0.9 + 0.01 * seed\n    ### END SOLUTION\n"


@pytest.fixture
def toy_with_solution(make_course):
    course = make_course(HIDDEN)
    write_notebook(course / "solutions" / "toy" / "toy.ipynb", SOLUTION)
    assignment = load_assignment(course / "assignments" / "toy")
    release(assignment, course / "released")
    shutil.copy(course / "released" / "toy" / "toy.ipynb", course / "assignments" / "toy" / "toy.ipynb")
    return course


def test_verify_passes_a_consistent_assignment(toy_with_solution, sandbox_mode):
    verdict = verify_assignment(load_assignment(toy_with_solution / "assignments" / "toy"), GradeSettings())
    assert verdict.ok, verdict.failures


def test_verify_fails_on_a_broken_solution(toy_with_solution, sandbox_mode):
    solution = toy_with_solution / "solutions" / "toy" / "toy.ipynb"
    write_notebook(solution, SOLUTION.replace("0.9 +", "-0.9 +"))
    verdict = verify_assignment(load_assignment(toy_with_solution / "assignments" / "toy"), GradeSettings())
    assert not verdict.ok
    assert verdict.failures[0].startswith("solution scored 0.0 / 5.0 (graded)")


def test_verify_fails_on_a_drifted_template(toy_with_solution, sandbox_mode):
    template = toy_with_solution / "assignments" / "toy" / "toy.ipynb"
    write_notebook(template, "def answer(seed):\n    raise NotImplementedError  # edited by hand\n")
    verdict = verify_assignment(load_assignment(toy_with_solution / "assignments" / "toy"), GradeSettings())
    assert any("differs from what `grader release toy` makes" in f for f in verdict.failures)


def test_verify_cli_exit_code(toy_with_solution, sandbox_mode):
    result = CliRunner().invoke(cli.main, ["verify", "--course", str(toy_with_solution)])
    assert result.exit_code == 0, result.output
    assert "1 of 1 assignments verified" in result.output
    (toy_with_solution / "assignments" / "toy" / "toy.ipynb").write_text(json.dumps({"nbformat": 4, "cells": []}))
    result = CliRunner().invoke(cli.main, ["verify", "--course", str(toy_with_solution)])
    assert result.exit_code == 1
    assert "failing: toy" in result.output


def test_calibrate_summarises_metrics_over_seeds(toy_with_solution, sandbox_mode):
    summaries = calibrate(load_assignment(toy_with_solution / "assignments" / "toy"), [0, 1, 2], 0.1, GradeSettings())
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary.values == pytest.approx((0.9, 0.91, 0.92))
    assert summary.proposed == pytest.approx(0.81)
    assert summary.line.startswith(
        "test_answer.accuracy: min 0.9, mean 0.91, max 0.92 over 3 seeds -> threshold >= 0.81"
    )


def test_lower_is_better_metrics_move_up():
    assert propose([0.1, 0.2], lower_is_better=True, margin=0.5) == pytest.approx(0.3)
