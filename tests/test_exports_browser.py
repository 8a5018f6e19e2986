"""The HTML exports in a real headless Chromium: no console errors, plots present, screenshots kept."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from grader.batch.exports import write_exports
from grader.batch.intake import collect
from grader.batch.runner import run_batch
from grader.grading.spec import FeedbackPolicy, load_assignment
from grader.settings import GradeSettings
from tests.conftest import REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Where screenshots are kept for a person to look at after the run.
ARTIFACTS = Path(os.environ.get("GRADER_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--window-size=1200,1600",
]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; scripts/test does)"),
]

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"

@points(5, visible=False)
def test_mul(submission):
    assert expect_scalar(submission.mul(2, 3), "mul") == 6, "mul(2, 3) is wrong"
"""


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def exported(make_course, tmp_path, sandbox_mode) -> Path:
    course = make_course(HIDDEN)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(6):
        wrong = "+ 1" if i % 3 == 0 else ""
        (inbox / f"student{i}.py").write_text(
            f"print('<b>hi</b>')\ndef add(a, b):\n    return a + b {wrong}\ndef mul(a, b):\n    return a * b\n"
        )
    (inbox / "broken.ipynb").write_text("{")
    assignment = load_assignment(course / "assignments" / "toy")
    run_batch(assignment, collect([inbox], "toy.ipynb", tmp_path / "x"), tmp_path / "out",
              GradeSettings(sandbox=sandbox_mode), workers=2)  # fmt: skip
    # Shown on purpose (it is withheld by default), so that the page must escape what students print.
    write_exports(tmp_path / "out", ("html",), FeedbackPolicy(show_output=True))
    return tmp_path / "out" / "export"


@pytest.mark.parametrize(("page", "plots"), [("summary.html", 4), ("feedback/student0.html", 0)])
def test_page_renders_without_console_errors(exported, tmp_path, page, plots):
    path = exported / page
    dom = chromium(path, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == plots
    assert "<b>hi</b>" not in dom.stdout  # student output is shown as text, not markup
    assert ("&lt;b&gt;hi&lt;/b&gt;" in dom.stdout) == page.startswith("feedback/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / (page.replace("/", "-").removesuffix(".html") + ".png")
    run = chromium(path, tmp_path / "profile-shot", f"--screenshot={shot}")
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000
