"""Cells at load (issue 13): a time budget per cell, names a student can find, Jupyter's built-ins."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import load_assignment
from grader.grading.student_view import student_view
from grader.grading.submission import load_submission
from grader.settings import GradeSettings

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"

@points(5)
def test_mul(submission):
    assert expect_scalar(submission.mul(2, 3), "mul") == 6, "mul(2, 3) is wrong"
"""

ADD = "def add(a, b):\n    return a + b"
MUL = "def mul(a, b):\n    return a * b"


def notebook(path: Path, *cells: str | tuple[str, str]) -> Path:
    """Code cells with execution counts 1, 2, ... and a markdown cell wherever a ("md", text) is given."""
    nb = nbformat.v4.new_notebook()
    count = 0
    for cell in cells:
        if isinstance(cell, tuple):
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        else:
            count += 1
            nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(cell), execution_count=count))
    nbformat.write(nb, path)
    return path


def course_with(make_course, **limits: float) -> Path:
    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    extra = "".join(f"{name} = {value}\n" for name, value in limits.items())
    spec.write_text(spec.read_text().replace("[limits]\n", "[limits]\n" + extra))
    return course


def graded(course: Path, path: Path, sandbox: str = "bwrap") -> SubmissionReport:
    return grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox))


# ------------------------------------------------------------------ names a student can find


def test_cells_are_named_by_position_in_count_and_first_line(tmp_path):
    path = notebook(tmp_path / "nb.ipynb", ("md", "# Title"), "import math", ("md", "## Part 1"), ("md", "text"),
                    "\n\n# the adder\n" + ADD, "def oops():\n    pass\nundefined_name")  # fmt: skip
    cells = load_submission(path).cells
    assert [(c.index, c.position, c.execution_count) for c in cells] == [(1, 1, 1), (4, 2, 2), (5, 3, 3)]
    assert [c.first_line for c in cells] == ["import math", "# the adder", "def oops():"]
    assert [c.defines for c in cells] == [(), ("add",), ("oops",)]
    assert cells[1].label == 'code cell 2 (In [2]) "# the adder"'
    long_line = "total = sum(range(10)) + sum(range(20)) + sum(range(30))"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(long_line)]), tmp_path / "fresh.ipynb")
    fresh = load_submission(tmp_path / "fresh.ipynb").cells[0]  # saved without running: no In [n]
    assert (fresh.execution_count, fresh.label) == (None, 'code cell 1 "total = sum(range(10)) + sum(range(20..."')


def test_a_cell_that_raises_is_named_as_jupyter_shows_it(make_course, tmp_path, sandbox_mode):
    course = course_with(make_course)
    path = notebook(tmp_path / "nb.ipynb", ("md", "# Title"), ADD, ("md", "## demo"), "print(add(1, 2))\nadd(1)", MUL)
    report = graded(course, path, sandbox_mode)
    assert report.score == 10
    assert [(c.index, c.position, c.status) for c in report.cells] == [(1, 1, "ok"), (3, 2, "error"), (4, 3, "ok")]
    assert report.cells[1].message.startswith("TypeError: add() missing 1 required positional argument")
    assert report.cells[1].message.endswith("(in cell 3, line 2, in <module>)")  # the report keeps the index
    for tests in ("hidden", "visible"):
        cell = student_view(report, load_assignment(course / "assignments" / "toy").spec.feedback, tests)
        shown = cell.failing_cells[0]
        assert shown.label == 'code cell 2 (In [2]) "print(add(1, 2))"'
        assert shown.line.startswith('code cell 2 (In [2]) "print(add(1, 2))": TypeError')
        assert "cell 3" not in shown.line, "the notebook index (markdown counted) reached the student"
    assert cell.failing_cells[0].message.endswith("(line 2, in <module>)")


def test_a_syntax_error_names_its_cell_and_line(make_course, tmp_path, sandbox_mode):
    course = course_with(make_course)
    path = notebook(tmp_path / "nb.ipynb", ADD, "def mul(a, b:\n    return a * b")
    report = graded(course, path, sandbox_mode)
    assert report.cells[1].message == "SyntaxError: '(' was never closed (in cell 1, line 1, in <module>)"
    view = student_view(report, load_assignment(course / "assignments" / "toy").spec.feedback, "visible")
    assert {t.name: t.message for t in view.tests}["test_mul"] == (
        "the submission does not define mul: check that the cell defining it runs without an error "
        '(mul is defined in code cell 2 (In [2]) "def mul(a, b:", which raised an error)'
    )


# ------------------------------------------------------------------ a time budget per cell


@pytest.mark.parametrize(
    "slow",
    ["%%time\nimport time\ntime.sleep(50)", "x = 0\nwhile True:\n    x += 1", "import time\ntry:\n    time.sleep(50)\n"
     "except KeyboardInterrupt:\n    print('stopped early')\n    while True:\n        pass"],
    ids=["sleep", "python-loop", "catches-the-interrupt"],
)  # fmt: skip
def test_a_slow_last_cell_costs_only_its_budget(make_course, tmp_path, sandbox_mode, slow):
    course = course_with(make_course, cell_timeout_s=3, load_timeout_s=20)
    plain = graded(course, notebook(tmp_path / "plain.ipynb", ADD, MUL), sandbox_mode)
    started = time.monotonic()
    report = graded(course, notebook(tmp_path / "slow.ipynb", ("md", "# t"), ADD, MUL, slow), sandbox_mode)
    took = time.monotonic() - started
    assert (report.score, plain.score) == (10, 10)
    assert [c.status for c in report.cells] == ["ok", "ok", "timeout"]
    assert report.cells[2].message.startswith(
        "took longer than the time limit per cell (cell_timeout_s) of 3 s and was interrupted"
    )
    assert took < 3 + 6, f"grading took {took:.1f} s for a 3 s cell budget"
    view = student_view(report, load_assignment(course / "assignments" / "toy").spec.feedback)
    assert view.failing_cells[0].line.startswith(f'code cell 3 (In [3]) "{slow.splitlines()[0]}": took longer than')


def test_without_a_cell_limit_a_slow_cell_gets_what_is_left_of_the_load(make_course, tmp_path, sandbox_mode):
    course = course_with(make_course, load_timeout_s=3)  # no cell_timeout_s: the load's 3 s are the cap
    started = time.monotonic()
    report = graded(course, notebook(tmp_path / "nb.ipynb", ADD, "import time\ntime.sleep(50)", MUL), sandbox_mode)
    assert time.monotonic() - started < 3 + 6
    assert report.score == 5
    assert [c.status for c in report.cells] == ["ok", "timeout", "not_run"]
    assert "what was left of the time limit for loading the notebook of 3 s" in report.cells[1].message
    assert report.resources.worker_starts == 1
    view = student_view(report, load_assignment(course / "assignments" / "toy").spec.feedback)
    assert {t.name: t.message for t in view.tests}["test_mul"] == (
        "the submission does not define mul: check that the cell defining it runs without an error "
        '(mul is defined in code cell 3 (In [3]) "def mul(a, b):", which did not run)'
    )


def test_a_cell_that_ignores_the_interrupt_is_stopped_from_outside(make_course, tmp_path, sandbox_mode):
    course = course_with(make_course, cell_timeout_s=1, load_timeout_s=20)
    ignores = "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(50)"
    started = time.monotonic()
    report = graded(course, notebook(tmp_path / "nb.ipynb", ADD, ignores, MUL), sandbox_mode)
    assert time.monotonic() - started < 1 + 2 + 8
    assert report.score == 10  # restarted without the cell: add (before it) and mul (after it) both exist
    assert [c.status for c in report.cells] == ["ok", "timeout", "ok"]
    assert report.cells[1].message == (
        "took longer than the time limit per cell (cell_timeout_s) of 1 s and did not stop when interrupted; "
        "the worker was started again, without this cell"
    )
    assert report.resources.worker_starts == 2


def test_cells_past_the_load_limit_are_listed_as_not_run(make_course, tmp_path, sandbox_mode):
    course = course_with(make_course, cell_timeout_s=2, load_timeout_s=3)
    sleepy = "import time\ntime.sleep(1.6)"
    report = graded(course, notebook(tmp_path / "nb.ipynb", ADD, sleepy, sleepy, MUL), sandbox_mode)
    assert [c.status for c in report.cells] == ["ok", "ok", "timeout", "not_run"]
    assert report.cells[3].message == (
        "not run: the time limit for loading the notebook of 3 s was used up by the cells before it"
    )
    assert {t.name: t.status for t in report.tests} == {"test_add": "passed", "test_mul": "failed"}


def test_the_report_lists_every_cell_when_the_submission_is_not_run(make_course, tmp_path):
    course = course_with(make_course)
    report = graded(course, notebook(tmp_path / "nb.ipynb", ADD, "import torch", MUL), "none")
    assert [(c.position, c.status) for c in report.cells] == [(1, "not_run"), (2, "not_run"), (3, "not_run")]


# ------------------------------------------------------------------ Jupyter's built-ins in the worker

JUPYTER_CELLS = [
    "ran = []\ndisplay(1, 'two')\nfrom IPython.display import display as shown, clear_output\n"
    "shown([3])\nclear_output()",
    "ip = get_ipython()\nip.run_line_magic('matplotlib', 'inline')\n"
    "ip.run_line_magic('timeit', '-n 100 -r 7 ran.append(1)')",
    "%timeit -n 1000 ran.append(1)",
    "%%timeit -n 5 ran.append(2)\nran.append(3)",
    "assert get_ipython().system('rm -rf /') is None and get_ipython().getoutput('ls') == []\n"
    "get_ipython().events.register('post_run_cell', print)\nget_ipython().register_magic_function(print)",
    "from grader import check\ncheck()\ncheck('add')",
    "assert ran == [1, 1, 2, 3], ran",
]


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_jupyter_built_ins_load_without_error(make_course, tmp_path, sandbox, bwrap_works):
    if sandbox == "bwrap":
        assert bwrap_works, "bubblewrap must work on this machine"
    course = course_with(make_course)
    cells = [ADD, *JUPYTER_CELLS, MUL]
    report = graded(course, notebook(tmp_path / "nb.ipynb", *cells), sandbox)
    assert [(c.position, c.message) for c in report.cells if not c.ok] == []
    assert report.score == 10
    assert "1\n'two'\n[3]\n" in report.output


STAND_IN = """
import importlib.util, sys, types
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *args: None if name == "IPython" else real(name, *args)
from grader.inside import jupyter_builtins
module = types.ModuleType("submission")
jupyter_builtins.install(module)
exec("from IPython.display import display, HTML, clear_output\\ndisplay(HTML('<b>x</b>'))\\nclear_output()",
     module.__dict__)
"""


def test_without_ipython_the_box_has_a_stand_in_for_its_display_module(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STAND_IN], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "<HTML: <b>x</b>>\n"
