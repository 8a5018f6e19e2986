"""What students see (DESIGN.md): one student view, and every student-facing writer holds to it.

The contract test feeds a report whose messages carry a hidden input, escape sequences, paths
of the hidden tests and of the grader, and a visible=False test's message, to every writer a
student can read (each export but the class summary, and the check command's console), and
asserts that none of it arrives. A new export format fails `test_every_export_format_is_classified`
until it is listed here as student-facing or TA-facing.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import grader
from grader.batch.console import print_report, print_student_view
from grader.batch.exports import ALL_FORMATS, FORMATS, write_exports
from grader.batch.exports.gradescope import gradescope_results
from grader.batch.gradebook import Gradebook
from grader.batch.intake import collect
from grader.batch.runner import run_batch
from grader.errors import SpecError
from grader.grading.report import CellOutcome, Resources, SubmissionInfo, SubmissionReport
from grader.grading.report import TestResult as ReportedTest
from grader.grading.spec import FeedbackPolicy, load_spec
from grader.grading.student_view import (
    GRADER_PROBLEM,
    HIDDEN_DETAILS,
    INVALID_VALUE,
    csv_cell,
    describe_raised,
    sanitize_text,
    scrub_paths,
    student_view,
    without_submission_text,
)
from grader.grading.testing import _IN_HIDDEN_TEST, assert_close
from grader.settings import GradeSettings

HIDDEN_VALUE = "31337.25"  # what a hidden test passed in, or expects
HIDDEN_TEST_MESSAGE = "the hidden labels average 0.4375"  # a visible=False test's message
GRADER_DIR = str(Path(grader.__file__).resolve().parent)
HIDDEN_FILE = "/srv/course/autograde_tests/toy/test_toy.py"
LIBRARY_FILE = f"{sys.prefix}/lib/python3.11/site-packages/numpy/core/fromnumeric.py"
ESCAPES = "\x1b]0;owned\x07\x1b[6n\x9b2J\r\u202e"
RAW_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORBIDDEN = [HIDDEN_VALUE, HIDDEN_TEST_MESSAGE, "autograde_tests", GRADER_DIR, "site-packages", "/opt/grader"]
# html: the feedback pages; moodle and canvas: their feedback comments reach students through the LMS.
STUDENT_FACING_FORMATS = {"csv", "junit", "html", "gradescope", "moodle", "canvas"}
TA_FACING_FORMATS = {"json"}  # grades.json: the TA's, like summary.html
TA_FACING_FILES = {"summary.html", "grades.json"}


def _test(name: str, status: str, message: str, visible: bool = True, score: float = 0.0) -> ReportedTest:
    return ReportedTest(
        id=f"test_toy.py::{name}", name=name, status=status, score=score, max_score=2.0,
        message=message, duration_s=0.1, visible=visible,
    )  # fmt: skip


MESSAGES = {
    "graded": "",
    "grader_error": f"test_toy.py::test_x: the test itself raised: ValueError: {HIDDEN_VALUE} in {HIDDEN_FILE}",
    "invalid_submission": f"alice{ESCAPES}.ipynb is not a valid notebook (read by {GRADER_DIR}/grading/submission.py)",
}


CELL_ERROR = f"NameError: {HIDDEN_VALUE}{ESCAPES} (in cell 2, line 1, in <module>)"


def hostile_report(status: str = "graded", student_id: str = "alice") -> SubmissionReport:
    """Everything a submission or a grader failure could put in a report that a student must not read."""
    tests = [
        _test("test_raises", "error", f"ValueError: array([{HIDDEN_VALUE}]){ESCAPES} (in cell 1, line 3, in echo)"),
        _test("test_paths", "failed", f"cannot read {HIDDEN_FILE} via {GRADER_DIR}/grading/testing.py, {LIBRARY_FILE}"),
        _test("test_secret", "failed", f"expected {HIDDEN_VALUE}: {HIDDEN_TEST_MESSAGE}", visible=False),
        _test("test_memory", "memory", f"ran out of memory (MemoryError: {HIDDEN_VALUE}); the limit is 512 MB"),
        _test("test_invalid", "invalid", f"frame holds an unknown tag '{HIDDEN_VALUE}'"),
        _test("test_escapes\x1b[31m", "failed", f"shape is wrong{ESCAPES}\nsecond line"),
        _test("test_probe", "error", f"KeyError: '{HIDDEN_VALUE}' (in probes, line 12, in run_forward)"),
        _test("test_passes", "passed", "", score=2.0),
    ]
    return SubmissionReport(
        grader_version="0.1.0", assignment="toy",
        submission=SubmissionInfo(id=student_id, path=f"/srv/in/{student_id}.py", sha256="ab" * 32),
        status=status,
        message=MESSAGES[status],
        score=None if status == "grader_error" else 2.0, max_score=16.0, tests=tests,
        resources=Resources(wall_s=1.5, cpu_s=1.0, peak_rss_mb=50.0),
        warnings=[f"cell 0: magic %{ESCAPES}cd was skipped (from {GRADER_DIR}/grading/submission.py)"],
        cells=[CellOutcome(index=2, ok=False, message=CELL_ERROR), CellOutcome(index=3, ok=True)],
        output=f"got {HIDDEN_VALUE}{ESCAPES}\n", seed=0, sandbox="bwrap",
    )  # fmt: skip


def assert_student_safe(text: str, where: str) -> None:
    for forbidden in FORBIDDEN:
        assert forbidden not in text, f"{where} shows {forbidden!r}"
    raw = RAW_CONTROLS.search(text)
    assert raw is None, f"{where} holds the raw control character {raw.group()!r}"


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in _strings(key) + _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def decoded_texts(path: Path) -> list[str]:
    """The file as written, and every string in it as a reader decodes it (JSON, XML, CSV)."""
    raw = path.read_text(encoding="utf-8")
    texts = [raw.replace("\r\n", "\n")] if path.suffix == ".csv" else [raw]
    if path.suffix == ".json":
        texts += _strings(json.loads(raw))
    elif path.suffix == ".xml":
        for element in ET.fromstring(raw.encode()).iter():
            texts += [element.text or "", *element.attrib.values()]
    elif path.suffix == ".csv":
        texts += [cell for row in csv.reader(io.StringIO(raw)) for cell in row]
    return texts


def exported_files(tmp_path: Path, reports: list[SubmissionReport], policy: FeedbackPolicy | None = None) -> Path:
    out = tmp_path / "out"
    book = Gradebook.open(out, "toy")
    try:
        for report in reports:
            book.record(report, f"Student {report.submission.id}", "fingerprint")
    finally:
        book.close()
    write_exports(out, ALL_FORMATS, policy)
    return out / "export"


def student_console(view_of: SubmissionReport) -> str:
    buffer = io.StringIO()
    print_student_view(Console(file=buffer, width=300, color_system=None), student_view(view_of, FeedbackPolicy()))
    return buffer.getvalue()


# ------------------------------------------------------------------ the contract, writer by writer


def test_every_export_format_is_classified() -> None:
    assert set(ALL_FORMATS) == STUDENT_FACING_FORMATS | TA_FACING_FORMATS, (
        "say whether the new export is student-facing, and test it here"
    )


@pytest.mark.parametrize("status", ["graded", "grader_error", "invalid_submission"])
def test_no_student_facing_export_shows_what_it_must_not(tmp_path: Path, status: str) -> None:
    # A Moodle participant number as well: the worksheet has rows only for those.
    export = exported_files(tmp_path, [hostile_report(status), hostile_report(status, "12345")])
    files = [p for p in export.rglob("*") if p.is_file() and p.name not in TA_FACING_FILES]
    assert {p.relative_to(export).parts[0] for p in files} == {
        "gradebook.csv", "junit.xml", "feedback", "gradescope", "moodle-grading-worksheet.csv", "canvas-gradebook.csv",
    }  # fmt: skip
    for path in files:
        for text in decoded_texts(path):
            assert_student_safe(text, str(path.relative_to(export)))


@pytest.mark.parametrize("status", ["graded", "grader_error", "invalid_submission"])
def test_the_check_console_shows_nothing_it_must_not(status: str) -> None:
    assert_student_safe(student_console(hostile_report(status)), "the check command's console")


def test_ta_facing_outputs_keep_the_detail_without_raw_controls(tmp_path: Path) -> None:
    report = hostile_report("grader_error")
    export = exported_files(tmp_path, [report])
    summary = (export / "summary.html").read_text()
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=400, color_system=None), report)
    for text, where in ((summary, "summary.html"), (buffer.getvalue(), "the TA console")):
        assert HIDDEN_VALUE in text, f"{where} lost the detail a TA needs"
        assert RAW_CONTROLS.search(text) is None, f"{where} holds raw control characters"
    assert HIDDEN_VALUE in report.model_dump_json()  # the JSON report keeps everything


def test_ta_console_shows_visible_false_messages_marked(tmp_path: Path) -> None:
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=400, color_system=None), hostile_report())
    assert f"(hidden from students) expected {HIDDEN_VALUE}" in buffer.getvalue()
    assert "\\x1b]0;owned\\x07\\x1b[6n\\x9b2J\\r\\u202e" in buffer.getvalue()


def test_rich_markup_in_a_message_is_printed_as_text() -> None:
    report = hostile_report().model_copy(update={"message": "[link=http://evil]click[/link] [bold]x"})
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=200, color_system=None), report)
    assert "[link=http://evil]click[/link] [bold]x" in buffer.getvalue()


# ------------------------------------------------------------------ what the view says instead


def test_student_view_messages_exactly() -> None:
    view = student_view(hostile_report(), FeedbackPolicy())
    messages = {t.name: t.message for t in view.tests}
    withheld = "the message is not shown, since it can hold the hidden test's inputs"
    assert messages["test_raises"] == f"ValueError was raised in cell 1, line 3, in echo; {withheld}"
    assert messages["test_paths"] == "cannot read <hidden tests> via <grader>, <python library>"
    assert messages["test_secret"] == HIDDEN_DETAILS == "details of this test are hidden"
    assert messages["test_memory"] == "ran out of memory; the limit is 512 MB"
    assert messages["test_invalid"] == INVALID_VALUE
    assert messages["test_escapes\\x1b[31m"] == "shape is wrong\\x1b]0;owned\\x07\\x1b[6n\\x9b2J\\r\\u202e\nsecond line"
    assert messages["test_probe"] == f"KeyError was raised in the hidden test's helper code (probes.py); {withheld}"
    assert [c.message for c in view.failing_cells] == [
        "NameError was raised in cell 2, line 1, in <module>; "
        "the message is not shown in graded feedback; run the notebook yourself to see it"
    ]
    assert view.output == "" and view.output_withheld
    assert view.warnings == ["cell 0: magic %\\x1b]0;owned\\x07\\x1b[6n\\x9b2J\\r\\u202ecd was skipped (from <grader>)"]


def test_grader_error_is_one_sentence_for_the_student() -> None:
    view = student_view(hostile_report("grader_error"), FeedbackPolicy())
    assert (
        view.message == GRADER_PROBLEM == "not graded: a problem in the grader, not in your code; your TA will rerun it"
    )
    assert view.score is None


def test_assignment_opts_in_to_the_students_own_errors_and_output() -> None:
    view = student_view(hostile_report(), FeedbackPolicy(show_student_errors=True, show_output=True))
    messages = {t.name: t.message for t in view.tests}
    assert messages["test_raises"].startswith(f"ValueError: array([{HIDDEN_VALUE}])\\x1b]0;owned")
    assert messages["test_secret"] == HIDDEN_DETAILS  # visible=False stays hidden whatever the policy
    assert view.output.startswith(f"got {HIDDEN_VALUE}\\x1b") and not view.output_withheld
    assert view.failing_cells[0].message.startswith(f"NameError: {HIDDEN_VALUE}")


def test_the_students_check_shows_their_own_errors() -> None:
    view = student_view(hostile_report(), FeedbackPolicy(), tests="visible")
    assert {t.name: t.message for t in view.tests}["test_raises"].startswith("ValueError: array([")
    assert view.output  # prints during visible tests are the student's own


def test_gradescope_keeps_visible_false_tests_scored_but_silent() -> None:
    results = gradescope_results(student_view(hostile_report(), FeedbackPolicy()))
    secret = next(t for t in results["tests"] if t["name"] == "test_secret")
    assert (secret["visibility"], secret["output"]) == ("after_published", f"[failed] {HIDDEN_DETAILS}")
    assert results["stdout_visibility"] == "hidden"
    assert {t["visibility"] for t in results["tests"] if t["name"] != "test_secret"} == {"visible"}


def test_gradescope_grader_error_hides_the_score() -> None:
    results = gradescope_results(student_view(hostile_report("grader_error"), FeedbackPolicy()))
    assert results["visibility"] == "hidden"
    assert (
        results["output"] == "Not graded because of a problem in the grader, not in your code; your TA will rerun it."
    )


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("ValueError: x (in cell 3, line 5, in forward)", "ValueError was raised in cell 3, line 5, in forward; "),
        ("ValueError: no location", "ValueError was raised; "),
        ("X31337: a class named after a hidden number", "an exception was raised; "),
        ("the notebook could not be loaded: x", "an exception was raised; "),
        ("numpy.linalg.LinAlgError: Singular matrix", "numpy.linalg.LinAlgError was raised; "),
    ],
)
def test_describe_raised_shows_type_and_line_only(message: str, shown: str) -> None:
    assert describe_raised(message).startswith(shown)


def test_a_load_failure_keeps_its_prefix() -> None:
    message = "the notebook could not be loaded: RuntimeError: 31337 (in cell 0, line 2, in <module>)"
    assert without_submission_text("error", message) == (
        "the notebook could not be loaded: RuntimeError was raised in cell 0, line 2, in <module>; "
        "the message is not shown in graded feedback; run the notebook yourself to see it"
    )


@pytest.mark.parametrize(
    ("status", "message", "shown"),
    [
        ("memory", "ran out of memory: the sandbox's limit of 512 MB was reached", None),
        ("memory", "ran out of GPU memory (CUDA out of memory. 31337); the GPU memory limit is 2048 MB",
         "ran out of GPU memory; the GPU memory limit is 2048 MB"),
        ("memory", "ran out of memory (x); the limit is 512 MB ... [9 more characters cut]", "ran out of memory"),
        ("invalid", "dict keys must all be str", None),
        ("invalid", "a value of type generator cannot be returned; return plain data (numbers, strings, lists, "
         "tuples, dicts with str keys, numpy arrays or tensors)", None),
        ("invalid", "a value of type X31337 cannot be returned; return plain data", INVALID_VALUE),
        ("timeout", "took longer than the time limit per call of 5 s and was stopped", None),
        ("crashed", "the worker was killed by signal SIGSEGV", None),
    ],
)  # fmt: skip
def test_trusted_fault_messages_stay_and_untrusted_parts_go(status: str, message: str, shown: str | None) -> None:
    assert without_submission_text(status, message) == (message if shown is None else shown)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the text helpers


def test_sanitize_text_makes_every_control_visible() -> None:
    assert sanitize_text("a\x1b]0;t\x07b\x1b[6n\x9b\x7f\x00\r\u202e\u2066\ud800\ufeff") == (
        "a\\x1b]0;t\\x07b\\x1b[6n\\x9b\\x7f\\x00\\r\\u202e\\u2066\\ud800\\ufeff"
    )
    assert sanitize_text("line\n\tindented") == "line\n\tindented"
    assert sanitize_text("line\n\tindented", keep_newlines=False) == "line\\n\\tindented"
    assert sanitize_text("ünïcödé ✓ 中文") == "ünïcödé ✓ 中文"


@pytest.mark.parametrize(
    ("cell", "written"),
    [("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+1", "'+1"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("\r=1", "\\r=1"), ("alice", "alice"), ("10", "10"), ("", "")],
)  # fmt: skip
def test_csv_cells_never_start_a_formula(cell: str, written: str) -> None:
    assert csv_cell(cell) == written


def test_scrub_paths_replaces_private_paths_by_labels() -> None:
    text = f'File "{HIDDEN_FILE}", line 3; {GRADER_DIR}/inside/worker.py; /opt/grader/inside/rpc.py; {LIBRARY_FILE}:12'
    assert scrub_paths(text) == 'File "<hidden tests>", line 3; <grader>; <grader>; <python library>:12'
    assert scrub_paths("/home/alice/my_notebook.ipynb line 3/4") == "/home/alice/my_notebook.ipynb line 3/4"


# ------------------------------------------------------------------ the [feedback] table


def test_feedback_table_is_read_from_the_spec(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    spec = folder / "assignment.toml"
    spec.write_text('title = "T"\nnotebook = "t.ipynb"\n\n[feedback]\nshow_student_errors = true\n')
    assert load_spec(spec).feedback == FeedbackPolicy(show_student_errors=True, show_output=False)
    spec.write_text('title = "T"\nnotebook = "t.ipynb"\n')
    assert load_spec(spec).feedback == FeedbackPolicy(show_student_errors=False, show_output=False)
    spec.write_text('title = "T"\nnotebook = "t.ipynb"\n\n[feedback]\nshow_prints = true\n')
    with pytest.raises(SpecError, match="feedback.show_prints: unknown field"):
        load_spec(spec)


# ------------------------------------------------------------------ assert_close knows hidden from visible


def test_assert_close_gives_relative_error_only_in_hidden_tests() -> None:
    expected = np.array([31337.25, 1.0])
    with pytest.raises(AssertionError) as hidden:
        assert_close(np.array([0.0, 1.0]), expected, "out")  # outside a run: hidden, the safe default
    assert (
        str(hidden.value)
        == "out: 1 of 2 entries are wrong (largest relative error 1e+00; tolerance rtol=1e-06, atol=1e-08)"
    )
    token = _IN_HIDDEN_TEST.set(False)
    try:
        with pytest.raises(AssertionError) as visible:
            assert_close(np.array([0.0, 1.0]), expected, "out")
    finally:
        _IN_HIDDEN_TEST.reset(token)
    assert (
        str(visible.value)
        == "out: 1 of 2 entries are wrong (largest absolute error 3.13e+04; tolerance rtol=1e-06, atol=1e-08)"
    )


# ------------------------------------------------------------------ the real sandbox, end to end

HIDDEN_TESTS = f"""
import numpy as np
from grader.testing import points, assert_close

SECRET = np.array([{HIDDEN_VALUE}, -2718.5])

@points(2)
def test_echo(submission):
    submission.echo(SECRET)

@points(2)
def test_double(submission):
    assert_close(submission.double(SECRET), SECRET * 2, "double(x)")

@points(1, visible=False)
def test_secret(submission):
    assert submission.double(SECRET) is None, "{HIDDEN_TEST_MESSAGE}"
"""

LEAKS = """
def echo(x):
    print("the hidden input is", repr(x))
    raise ValueError(repr(x) + "\\x1b]0;owned\\x07\\x1b[6n")

def double(x):
    return x * 3
"""


def test_a_submission_raising_with_hidden_inputs_leaks_nothing(make_course, tmp_path, sandbox_mode) -> None:
    course = make_course(textwrap.dedent(HIDDEN_TESTS))
    from grader.grading.spec import load_assignment

    assignment = load_assignment(course / "assignments" / "toy")
    submission = tmp_path / "leaky.py"
    submission.write_text(LEAKS)
    intake = collect([submission], "toy.ipynb", tmp_path / "x")
    out = tmp_path / "out"
    summary = run_batch(assignment, intake, out, GradeSettings(sandbox=sandbox_mode), workers=1)
    report = summary.reports[0]
    assert report.status == "graded", report.message
    by_name = {t.name: t for t in report.tests}
    assert by_name["test_echo"].status == "error" and "31337.25" in by_name["test_echo"].message  # the TA's detail
    assert by_name["test_double"].message == (
        "double(x): 2 of 2 entries are wrong (largest relative error 2e-01; tolerance rtol=1e-06, atol=1e-08)"
    )
    assert "31337" in report.output
    write_exports(out, FORMATS, assignment.spec.feedback)
    export = out / "export"
    for path in (p for p in export.rglob("*") if p.is_file() and p.name not in TA_FACING_FILES):
        for text in decoded_texts(path):
            assert_student_safe(text, str(path.relative_to(export)))
            assert "31337" not in text and "2718" not in text, f"{path.name} shows a hidden input"
    page = (export / "feedback" / "leaky.html").read_text()
    assert "ValueError was raised in cell 0, line 4, in echo" in page
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=300, color_system=None), report)
    assert RAW_CONTROLS.search(buffer.getvalue()) is None, "an escape sequence reached the TA's console raw"
    assert "\\x1b]0;owned" in buffer.getvalue()
