"""``from grader import check; check()`` in a real Jupyter kernel (nbclient), in the student's bundle (issue 13)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from grader.authoring.release import release
from grader.grading.spec import FeedbackPolicy, load_assignment
from grader.grading.student_view import student_view
from grader.student.check import CheckResult
from grader.student.jupyter import CheckDisplay
from tests.conftest import REPO_ROOT
from tests.test_student_view import assert_student_safe, hostile_report

CHECK_ALL = "from grader import check\nresult = check()\nresult"
CHECK_ONE = "check('linear_backward')"
UNSAVE = "import shutil\nshutil.copy('template.ipynb', 'backprop.ipynb')  # the file now differs from what ran"


def flat(text: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The backprop release alone in an empty folder; the student's saved notebook is the solution."""
    folder = release(load_assignment(REPO_ROOT / "assignments" / "backprop"), tmp_path / "release")
    student = tmp_path / "student" / "backprop"
    shutil.copytree(folder, student)
    shutil.copy(student / "backprop.ipynb", student / "template.ipynb")
    return student


def test_check_in_a_notebook_cell_shows_the_practice_checks_inline(bundle: Path) -> None:
    pytest.importorskip("ipykernel", reason="the in-notebook check is tested in a real kernel: pip install ipykernel")
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO_ROOT / "solutions" / "backprop" / "backprop.ipynb", as_version=4)
    checks = [CHECK_ALL, CHECK_ONE, UNSAVE, "check()"]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in checks]
    nbformat.write(notebook, bundle / "backprop.ipynb")  # saved: what the kernel runs, up to UNSAVE
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(bundle)}})
    client.execute()
    outputs = {cell.source: cell.outputs for cell in notebook.cells[-len(checks) :]}
    every, one, stale = outputs[CHECK_ALL], outputs[CHECK_ONE], outputs["check()"]
    for shown in (every, one, stale):  # one result per cell: an HTML table with a text twin, nothing else
        assert [o.output_type for o in shown] == ["execute_result"], shown
        assert set(shown[0].data) == {"text/plain", "text/html"}
    html, text = every[0].data["text/html"], every[0].data["text/plain"]
    assert "backprop: practice checks: 8 of 8 pass" in flat(html) and "<table" in html
    assert "They are not your grade: the hidden tests decide it." in flat(html)
    assert "practice checks: 8 of 8 pass" in text and "All practice checks pass." in text
    assert "is not what this kernel ran" not in text  # the file as saved is what ran
    assert re.findall(r"<code>(test_\w+)</code>", one[0].data["text/html"]) == [
        "test_linear_backward_shapes", "test_linear_backward_small_example",
    ]  # fmt: skip
    stale_html = flat(stale[0].data["text/html"])
    assert "the saved backprop.ipynb is not what this kernel ran" in stale_html
    assert "save the notebook (Ctrl-S) and check again" in stale_html
    assert "backprop: practice checks: 0 of 8 pass" in stale_html  # the file is checked, not the kernel's code
    assert "not implemented yet: linear_forward raises NotImplementedError" in stale_html


def test_the_inline_table_shows_only_the_student_view() -> None:
    view = student_view(hostile_report(), FeedbackPolicy())
    shown = CheckDisplay(CheckResult(view, ["a note \x1b[31m"]), ["<script>alert(1)</script>"])
    html = shown._repr_html_()
    assert_student_safe(html, "the in-notebook check (HTML)")
    assert_student_safe(repr(shown), "the in-notebook check (text)")
    assert "<script>" not in html and "&lt;script&gt;" in html
