"""Limits relative to the reference solution's time on the grading machine (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from grader.errors import SpecError
from grader.grading.reference_limits import RelativeLimit
from grader.grading.spec import load_assignment, load_spec
from tests.conftest import write_notebook

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"

@points(5)
def test_twice(submission):
    assert expect_scalar(submission.twice(4), "twice") == 8, "twice(4) is wrong"
"""

SOLUTION = "def add(a, b):\n    return a + b\n\ndef twice(x):\n    return 2 * x\n"
LOOPS = "def add(a, b):\n    while True:\n        pass\n\ndef twice(x):\n    return 2 * x\n"
RELATIVE = """
[limits.relative]
call = { factor = 20, min_s = 0.5, max_s = 4 }
load = { factor = 10, min_s = 5, max_s = 20 }
"""


@pytest.mark.parametrize(
    "reference_s, seconds, described",
    [
        (0.06, 1.2, "20x the reference's 0.06 s on this machine"),
        (0.001, 0.5, "20x the reference's 0.001 s on this machine, raised to the floor of 0.5 s"),
        (10.0, 60.0, "20x the reference's 10 s on this machine, capped at 60 s"),
    ],
)
def test_a_relative_limit_is_clamped_and_says_how(reference_s: float, seconds: float, described: str) -> None:
    rule = RelativeLimit(factor=20, min_s=0.5, max_s=60)
    assert rule.seconds(reference_s) == pytest.approx(seconds)
    assert rule.describe(reference_s) == described


def test_a_floor_above_the_ceiling_names_the_field(make_course) -> None:
    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text() + "\n[limits.relative]\ncall = { factor = 20, min_s = 9, max_s = 2 }\n")
    with pytest.raises(SpecError, match="limits.relative.call"):
        load_assignment(course / "assignments" / "toy")


def test_a_batch_stops_a_loop_after_the_relative_limit_not_the_fixed_one(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, call_timeout_s=30)  # the fixed limit: 30 s per call
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text() + RELATIVE)
    write_notebook(course / "solutions" / "toy" / "toy.ipynb", SOLUTION)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "right.py").write_text(SOLUTION)
    (folder / "loops.py").write_text(LOOPS)
    out = tmp_path / "out"
    args = ("grade", "toy", str(folder), "--out", str(out), "--course", str(course), "--workers", "1")
    result = CliRunner().invoke(cli.main, list(args))
    assert result.exit_code == 0, result.output
    assert "reference times over 3 gradings" in result.output
    right = json.loads((out / "right.json").read_text())
    assert right["score"] == 10
    loops = json.loads((out / "loops.json").read_text())
    add = next(t for t in loops["tests"] if t["name"] == "test_add")
    assert add["status"] == "timeout"
    assert add["message"].startswith("took longer than the time limit per call of 0.5 s (20x the reference's ")
    assert add["message"].endswith("s on this machine, raised to the floor of 0.5 s) and was stopped")
    assert add["duration_s"] < 10, "stopped by the relative limit, not the fixed 30 s"
    assert loops["score"] == 5
    recorded = json.loads((out / "preflight.json").read_text())["reference_times"]
    assert recorded["repeats"] == 3 and set(recorded["call_s"]) == {"test_add", "test_twice"}
    again = CliRunner().invoke(cli.main, [*args, "--force"])
    assert "passed before for this version of the tests and spec; reference times over 3 gradings" in again.output
    loops_again = json.loads((out / "loops.json").read_text())
    assert [t["status"] for t in loops_again["tests"]] == [t["status"] for t in loops["tests"]]


def test_without_measurements_the_fixed_limits_apply(make_course, tmp_path, sandbox_mode):
    # A student's own check, or a course without a reference solution: nothing was measured.
    course = make_course(HIDDEN, call_timeout_s=1.5)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text() + RELATIVE)
    (tmp_path / "loops.py").write_text(LOOPS)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.main, ["grade", "toy", str(tmp_path / "loops.py"), "--out", str(out),
                                           "--course", str(course)])  # fmt: skip
    assert result.exit_code == 0, result.output
    add = next(t for t in json.loads((out / "loops.json").read_text())["tests"] if t["name"] == "test_add")
    assert add["message"] == "took longer than the time limit per call of 1.5 s and was stopped"


def test_the_public_spec_keeps_relative_limits(repo_course: Path, tmp_path: Path) -> None:
    from grader.authoring.release import release

    target = release(load_assignment(repo_course / "assignments" / "backprop"), tmp_path / "rel")
    released = load_spec(target / "assignment.toml")
    assert released.limits.relative is not None
    assert released.limits.relative.call == RelativeLimit(factor=20, min_s=1, max_s=60)
