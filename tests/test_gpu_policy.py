"""GPU policies on a machine without a GPU: optional falls back to the CPU, required is not graded."""

from __future__ import annotations

import pytest

from grader.errors import SpecError
from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

HIDDEN = """
from grader.testing import points, expect_scalar

@points(3)
def test_device(submission):
    assert submission.device() == "cpu", "expected the CPU here"

@points(2)
def test_add(submission):
    assert expect_scalar(submission.add(1, 2), "add") == 3, "add is wrong"

@points(1)
def test_slow(submission):
    submission.slow()  # 3 s: over the 2 s call limit, inside the 3x CPU-fallback limit
"""

SOURCE = "import torch\ndef device():\n    return 'cuda' if torch.cuda.is_available() else 'cpu'\n"
SOURCE += "def add(a, b):\n    return a + b\ndef slow():\n    import time\n    time.sleep(3)\n"


def gpu_course(make_course, policy: str, preload: str = '["numpy", "torch"]'):
    course = make_course(HIDDEN, call_timeout_s=2)
    spec = course / "assignments" / "toy" / "assignment.toml"
    text = spec.read_text().replace('preload = ["numpy"]', f'gpu = "{policy}"\npreload = {preload}')
    text = text.replace('forbidden_imports = ["torch"]', "forbidden_imports = []").replace(
        "memory_mb = 512", "memory_mb = 1024"
    )
    spec.write_text(text.replace("[limits]", "[limits]\ncpu_fallback_factor = 3"))
    return course


def test_optional_gpu_runs_on_the_cpu_with_scaled_limits(make_course, tmp_path, sandbox_mode):
    course = gpu_course(make_course, "optional")
    path = tmp_path / "s.py"
    path.write_text(SOURCE)
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert report.status == "graded" and report.score == 6, report.tests
    assert "no GPU was available: ran on the CPU with time limits scaled by 3" in report.warnings
    assert report.resources.gpu_s is None


def test_required_gpu_is_not_a_silent_zero(make_course, tmp_path, sandbox_mode):
    course = gpu_course(make_course, "required")
    path = tmp_path / "s.py"
    path.write_text(SOURCE)
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert report.status == "grader_error"
    assert report.score is None
    assert {t.status for t in report.tests} == {"skipped"}
    assert report.message.startswith("not graded: this assignment requires a GPU and none was available")
    assert report.resources.worker_starts == 0


def test_gpu_policy_needs_torch_preloaded(make_course):
    course = gpu_course(make_course, "optional", preload='["numpy"]')
    with pytest.raises(SpecError, match='gpu = .optional. needs "torch" in preload'):
        load_assignment(course / "assignments" / "toy")
