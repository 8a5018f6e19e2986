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

from __future__ import annotations

import functools
import re
import sys
import sysconfig
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.grading.report import SubmissionReport, SubmissionStatus, TestResult, TestStatus, truncate
from grader.grading.spec import FeedbackPolicy
from grader.sandbox.bwrap import SANDBOX_LIB

TestsRun = Literal["hidden", "visible"]

HIDDEN_DETAILS = "details of this test are hidden"
GRADER_PROBLEM = "not graded: a problem in the grader, not in your code; your TA will rerun it"
WITHHELD = "the message is not shown, since it can hold the hidden test's inputs"
WITHHELD_AT_LOAD = "the message is not shown in graded feedback; run the notebook yourself to see it"
LOAD_PREFIX = "the notebook could not be loaded: "
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


def describe_raised(message: str, why: str = WITHHELD) -> str:
    """An exception's message reduced to its type and the line in the student's code, and ``why``."""
    raised = _RAISED.match(message)
    where = _WHERE.search(message)
    kind = raised.group("type") if raised else "an exception"
    if where is None:
        return f"{kind} was raised; {why}"
    if where.group("cell") is None:
        return f"{kind} was raised in the hidden test's helper code (probes.py); {why}"
    return f"{kind} was raised in {where.group('cell')}, line {where.group('line')}, in {where.group('func')}; {why}"


def _memory_message(message: str) -> str:
    if _MEMORY_TRUSTED.fullmatch(message):
        return message
    found = _MEMORY.fullmatch(message)
    if found is None:
        return "ran out of memory"
    return f"ran out of {found.group('gpu') or ''}memory; {found.group('limit')}"


def _invalid_message(message: str) -> str:
    return message if any(p.fullmatch(message) for p in _INVALID_TRUSTED) else INVALID_VALUE


def without_submission_text(status: TestStatus, message: str) -> str:
    """A hidden test's message without the text the submission's code chose (see the module doc)."""
    prefix = LOAD_PREFIX if message.startswith(LOAD_PREFIX) else ""
    rest = message.removeprefix(prefix)
    if status == "error":
        rest = describe_raised(rest, WITHHELD_AT_LOAD if prefix else WITHHELD)
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
    index: int = Field(description="0-based index of the code cell that raised while the notebook loaded.")
    message: str = Field(description="What the student may read of the error.")


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
    failing_cells: list[StudentCell] = Field(description="Cells that raised while the notebook loaded.")
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


def _test_view(test: TestResult, own_text: bool) -> StudentTest:
    if not test.visible:
        message = HIDDEN_DETAILS
    else:
        message = test.message if own_text else without_submission_text(test.status, test.message)
    return StudentTest(
        name=sanitize_text(test.name, keep_newlines=False), status=test.status, score=test.score,
        max_score=test.max_score, message=student_text(message), details_hidden=not test.visible,
        duration_s=test.duration_s,
    )  # fmt: skip


def _load_error(message: str) -> str:
    return describe_raised(message, WITHHELD_AT_LOAD)


def _submission_message(report: SubmissionReport) -> str:
    if report.status == "grader_error":
        return GRADER_PROBLEM  # its text names hidden-test files and can hold hidden-test values
    return student_text(report.message)


def student_view(report: SubmissionReport, policy: FeedbackPolicy, tests: TestsRun = "hidden") -> StudentReport:
    """What the student may see of ``report`` under the assignment's feedback ``policy``.

    ``tests`` says which tests the report ran: "visible" (the student's own check, whose inputs
    the student has) shows the submission's own errors and output; "hidden" (grading, the
    default for every export) withholds them unless the policy opts in.
    """
    own_errors = tests == "visible" or policy.show_student_errors
    own_output = tests == "visible" or policy.show_output
    cells = [
        StudentCell(index=cell.index, message=student_text(cell.message if own_errors else _load_error(cell.message)))
        for cell in report.cells
        if not cell.ok
    ]
    return StudentReport(
        assignment=sanitize_text(report.assignment, keep_newlines=False),
        submission_id=sanitize_text(report.submission.id, keep_newlines=False),
        status=report.status,
        message=_submission_message(report),
        score=report.score,
        max_score=report.max_score,
        tests=[_test_view(test, own_errors) for test in report.tests],
        failing_cells=cells,
        warnings=[student_text(w, 500) for w in report.warnings],
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
