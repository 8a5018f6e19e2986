"""The student bundle works on its own (issue 13): copied alone into an empty folder, it installs and checks.

Nothing of the course (assignments/, autograde_tests/, solutions/) is next to the copy: the check
finds the assignment by the folder it runs in and runs only the practice checks in its tests/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

import cli
from grader.authoring.release import release
from grader.grading.spec import load_assignment
from grader.grading.student_view import ALL_PASS, PRACTICE_NOTE
from tests.conftest import REPO_ROOT

WHEEL = "dl_grader-0.1.0-py3-none-any.whl"
RESULT_LINE = re.compile(r"^  (passed|FAILED|ERROR) +(test_\w+)", re.MULTILINE)
BACKPROP_CHECKS = {
    "test_linear_forward_small_example": "linear_forward", "test_linear_backward_shapes": "linear_backward",
    "test_linear_backward_small_example": "linear_backward", "test_relu_small_example": "relu_forward",
    "test_sigmoid_small_example": "sigmoid_forward", "test_sigmoid_large_inputs_are_finite": "sigmoid_forward",
    "test_softmax_uniform_logits": "softmax_cross_entropy",
    "test_softmax_large_logits_are_finite": "softmax_cross_entropy",
}  # fmt: skip
# samples/backprop/EXPECTED.md: the visible tests catch two of partly_wrong's bugs and its instability.
PARTLY_WRONG_FAILS = {
    "test_linear_backward_shapes",
    "test_sigmoid_small_example",
    "test_softmax_large_logits_are_finite",
}


@pytest.fixture(scope="module")
def backprop_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """backprop's release, copied alone into an empty folder, with the two samples a student could have."""
    released = release(load_assignment(REPO_ROOT / "assignments" / "backprop"), tmp_path_factory.mktemp("release"))
    student = tmp_path_factory.mktemp("student") / "backprop"
    shutil.copytree(released, student)
    shutil.copy(REPO_ROOT / "solutions" / "backprop" / "backprop.ipynb", student / "solution.ipynb")
    shutil.copy(REPO_ROOT / "samples" / "backprop" / "partly_wrong.ipynb", student / "partly_wrong.ipynb")
    return student


def check(folder: Path, monkeypatch: pytest.MonkeyPatch, *args: str, env: dict[str, str] | None = None) -> str:
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(cli.main, ["check", *args], env={"COLUMNS": "100", **(env or {})})
    assert result.exit_code == 0, result.output
    return result.output


def flat(output: str) -> str:
    """The output with its line wrapping undone: messages wrap at the terminal's width."""
    return " ".join(output.split())


def statuses(output: str) -> dict[str, str]:
    return {name: status for status, name in RESULT_LINE.findall(output)}


def test_the_bundle_holds_what_a_student_needs_and_nothing_more(backprop_bundle):
    released = sorted(str(p.relative_to(backprop_bundle)) for p in backprop_bundle.rglob("*") if p.is_file())
    assert set(released) >= {"README.md", "assignment.toml", "backprop.ipynb", "release.json", "tests/test_visible.py",
                             WHEEL}  # fmt: skip
    readme = (backprop_bundle / "README.md").read_text()
    expected = [
        f"pip install {WHEEL}", "grader check backprop.ipynb", "from grader import check; check()",
        'check("linear_forward")', "**It is not your grade.**", "(torch, tensorflow, jax, sklearn)",
    ]  # fmt: skip
    for line in expected:
        assert line in flat(readme)
    bundle = json.loads((backprop_bundle / "release.json").read_text())
    assert bundle["assignment"] == "backprop" and "linear_backward" in bundle["functions"]
    with zipfile.ZipFile(backprop_bundle / WHEEL) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("dl_grader-0.1.0.dist-info/METADATA").decode()
        entry_points = wheel.read("dl_grader-0.1.0.dist-info/entry_points.txt").decode()
    assert "grader/student/check.py" in names and "cli.py" in names
    assert not [n for n in names if "autograde_tests" in n or "solutions" in n or n.endswith(".ipynb")]
    requires = re.findall(r"^Requires-Dist: ([\w-]+)", metadata, re.MULTILINE)
    assert sorted(requires) == ["click", "jinja2", "nbformat", "numpy", "pydantic", "pytest", "rich"]
    assert "grader = cli:main" in entry_points


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_the_template_fails_every_practice_check_as_not_implemented(backprop_bundle, monkeypatch, sandbox,
                                                                    bwrap_works):  # fmt: skip
    assert bwrap_works or sandbox == "none", "bubblewrap must work on this machine"
    output = check(backprop_bundle, monkeypatch, "backprop.ipynb", "--sandbox", sandbox)
    assert statuses(output) == dict.fromkeys(BACKPROP_CHECKS, "ERROR")
    for function in set(BACKPROP_CHECKS.values()):
        assert f"not implemented yet: {function} raises NotImplementedError (code cell " in flat(output)
    assert "practice checks: 0 of 8 pass" in output and PRACTICE_NOTE in flat(output)
    assert "no sandbox" not in output  # chosen, not fallen back to


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_the_solution_passes_and_the_partly_wrong_sample_fails_its_known_checks(backprop_bundle, monkeypatch,
                                                                                 sandbox, bwrap_works):  # fmt: skip
    assert bwrap_works or sandbox == "none", "bubblewrap must work on this machine"
    output = check(backprop_bundle, monkeypatch, "solution.ipynb", "--sandbox", sandbox)
    assert statuses(output) == dict.fromkeys(BACKPROP_CHECKS, "passed") and ALL_PASS in output
    output = check(backprop_bundle, monkeypatch, "partly_wrong.ipynb", "--sandbox", sandbox)
    assert {name for name, status in statuses(output).items() if status != "passed"} == PARTLY_WRONG_FAILS
    assert "dx has shape (4, 6), expected shape (4, 3, 2)" in flat(output)


def test_without_bubblewrap_the_check_runs_with_a_notice(backprop_bundle, monkeypatch):
    output = check(backprop_bundle, monkeypatch, "partly_wrong.ipynb", env={"PATH": "/nonexistent"})
    assert output.startswith("note: no sandbox available here; your own code runs as a plain subprocess")
    assert {name for name, status in statuses(output).items() if status != "passed"} == PARTLY_WRONG_FAILS


def test_details_and_k_select_and_show_whole_messages(backprop_bundle, monkeypatch):
    output = check(backprop_bundle, monkeypatch, "partly_wrong.ipynb", "--sandbox", "none", "-k", "sigmoid", "-v")
    assert statuses(output) == {
        "test_sigmoid_small_example": "FAILED",
        "test_sigmoid_large_inputs_are_finite": "passed",
    }
    assert "practice checks: 1 of 2 pass" in output
    monkeypatch.chdir(backprop_bundle)
    result = CliRunner().invoke(cli.main, ["check", "partly_wrong.ipynb", "--sandbox", "none", "-k", "lstm"])
    assert result.exit_code == 2
    assert "no practice check matches 'lstm'; the practice checks are: test_linear_forward_small_example," in flat(
        result.output
    )


def test_the_installed_wheel_alone_runs_the_check(backprop_bundle, tmp_path):
    """pip installs the bundle's wheel (its dependencies are this environment's); the check uses only it."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target)]
    subprocess.run([*pip, str(backprop_bundle / WHEEL)], check=True, timeout=120)
    run = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import grader, cli; "
        f"assert grader.__file__.startswith({str(target)!r}), grader.__file__; "
        "sys.argv = ['grader', 'check', 'backprop.ipynb']; cli.main()"
    )
    done = subprocess.run([sys.executable, "-I", "-c", run], cwd=backprop_bundle, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "100"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert statuses(done.stdout) == dict.fromkeys(BACKPROP_CHECKS, "ERROR")


# ------------------------------------------------------------------ an assignment whose tests are all hidden

SOLUTION_CELLS = [
    "import numpy as np",
    "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
    "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
]


@pytest.fixture
def all_hidden_bundle(make_course, tmp_path) -> Path:
    course = make_course("from grader.testing import points\n\n@points(1)\ndef test_add(submission):\n    pass\n")
    solution = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in SOLUTION_CELLS])
    nbformat.write(solution, course / "solutions" / "toy" / "toy.ipynb")
    released = release(load_assignment(course / "assignments" / "toy"), tmp_path / "release")
    student = tmp_path / "student" / "toy"
    shutil.copytree(released, student)
    return student


def student_notebook(folder: Path, name: str, *cells: str) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells])
    nbformat.write(nb, folder / name)
    return name


def test_an_assignment_without_practice_checks_reports_the_load(all_hidden_bundle, monkeypatch, sandbox_mode):
    readme = (all_hidden_bundle / "README.md").read_text()
    assert "This assignment has no practice checks: the check loads your notebook" in readme
    output = check(all_hidden_bundle, monkeypatch, "toy.ipynb", "--sandbox", sandbox_mode)
    assert "this assignment has no practice checks; your notebook loads and defines: add, mul" in flat(output)
    broken = student_notebook(all_hidden_bundle, "broken.ipynb", SOLUTION_CELLS[0], "def add(a, b):\n    return a + b",
                              "def mul(a, b:\n    return a * b", "print(undefined)")  # fmt: skip
    output = check(all_hidden_bundle, monkeypatch, broken, "--sandbox", sandbox_mode)
    text = flat(output)
    assert "your notebook loads (with the cell problems below) and defines: add" in text
    assert "missing (the template defines them): mul" in text
    assert "code cell 3 \"def mul(a, b:\": SyntaxError: '(' was never closed (line 1, in <module>)" in text
    assert "code cell 4 \"print(undefined)\": NameError: name 'undefined' is not defined (line 1, in <module>)" in text
    assert "practice checks" not in output.splitlines()[0]
    forbidden = student_notebook(all_hidden_bundle, "forbidden.ipynb", SOLUTION_CELLS[0], "import torch")
    output = check(all_hidden_bundle, monkeypatch, forbidden, "--sandbox", sandbox_mode)
    assert "your notebook was not run, for the reason below" in flat(output)
    assert (
        'every test scores 0: the notebook uses what this assignment forbids: import of torch (code cell 2 "import '
        'torch", line 1)'
    ) in flat(output)
