"""`grader verify`'s robustness check: wrong answers from each solution function end in zeros.

For every top-level function of the solution notebook that holds a ``### BEGIN SOLUTION`` block
(and every such method of a top-level class), the solution is graded with that function made
wrong in one of the ways students get it wrong (WRONG_ANSWERS). Each such submission must be
graded (never ``grader_error``, never a crashed test run), every hidden test must either keep
the solution's score or end failed/error/timeout/invalid/memory/crashed with zero, and at least
one test must notice (issue 14).

The wrong function is wrapped right after its ``def``, in the solution's own source, so that the
notebook's other functions call it exactly as they would call a student's. The never-returns
answer runs against a temporary copy of the hidden tests whose calls wait at most
``loop_call_timeout_s`` (also per-test ``@limits``), so that it costs seconds, not minutes; the
real course is never written to.
"""

from __future__ import annotations

import ast
import contextlib
import shutil
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.authoring.release import BEGIN
from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport, TestResult
from grader.grading.spec import Assignment
from grader.grading.static_checks import check_cells
from grader.grading.submission import Cell, InvalidSubmission, load_submission
from grader.grading.suite import SuiteCache
from grader.settings import GradeSettings

# Statuses a test may end with when the submission's answer is wrong (always with zero points).
ZERO_STATUSES = ("failed", "error", "timeout", "invalid", "memory", "crashed")
# A call into a never-returning function waits this long (the assignment's limits are often 10-60 s).
LOOP_CALL_TIMEOUT_S = 1.0
# Printed by the NaN and str answers when the solution's function returned None: nothing to spoil.
NOTHING_TO_SPOIL = "[grader verify] the solution's function returned None: no value to make wrong"
_NOT_GRADED = "not graded: a problem in the grader"


@dataclass(frozen=True)
class WrongAnswer:
    """One way of getting a function wrong: ``body`` of a function ``wrong(*args, **kwargs)``."""

    key: str
    label: str
    column: str
    body: str
    spoils_result: bool = False  # runs the solution's function and spoils what it returned


_SPOIL = """
def spoil(value):
    import sys

    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if value is None:
        print({nothing!r}, flush=True)
        return None
    if isinstance(value, (tuple, list)):
        items = [spoil(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {{key: spoil(item) for key, item in value.items()}}
    if numpy is not None and isinstance(value, numpy.ndarray):
        return {array}
    if torch is not None and isinstance(value, torch.Tensor):
        return {tensor}
    if torch is not None and isinstance(value, torch.nn.Module):
        {module}
    return {scalar}
"""
_NAN = {
    "array": 'numpy.full(value.shape, numpy.nan, dtype=value.dtype if value.dtype.kind in "fc" else float)',
    "tensor": "torch.full(tuple(value.shape), float('nan'), device=value.device, "
    "dtype=value.dtype if value.is_floating_point() or value.is_complex() else torch.get_default_dtype())",
    "module": "with torch.no_grad():\n"
    "            for parameter in value.parameters():\n"
    "                if parameter.is_floating_point():\n"
    "                    parameter.fill_(float('nan'))\n"
    "        return value",
    "scalar": "float('nan')",
}
_STR = {
    "array": 'numpy.full(value.shape, "wrong answer")',
    "tensor": 'numpy.full(tuple(value.shape), "wrong answer") if numpy is not None else "wrong answer"',
    "module": 'return "wrong answer"',
    "scalar": '"wrong answer"',
}


def _spoiling(parts: dict[str, str]) -> str:
    return _SPOIL.format(nothing=NOTHING_TO_SPOIL, **parts) + "\nreturn spoil(original(*args, **kwargs))\n"


WRONG_ANSWERS = (
    WrongAnswer("none", "returns None", "None", "return None\n"),
    WrongAnswer("wrong_shape", "returns np.zeros((7, 3))", "zeros(7,3)", "import numpy\nreturn numpy.zeros((7, 3))\n"),
    WrongAnswer("nan", "returns NaN of the solution's shape", "NaN", _spoiling(_NAN), spoils_result=True),
    WrongAnswer("str", "returns strings of the solution's shape", "str", _spoiling(_STR), spoils_result=True),
    WrongAnswer("raises", "raises ValueError", "raises", 'raise ValueError("grader verify: a function that raises")\n'),
    WrongAnswer("never_returns", "never returns", "no return", "import time\nwhile True:\n    time.sleep(0.05)\n"),
)
# A constructor returns None whatever it does; only these answers make sense for __init__.
_INIT_ANSWERS = ("none", "raises", "never_returns")

_WRAPPER = '''
def _grader_verify_wrong(original):
    """Added by `grader verify`'s robustness check: {name} {label}."""
    import functools

    @functools.wraps(original)
    def wrong(*args, **kwargs):
{body}
    return wrong


{short} = _grader_verify_wrong({short})
del _grader_verify_wrong
'''

# Appended to the temporary copy's conftest.py: no call waits longer than the cap, @limits too.
_CAP_HOOK = """

# Added by `grader verify` (never-returns check, a temporary copy): calls wait at most {cap} s.
import pytest as _grader_verify_pytest


@_grader_verify_pytest.hookimpl(specname="pytest_collection_modifyitems", trylast=True)
def pytest_collection_modifyitems_grader_verify(items):
    for item in items:
        marker = item.get_closest_marker("grader_limits")
        timeout = marker.kwargs.get("call_timeout_s") if marker else None
        if timeout is not None and timeout > {cap}:
            item.add_marker(_grader_verify_pytest.mark.grader_limits(call_timeout_s={cap}), append=False)
"""


@dataclass(frozen=True)
class Target:
    """A solution function: ``name`` ("f" or "Class.method"), its cell and last line, its indent."""

    name: str
    cell: int
    end_line: int
    indent: str

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def answers(self) -> tuple[WrongAnswer, ...]:
        if self.short == "__init__":
            return tuple(answer for answer in WRONG_ANSWERS if answer.key in _INIT_ANSWERS)
        return WRONG_ANSWERS


def _has_solution(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a BEGIN SOLUTION line lies inside the def (its END line may follow the last statement)."""
    lines = source.split("\n")[node.lineno - 1 : node.end_lineno]
    return any(line.strip() == BEGIN for line in lines)


def find_targets(cells: tuple[Cell, ...]) -> tuple[list[Target], list[str]]:
    """The functions (and methods) with a solution block, and notes on those that cannot be checked."""
    targets: dict[str, Target] = {}
    notes: list[str] = []
    for position, cell in enumerate(cells):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else [node]
            prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
            for member in members:
                if not isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if not _has_solution(cell.source, member):
                    continue
                name = prefix + member.name
                decorators = {ast.unparse(d) for d in member.decorator_list}
                if isinstance(member, ast.AsyncFunctionDef) or (
                    prefix and decorators & {"staticmethod", "classmethod", "property"}
                ):
                    notes.append(f"{name} is not checked (async, or a static/class method or property)")
                    continue
                indent = " " * member.col_offset
                targets[name] = Target(name, position, member.end_lineno or member.lineno, indent)
    return list(targets.values()), notes


def wrong_sources(cells: tuple[Cell, ...], target: Target, answer: WrongAnswer) -> list[str]:
    """The solution's cell sources with ``target`` wrapped to give ``answer``."""
    body = textwrap.indent(answer.body, " " * 8)
    wrapper = _WRAPPER.format(name=target.name, label=answer.label, body=body, short=target.short)
    sources = [cell.source for cell in cells]
    lines = sources[target.cell].split("\n")
    inserted = textwrap.indent(wrapper, target.indent).split("\n")
    sources[target.cell] = "\n".join(lines[: target.end_line] + inserted + lines[target.end_line :])
    return sources


def write_notebook(path: Path, sources: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]  # untyped
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]  # type: ignore[no-untyped-call]
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]  # untyped
    return path


@dataclass
class Case:
    """One wrong submission: which function, which wrong answer, its report and what broke."""

    target: Target
    answer: WrongAnswer
    report: SubmissionReport
    violations: list[str] = field(default_factory=list)
    not_applicable: bool = False

    def cell(self) -> str:
        if self.not_applicable:
            return "n/a"
        score = self.report.status if self.report.score is None else f"{self.report.score:g}"
        return score + ("!" if self.violations else "")


def judge(case: Case, baseline: SubmissionReport) -> None:
    """Fill ``case.violations``: graded, each test unchanged or zero with a failing status, one changed."""
    report, where = case.report, f"robustness: {case.target.name} {case.answer.label}"
    if report.status != "graded":
        broken = [t.name for t in report.tests if t.message.startswith(_NOT_GRADED)]
        by = f" (broken in {', '.join(broken)})" if broken else ""
        case.violations.append(f"{where}: the run ended {report.status}, not graded{by}: {report.message}")
        return
    solution = {t.id: t for t in baseline.tests}
    changed = False
    for test in report.tests:
        before: TestResult | None = solution.get(test.id)
        if before is None:
            case.violations.append(f"{where}: {test.name} is not among the solution's tests")
        elif test.score == before.score:
            continue
        elif test.status in ZERO_STATUSES and test.score == 0:
            changed = True
        else:
            case.violations.append(
                f"{where}: {test.name} ended {test.status} with {test.score:g} of {test.max_score:g} points "
                f"(the solution: {before.score:g}); a wrong answer must get 0: {test.message}"
            )
    if not changed and not case.violations:
        if case.answer.spoils_result and NOTHING_TO_SPOIL in report.output:
            case.not_applicable = True  # the function returns None: its NaN/str answer is the solution
        else:
            case.violations.append(f"{where}: no hidden test noticed: every test kept the solution's score")


@dataclass
class RobustnessCheck:
    """Every wrong answer of every solution function, graded and judged."""

    targets: list[Target] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    loop_wall_s: float = 0.0  # of which the never-returns answers

    def header(self) -> list[str]:
        return ["function", *(answer.column for answer in WRONG_ANSWERS)]

    def rows(self) -> list[list[str]]:
        rows = []
        for target in self.targets:
            cells = {case.answer.key: case.cell() for case in self.cases if case.target == target}
            rows.append([target.name, *(cells.get(answer.key, "-") for answer in WRONG_ANSWERS)])
        return rows


@contextlib.contextmanager
def capped_copy(assignment: Assignment, call_timeout_s: float) -> Iterator[Assignment]:
    """The assignment with its hidden tests copied to a temporary course, every call capped.

    The other folders of the course are linked, so hidden tests that read files beside them
    (``Path(__file__).parents[1] / "assignments"``) still find them. Only the copy is changed.
    """
    course = assignment.hidden_tests_dir.resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="grader-verify-") as scratch:
        root = Path(scratch)
        hidden = root / "autograde_tests" / assignment.hidden_tests_dir.name
        shutil.copytree(assignment.hidden_tests_dir, hidden, ignore=shutil.ignore_patterns("__pycache__"))
        for entry in course.iterdir():
            if entry.name != "autograde_tests":
                (root / entry.name).symlink_to(entry)
        conftest = hidden / "conftest.py"
        existing = conftest.read_text() if conftest.exists() else ""
        conftest.write_text(existing + _CAP_HOOK.format(cap=call_timeout_s))
        limits = assignment.spec.limits
        # relative: None, since [limits.relative]'s per-test call limits would replace the cap (issue 20).
        capped = {"call_timeout_s": min(limits.call_timeout_s, call_timeout_s), "relative": None}
        limits = limits.model_copy(update=capped)
        spec = assignment.spec.model_copy(update={"limits": limits})
        yield assignment.model_copy(update={"spec": spec, "hidden_tests_dir": hidden})


def check_robustness(
    assignment: Assignment,
    settings: GradeSettings,
    baseline: SubmissionReport,
    suites: SuiteCache,
    loop_call_timeout_s: float = LOOP_CALL_TIMEOUT_S,
) -> RobustnessCheck:
    """Grade each wrong answer of each solution function and judge it against ``baseline``.

    ``baseline`` is the solution's report. ``suites`` is closed before the never-returns
    answers: their copied tests have the same module names as the real ones (pytest's
    importlib mode would reuse the real modules).
    """
    started = time.monotonic()
    check = RobustnessCheck()
    solution = assignment.solutions_dir / assignment.spec.notebook
    try:
        cells = load_submission(solution).cells
    except InvalidSubmission as exc:
        check.failures.append(f"robustness: the solution cannot be loaded: {exc}")
        return check
    check.targets, check.notes = find_targets(cells)
    if not check.targets:
        check.notes.append(f"no function of {solution.name} holds a ### BEGIN SOLUTION block: nothing to check")
    plan = [(target, answer) for target in check.targets for answer in target.answers()]
    looping = [pair for pair in plan if pair[1].key == "never_returns"]
    with tempfile.TemporaryDirectory(prefix="grader-verify-answers-") as scratch:
        for target, answer in [pair for pair in plan if pair not in looping]:
            check.cases.append(_case(cells, target, answer, Path(scratch), assignment, settings, suites, baseline))
        suites.close()
        loop_started = time.monotonic()
        with capped_copy(assignment, loop_call_timeout_s) as capped, contextlib.closing(SuiteCache()) as own:
            for target, answer in looping:
                check.cases.append(_case(cells, target, answer, Path(scratch), capped, settings, own, baseline))
        check.loop_wall_s = time.monotonic() - loop_started
    for case in check.cases:
        check.failures += case.violations
    check.notes += raised_in_tests(check.cases)
    check.wall_s = time.monotonic() - started
    return check


def raised_in_tests(cases: list[Case]) -> list[str]:
    """Tests whose own code raised on a wrong answer (scored as the test's error, issue 14): worth a fix."""
    raised: dict[str, list[str]] = {}
    for case in cases:
        for test in case.report.tests:
            if test.test_raised:
                what = test.test_raised.split(":", 1)[0]
                raised.setdefault(test.name, []).append(f"{case.target.name} {case.answer.label} ({what})")
    return [
        f"{name} raised in its own code on {len(answers)} wrong answer{'s' * (len(answers) > 1)}, scored as its error: "
        f"{'; '.join(answers)}; check the value with expect_* first for a clearer message"
        for name, answers in raised.items()
    ]


def _case(
    cells: tuple[Cell, ...], target: Target, answer: WrongAnswer, scratch: Path, assignment: Assignment,
    settings: GradeSettings, suites: SuiteCache, baseline: SubmissionReport,
) -> Case:  # fmt: skip
    sources = wrong_sources(cells, target, answer)
    blocked = check_cells(tuple(Cell(i, s) for i, s in enumerate(sources)), assignment.spec.static)
    path = write_notebook(scratch / f"{target.name}--{answer.key}.ipynb", sources)
    case = Case(target, answer, grade(path, assignment, settings, suites=suites))
    if blocked and not check_cells(cells, assignment.spec.static):
        listed = "; ".join(v.describe() for v in blocked)
        case.violations.append(f"robustness: {target.name} {answer.label}: the made-up answer breaks a rule: {listed}")
        return case
    judge(case, baseline)
    return case
