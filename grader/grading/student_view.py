"""The student view: what a student may see of a report, decided here and nowhere else.

DESIGN.md ("What students see"): every student-facing writer (the check command, the HTML
feedback page, Gradescope results, JUnit, the CSV gradebook) renders a StudentReport made by
`student_view`, never the SubmissionReport itself. The report keeps everything for the TA.

Withheld from students, whatever the writer:
- the message of a ``visible=False`` test;
- under the hidden tests, text the submission's own code produced: the message of an exception
  it raised (during a call or while the notebook loaded) and what it printed, since both can
  carry the hidden inputs it received. Its exception's type and line in the student's code are
  shown instead. The assignment opts in with ``[feedback] show_student_errors`` / ``show_output``;
- the grader's own failures (their text names hidden-test files and holds hidden-test values);
- paths of the hidden tests, the solutions, the grader package and the Python installation;
- raw control characters: escape sequences, carriage returns, bidi overrides are made visible.

A submission that sets out to leak can still encode bits in what stays visible (which tests pass,
the shape it returns, the line it raises on); what is blocked is the text it controls directly.
"""

# Just over ~400 lines: the one place that decides what a student sees (DESIGN.md); kept whole.

from __future__ import annotations

import functools
import re
import sys
import sysconfig
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.grading.report import CellOutcome, SubmissionReport, SubmissionStatus, TestResult, TestStatus, truncate
from grader.grading.spec import FeedbackPolicy
from grader.sandbox.bwrap import SANDBOX_LIB

TestsRun = Literal["hidden", "visible"]

HIDDEN_DETAILS = "details of this test are hidden"
GRADER_PROBLEM = "not graded: a problem in the grader, not in your code; your TA will rerun it"
WITHHELD = "the message is not shown, since it can hold the hidden test's inputs"
WITHHELD_AT_LOAD = "the message is not shown in graded feedback; run the notebook yourself to see it"
LOAD_PREFIX = "the notebook could not be loaded: "
PRACTICE_NOTE = (
    "These are the practice checks (the visible tests). They are not your grade: the hidden tests decide it."
)
ALL_PASS = "All practice checks pass. The hidden tests decide the grade."
STUDENT_MESSAGE_CHARS = 2000

# ------------------------------------------------------------------ text made safe for any output

# C0 and C1 controls (tab and newline stay), DEL, lone surrogates (they cannot be encoded as
# UTF-8), bidi embeddings, overrides and isolates (CVE-2021-42574, "Trojan Source"), line and
# paragraph separators, the BOM and the characters XML 1.0 forbids.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\ud800-\udfff]"
)
_UNSAFE_IN_LINE = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")


def _visible(match: re.Match[str]) -> str:
    """The character as Python's repr writes it (``\\x1b``, ``\\r``, ``\\u202e``), as report.printable does."""
    return match.group().encode("unicode_escape").decode("ascii")


def sanitize_text(text: str, *, keep_newlines: bool = True) -> str:
    r"""The text with every control character written out visibly: ESC as ``\x1b``, CR as ``\r``.

    Newlines and tabs stay unless ``keep_newlines`` is false (single-line fields).
    """
    return (_UNSAFE if keep_newlines else _UNSAFE_IN_LINE).sub(_visible, text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text: formula starts get a leading quote (OWASP CSV injection)."""
    text = sanitize_text(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


# ------------------------------------------------------------------ paths a student must not see

_TOKEN = r"[^\s'\"`<>|;:,()\[\]{}]"


@functools.cache
def _path_markers() -> tuple[tuple[str, str], ...]:
    """Substrings that make a path token private, with what the token is replaced by."""
    package = str(Path(__file__).resolve().parent.parent)
    markers = [
        ("autograde_tests", "<hidden tests>"),
        ("/solutions/", "<course files>"),
        (package, "<grader>"),
        (SANDBOX_LIB, "<grader>"),
        ("site-packages", "<python library>"),
        ("dist-packages", "<python library>"),
    ]
    for root in {sys.prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"]}:
        if len(Path(root).parts) > 2:  # never "/" or "/usr": too broad to mean the grader's Python
            markers.append((root, "<python library>"))
    return tuple(markers)


@functools.cache
def _path_pattern() -> re.Pattern[str]:
    alternation = "|".join(re.escape(marker) for marker, _ in _path_markers())
    return re.compile(rf"{_TOKEN}*(?:{alternation}){_TOKEN}*")


def _path_label(match: re.Match[str]) -> str:
    token = match.group()
    return next(label for marker, label in _path_markers() if marker in token)


def scrub_paths(text: str) -> str:
    """Replace every path into the hidden tests, solutions, grader or Python install by a label."""
    return _path_pattern().sub(_path_label, text)


def student_text(text: str, limit: int = STUDENT_MESSAGE_CHARS) -> str:
    """What any text becomes before a student reads it: controls made visible, private paths gone."""
    return truncate(scrub_paths(sanitize_text(text)), limit)


# ------------------------------------------------------------------ the submission's own text

# worker.describe_exception: "Type: text (in cell 3, line 5, in forward)". The text comes from the
# box and is untrusted; only the parts these patterns accept are ever shown. Type names carry no
# digits, so a class named after a hidden number (type(str(x), ...)) shows as "an exception".
_NAME = r"[A-Za-z_]{1,60}(?:\.[A-Za-z_]{1,60}){0,4}"
_RAISED = re.compile(rf"(?P<type>{_NAME}): ")
_WHERE = re.compile(
    r" \(in (?:(?P<cell>cell \d{1,5})|probes), line (?P<line>\d{1,6}), in (?P<func>[A-Za-z_]\w{0,59}|<[a-z]{1,12}>)\)$"
)
_MEMORY = re.compile(
    r"ran out of (?P<gpu>GPU )?memory \(.*\); (?P<limit>the (?:GPU memory )?limit is [\w' ]{1,40} MB)", re.DOTALL
)
_MEMORY_TRUSTED = re.compile(r"ran out of memory: the sandbox's limit of \d{1,9} MB was reached")
_PLAIN_DATA = "(numbers, strings, lists, tuples, dicts with str keys, numpy arrays or tensors)"
_INVALID_TRUSTED = [
    re.compile(rf"a value of type {_NAME} cannot be returned; return plain data {re.escape(_PLAIN_DATA)}"),
    re.compile(r"value is nested deeper than \d{1,6} or has too many items"),
    re.compile(r"dict keys must all be str"),
    re.compile(r"numpy arrays of dtype object cannot cross the boundary"),
    re.compile(r"the worker answered out of turn \(the submission wrote to the grader's channel\)"),
]
INVALID_VALUE = f"returned a value that cannot be sent back to the grader; return plain data {_PLAIN_DATA}"


# ------------------------------------------------------------------ cells, named as a student finds them

# The report names a cell by its notebook index ("cell 8", markdown cells counted); a student finds
# "code cell 5 (In [5], "def f(x):")" (issue 13). `Labels` maps one to the other, from report.cells.
Labels = dict[int, str]
_CELL_REF = re.compile(r"(?<![\w-])(?<!code )cell (\d{1,5})(?=[,):])")
_SELF_WHERE = re.compile(r" \(in cell (\d{1,5}), (line \d{1,6}, in (?:[A-Za-z_]\w{0,59}|<[a-z]{1,12}>))\)$")


def cell_labels(report: SubmissionReport) -> Labels:
    """The student's name of every cell the report knows (reports before issue 13: "cell N", as then)."""
    return {cell.index: cell.label for cell in report.cells}


def relabel(text: str, labels: Labels, this: int | None = None) -> str:
    """Every ``cell N`` of ``text`` as the student's name of that cell; ``this`` cell's own line as ``line L``."""
    if this is not None and labels.get(this, f"cell {this}") != f"cell {this}":
        text = _SELF_WHERE.sub(lambda m: f" ({m.group(2)})" if int(m.group(1)) == this else m.group(), text)
    return _CELL_REF.sub(lambda m: labels.get(int(m.group(1)), m.group()), text)


def describe_raised(message: str, why: str = WITHHELD, labels: Labels | None = None, this: int | None = None) -> str:
    """An exception's message reduced to its type and the line in the student's code, and ``why``."""
    raised = _RAISED.match(message)
    where = _WHERE.search(message)
    kind = raised.group("type") if raised else "an exception"
    if where is None:
        return f"{kind} was raised; {why}"
    if where.group("cell") is None:
        return f"{kind} was raised in the hidden test's helper code (probes.py); {why}"
    line = f"line {where.group('line')}, in {where.group('func')}"
    index = int(where.group("cell").split()[1])
    label = (labels or {}).get(index, where.group("cell"))
    if index == this and label != where.group("cell"):
        return f"{kind} was raised at {line}; {why}"
    return f"{kind} was raised in {label}, {line}; {why}"


def _memory_message(message: str) -> str:
    if _MEMORY_TRUSTED.fullmatch(message):
        return message
    found = _MEMORY.fullmatch(message)
    if found is None:
        return "ran out of memory"
    return f"ran out of {found.group('gpu') or ''}memory; {found.group('limit')}"


def _invalid_message(message: str) -> str:
    return message if any(p.fullmatch(message) for p in _INVALID_TRUSTED) else INVALID_VALUE


def without_submission_text(status: TestStatus, message: str, labels: Labels | None = None) -> str:
    """A hidden test's message without the text the submission's code chose (see the module doc)."""
    prefix = LOAD_PREFIX if message.startswith(LOAD_PREFIX) else ""
    rest = message.removeprefix(prefix)
    if status == "error":
        rest = describe_raised(rest, WITHHELD_AT_LOAD if prefix else WITHHELD, labels)
    elif status == "memory":
        rest = _memory_message(rest)
    elif status == "invalid":
        rest = _invalid_message(rest)
    return prefix + rest


# ------------------------------------------------------------------ the model and the one function


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudentTest(_Model):
    name: str = Field(description="The test's name.")
    status: TestStatus = Field(description="Outcome, as in the report.")
    score: float = Field(description="Points earned.")
    max_score: float = Field(description="Points available.")
    message: str = Field(description="What the student may read of why; empty when there is nothing to say.")
    details_hidden: bool = Field(description="The test is @points(visible=False): its message is withheld.")
    duration_s: float = Field(description="Wall seconds the test took.")


class StudentCell(_Model):
    index: int = Field(description="0-based index of the cell among all the notebook's cells (the report's name).")
    message: str = Field(description="What the student may read of the error, or why the cell was stopped.")
    label: str = Field("", description='How the student finds the cell: code cell 5 (In [5], "def f(x):").')
    status: str = Field("error", description="error | timeout | memory | crashed | not_run (see the report).")

    @property
    def line(self) -> str:
        """The one line every writer shows for this cell."""
        return f"{self.label or f'cell {self.index}'}: {self.message}"


class StudentGradeChange(_Model):
    """A change to the automatic score that the student is shown (issue 15)."""

    kind: Literal["adjustment", "late_penalty"] = Field(description="A TA's adjustment, or the late penalty.")
    test: str | None = Field(None, description="The test it changed; null: the whole submission.")
    points: float = Field(description="Points it changed the score by (negative: taken off).")
    reason: str = Field("", description="Why, when the TA chose to show it; the penalty's rule for a late penalty.")


class StudentReport(_Model):
    """All a student may see of one grading run; every student-facing writer renders only this."""

    assignment: str = Field(description="Assignment name.")
    submission_id: str = Field(description="Submission id (file stem or student id).")
    status: SubmissionStatus = Field(description="graded | invalid_submission | grader_error.")
    message: str = Field(description="Why the submission was not graded normally, in words for the student.")
    score: float | None = Field(description="Points earned; null when the grader failed (not a zero).")
    max_score: float = Field(description="Points available.")
    tests: list[StudentTest] = Field(description="One entry per test, in the report's order.")
    failing_cells: list[StudentCell] = Field(
        description="Cells that did not run to their end while the notebook loaded: raised, stopped, not run."
    )
    tests_run: TestsRun = Field("hidden", description="hidden: graded; visible: the student's practice checks.")
    warnings: list[str] = Field(description="Load warnings, skipped magics, limits hit.")
    output: str = Field(description="What the submission printed; empty unless the policy shows it.")
    output_withheld: bool = Field(description="The submission printed something that is not shown.")
    wall_s: float = Field(description="Wall seconds for the whole submission.")
    cpu_s: float | None = Field(description="CPU seconds of the sandbox.")
    peak_rss_mb: float | None = Field(description="Peak memory of the sandbox in MiB.")
    sha256: str | None = Field(description="SHA-256 of the submitted file.")
    grader_version: str = Field(description="Version of the grader.")
    automatic_score: float | None = Field(
        None, description="The grader's score before a TA's adjustments and the late penalty; null: none of these."
    )
    grade_changes: list[StudentGradeChange] = Field(
        default_factory=list, description="Adjustments and the late penalty, in the order they were applied."
    )


# The one wording of a missing function (issue 13): the worker's answer for a call, and the `require`
# helper of the hidden tests, both say this; the view adds where the notebook defines the name.
_NOT_DEFINED = re.compile(
    r"the submission does not define (?P<names>[A-Za-z_]\w{0,59}(?:, [A-Za-z_]\w{0,59}){0,20}): "
    r"check that the cell defining it runs(?: without an error)?"
)
_WHY_NOT_RUN = {
    "error": "which raised an error", "timeout": "which was stopped at its time limit", "not_run": "which did not run",
    "memory": "which ran out of memory", "crashed": "which stopped the worker",
}  # fmt: skip


def _where_defined(message: str, report: SubmissionReport) -> str:
    """A missing function's message, with the cell that defines it and why that cell did not."""
    found = _NOT_DEFINED.fullmatch(message)
    if found is None or not any(cell.defines for cell in report.cells):  # reports before issue 13 have none
        return message
    notes = []
    for name in found.group("names").split(", "):
        defining = [cell for cell in report.cells if name in cell.defines]
        if not defining:
            notes.append(f"no cell of the notebook defines {name}")
        elif all(not cell.ok for cell in defining):
            notes.append(f"{name} is defined in {defining[-1].label}, {_WHY_NOT_RUN[defining[-1].status]}")
    return message + (f" ({'; '.join(notes)})" if notes else "")


_NOT_IMPLEMENTED = re.compile(
    r"NotImplementedError:\s*\(in cell (?P<cell>\d{1,5}), line (?P<line>\d{1,6}), in (?P<func>[A-Za-z_]\w{0,59})\)"
)


def _not_implemented(message: str, labels: Labels) -> str | None:
    """A template's ``raise NotImplementedError`` in words: the function is not written yet."""
    found = _NOT_IMPLEMENTED.fullmatch(message.removeprefix(LOAD_PREFIX))
    if found is None:
        return None
    where = labels.get(int(found.group("cell")), f"cell {found.group('cell')}")
    return (
        f"not implemented yet: {found.group('func')} raises NotImplementedError ({where}, line {found.group('line')})"
    )


def _test_view(test: TestResult, own_text: bool, report: SubmissionReport | None = None) -> StudentTest:
    labels = cell_labels(report) if report is not None else {}
    if not test.visible:
        message = HIDDEN_DETAILS
    elif test.status == "error" and (plain := _not_implemented(test.message, labels)) is not None:
        message = plain
    else:
        message = test.message if own_text else without_submission_text(test.status, test.message, labels)
        message = relabel(message, labels)
        if report is not None:
            message = _where_defined(message, report)
    return StudentTest(
        name=sanitize_text(test.name, keep_newlines=False), status=test.status, score=test.score,
        max_score=test.max_score, message=student_text(message), details_hidden=not test.visible,
        duration_s=test.duration_s,
    )  # fmt: skip


def _cell_view(cell: CellOutcome, own_errors: bool, labels: Labels) -> StudentCell:
    """A cell that did not run to its end; an error's own text only where the student may read it."""
    # Not an error: the grader's words (what the worker adds is checked in the session).
    if cell.status != "error" or own_errors:
        message = relabel(cell.message, labels, cell.index)
    else:
        message = describe_raised(cell.message, WITHHELD_AT_LOAD, labels, cell.index)
    label = sanitize_text(cell.label, keep_newlines=False) if cell.position is not None else ""
    return StudentCell(index=cell.index, message=student_text(message), label=label, status=cell.status)


def _submission_message(report: SubmissionReport) -> str:
    if report.status == "grader_error":
        return GRADER_PROBLEM  # its text names hidden-test files and can hold hidden-test values
    return student_text(relabel(report.message, cell_labels(report)))


def student_view(report: SubmissionReport, policy: FeedbackPolicy, tests: TestsRun = "hidden") -> StudentReport:
    """What the student may see of ``report`` under the assignment's feedback ``policy``.

    ``tests`` says which tests the report ran: "visible" (the student's own check, whose inputs
    the student has) shows the submission's own errors and output; "hidden" (grading, the
    default for every export) withholds them unless the policy opts in.
    """
    own_errors = tests == "visible" or policy.show_student_errors
    own_output = tests == "visible" or policy.show_output
    labels = cell_labels(report)
    cells = [_cell_view(cell, own_errors, labels) for cell in report.cells if not cell.ok]
    return StudentReport(
        assignment=sanitize_text(report.assignment, keep_newlines=False),
        submission_id=sanitize_text(report.submission.id, keep_newlines=False),
        status=report.status,
        message=_submission_message(report),
        score=report.score,
        max_score=report.max_score,
        tests=[_test_view(test, own_errors, report) for test in report.tests],
        failing_cells=cells,
        tests_run=tests,
        warnings=[student_text(relabel(w, labels), 500) for w in report.warnings],
        output=student_text(report.output, 20_000) if own_output else "",
        output_withheld=bool(report.output) and not own_output,
        wall_s=report.resources.wall_s,
        cpu_s=report.resources.cpu_s,
        peak_rss_mb=report.resources.peak_rss_mb,
        sha256=report.submission.sha256,
        grader_version=report.grader_version,
    )


def with_grade_changes(
    view: StudentReport, final_score: float | None, test_scores: dict[str, float], changes: list[StudentGradeChange]
) -> StudentReport:
    """``view`` with the TA's adjustments and the late penalty applied: score and test points are the final ones.

    Reasons are TA text, still made safe like any other text a student reads.
    """
    if not changes:
        return view
    safe = [change.model_copy(update={"reason": student_text(change.reason, 500)}) for change in changes]
    tests = [t.model_copy(update={"score": test_scores.get(t.name, t.score)}) for t in view.tests]
    return view.model_copy(
        update={"automatic_score": view.score, "score": final_score, "tests": tests, "grade_changes": safe}
    )
