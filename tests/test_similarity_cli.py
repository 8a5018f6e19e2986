"""`grader similarity OUT` and the similar-code section at the end of every batch (issue 19)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import cli
from tests.conftest import write_notebook

HIDDEN = """
from grader.testing import points, expect_scalar

@points(1)
def test_score(submission):
    assert expect_scalar(submission.score([3.0, 1.0, 2.0]), "score") > 0, "score must be positive"
"""

ORIGINAL = """
def score(values):
    total = 0.0
    best = None
    for index, value in enumerate(values):
        weight = 1.0 / (index + 1)
        total += weight * value * value
        if best is None or value > best:
            best = value
    spread = max(values) - min(values)
    return total / (1.0 + spread) + best * 0.5
"""
# The same code with every name changed, a comment and a print added: similar, not identical.
DISGUISED = """
def score(xs):
    # my own work
    acc = 0.0
    top = None
    for i, x in enumerate(xs):
        w = 1.0 / (i + 1)
        acc += w * x * x
        print("step", i)
        if top is None or x > top:
            top = x
    rng = max(xs) - min(xs)
    return acc / (1.0 + rng) + top * 0.5
"""
INDEPENDENT = """
import math

def score(values):
    ordered = sorted(values, reverse=True)
    return sum(math.sqrt(v) for v in ordered if v > 0) + len(ordered)
"""


def test_a_batch_ends_with_similar_code_and_the_command_repeats_it(make_course, tmp_path: Path, sandbox_mode):
    course = make_course(HIDDEN)
    stubs = "def score(values):\n    raise NotImplementedError\n\n\ndef ranks(values):\n    raise NotImplementedError\n"
    write_notebook(course / "assignments" / "toy" / "toy.ipynb", stubs)  # the released template
    folder = tmp_path / "in"
    folder.mkdir()
    for name, source in {"ada": ORIGINAL, "bob": DISGUISED, "cy": INDEPENDENT}.items():
        (folder / f"{name}.py").write_text(source)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.main, ["grade", "toy", str(folder), "--out", str(out), "--course", str(course)])
    assert result.exit_code == 0, result.output
    assert "similarity: 3 submissions compared, 1 similar pairs in 1 groups" in result.output
    page = (out / "export" / "similarity.html").read_text()
    assert "ada" in page and "bob" in page
    again = CliRunner().invoke(cli.main, ["similarity", str(out), "--course", str(course)])
    assert again.exit_code == 0, again.output
    assert "1 similar pairs" in again.output and "similarity.html" in again.output


def test_similarity_of_a_folder_without_reports_names_the_fix(tmp_path: Path):
    result = CliRunner().invoke(cli.main, ["similarity", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no grading report; name the assignment with --assignment" in result.output
