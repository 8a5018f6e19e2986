"""The similarity report in a real headless Chromium: no console errors, no script, student text as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.similarity import Entry, compare_entries, write_report
from grader.similarity.calibrate import fill_template
from grader.similarity.extract import read_template
from grader.similarity.sources import code_cells
from tests.conftest import REPO_ROOT
from tests.test_exports_browser import ARTIFACTS, CHROMIUM, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; scripts/test does)"),
]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """Five independent backprop solutions, a disguised copy of one, and a hostile string in the copy."""
    cells = code_cells(REPO_ROOT / "assignments" / "backprop" / "backprop.ipynb")
    fixtures = sorted((REPO_ROOT / "tests" / "fixtures" / "similarity" / "backprop").glob("*.py"))
    entries = [Entry(p.stem, fill_template(cells, p.read_text())) for p in fixtures]
    copy = [(i, s.replace("out", "result") + "\nprint('<b>hi</b>')\n") for i, s in entries[0].cells]
    entries.append(Entry("copier <b>x</b>", copy, label="A. Student"))
    result = compare_entries(entries, read_template(cells, []))
    assert result.flagged
    path = tmp_path / "similarity.html"
    write_report(result, path)
    return path


def test_similarity_report_renders_without_console_errors(report: Path, tmp_path: Path) -> None:
    dom = chromium(report, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<script" not in dom.stdout
    assert "<b>hi</b>" not in dom.stdout and "&lt;b&gt;hi&lt;/b&gt;" in dom.stdout
    assert 'class="match"' in dom.stdout and 'class="given"' in dom.stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "similarity.png"
    run = chromium(report, tmp_path / "profile-shot", f"--screenshot={shot}")
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000
