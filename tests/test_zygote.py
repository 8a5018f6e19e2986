"""Warm workers: one zygote serves submission after submission, and nothing crosses between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.sandbox.zygote import BoxProvider
from grader.settings import GradeSettings

HIDDEN = """
from grader.testing import points

@points(1)
def test_probe_leftovers(submission):
    found = submission.leftovers()
    assert found == [], "left behind by an earlier submission: " + ", ".join(found)

@points(1)
def test_leave_things_behind(submission):
    submission.leave()
"""

POLLUTER = """
import os, subprocess, numpy
def leftovers():
    return []
def leave():
    open("/tmp/answers.txt", "w").write("42")
    os.makedirs("/tmp/deep/er", exist_ok=True)
    open("/dev/shm/shared", "w").write("x") if os.path.isdir("/dev/shm") else None
    subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
    os.environ["LEFT_BEHIND"] = "1"
    numpy.allclose = lambda *a, **k: True
    numpy.POLLUTED = True
"""

CHECKER = """
import os, numpy
def leftovers():
    found = []
    if os.path.exists("/tmp/answers.txt") or os.path.exists("/tmp/deep"):
        found.append("a file in /tmp")
    if os.path.exists("/dev/shm/shared"):
        found.append("a file in /dev/shm")
    if "LEFT_BEHIND" in os.environ:
        found.append("an environment variable")
    if getattr(numpy, "POLLUTED", False) or numpy.allclose(1.0, 2.0):
        found.append("a patched module")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if b"sleep" in open(f"/proc/{pid}/cmdline", "rb").read():
                    found.append("a background process")
            except OSError:
                pass
    return found
def leave():
    pass
"""


def run(course: Path, tmp_path: Path, name: str, source: str, provider: BoxProvider):
    from grader.grading import pipeline as api

    path = tmp_path / f"{name}.py"
    path.write_text(source)
    original = api.shared_provider
    api.shared_provider = lambda: provider  # one zygote shared by the two submissions
    try:
        return grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox="bwrap"))
    finally:
        api.shared_provider = original


@pytest.fixture
def provider():
    provider = BoxProvider()
    yield provider
    provider.close()


def test_nothing_crosses_from_one_submission_to_the_next(make_course, tmp_path, sandbox_mode, provider):
    course = make_course(HIDDEN)
    first = run(course, tmp_path, "polluter", POLLUTER, provider)
    assert first.score == 2, first.tests
    zygote = provider.zygote
    assert zygote is not None and zygote.alive
    second = run(course, tmp_path, "checker", CHECKER, provider)
    assert provider.zygote is zygote, "the same warm worker must serve both submissions"
    assert zygote.children == 2
    assert [t.status for t in second.tests] == ["passed", "passed"], second.tests[0].message


def test_child_cannot_read_or_trace_the_zygote(make_course, tmp_path, sandbox_mode, provider):
    hidden = HIDDEN.replace("submission.leave()", "assert submission.leave() == [], 'zygote exposed'")
    course = make_course(hidden)
    attack = """
import os
def leftovers():
    return []
def leave():
    opened = []
    for name in ("mem", "environ", "maps"):
        try:
            with open(f"/proc/{os.getppid()}/{name}", "rb") as f:
                f.read(1)
            opened.append(name)
        except OSError:
            pass
    return opened
"""
    report = run(course, tmp_path, "tracer", attack, provider)
    assert [t.status for t in report.tests] == ["passed", "passed"], report.tests[1].message


def test_a_submission_cannot_kill_the_zygote(make_course, tmp_path, sandbox_mode, provider):
    # The zygote is the box's PID 1 (bwrap --as-pid-1): the kernel drops signals sent to a
    # namespace's init from inside it, SIGKILL included, so the next submission reuses it.
    course = make_course(HIDDEN)
    killer = (
        "import os, signal\ndef leftovers():\n    return []\ndef leave():\n"
        "    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):  # SIGINT: Python's handler, ignored\n"
        "        os.kill(1, sig)\n"
    )
    report = run(course, tmp_path, "killer", killer, provider)
    assert report.status == "graded"
    assert [t.status for t in report.tests] == ["passed", "passed"]
    first_zygote = provider.zygote
    after = run(course, tmp_path, "checker", CHECKER, provider)
    assert [t.status for t in after.tests] == ["passed", "passed"], after.tests[0].message
    assert provider.zygote is first_zygote


def test_a_zygote_killed_from_outside_only_costs_a_new_zygote(make_course, tmp_path, sandbox_mode, provider):
    course = make_course(HIDDEN)
    honest = "def leftovers():\n    return []\ndef leave():\n    pass\n"
    assert run(course, tmp_path, "first", honest, provider).status == "graded"
    first_zygote = provider.zygote
    first_zygote.box.process.kill()  # the OOM killer or a TA's kill, not the student
    first_zygote.box.process.wait()
    after = run(course, tmp_path, "checker", CHECKER, provider)
    assert [t.status for t in after.tests] == ["passed", "passed"], after.tests[0].message
    assert provider.zygote is not first_zygote


def test_zygote_with_torch_is_single_threaded_and_forks_cleanly(make_course, tmp_path, sandbox_mode, provider):
    hidden = """
from grader.testing import points, expect_array

@points(1)
def test_train_step(submission):
    grad = expect_array(submission.step(), "step()", shape=(3, 2))
    assert abs(grad).sum() > 0, "no gradient"
"""
    course = make_course(hidden)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().replace('preload = ["numpy"]', 'preload = ["numpy", "torch"]').replace(
        'forbidden_imports = ["torch"]', "forbidden_imports = []"))  # fmt: skip
    spec.write_text(spec.read_text().replace("memory_mb = 512", "memory_mb = 1024"))
    source = (
        "import torch\n"
        "def step():\n"
        "    layer = torch.nn.Linear(2, 3)\n"
        "    layer(torch.ones(4, 2)).sum().backward()\n"
        "    return layer.weight.grad\n"
    )
    for name in ("a", "b"):
        report = run(course, tmp_path, name, source, provider)
        assert report.score == 1, report.tests[0].message
    assert provider.zygote is not None and provider.zygote.children == 2
    assert provider.notes == []


def test_a_prewarmed_zygote_is_the_one_that_serves(make_course, tmp_path, sandbox_mode, provider):
    # Issue 20: the zygote starts in the background while the grading process collects its tests;
    # the first submission then forks from it instead of starting another.
    course = make_course(HIDDEN)
    from grader.grading.pipeline import _plan

    settings = GradeSettings(sandbox="bwrap")
    box_settings = _plan(load_assignment(course / "assignments" / "toy"), settings).box
    provider.prewarm(box_settings, ["numpy"])
    provider.prewarm(box_settings, ["numpy"])  # a second call while warming starts nothing more
    report = run(course, tmp_path, "checker", CHECKER, provider)
    assert [t.status for t in report.tests] == ["passed", "passed"], report.tests[0].message
    warmed = provider.zygote
    assert warmed is not None and warmed.children == 1
    provider.prewarm(box_settings, ["numpy"])  # alive and suitable: nothing to do
    assert provider._warming is None
    run(course, tmp_path, "checker2", CHECKER, provider)
    assert provider.zygote is warmed and warmed.children == 2
