"""The versioned SubmissionReport: what a grading run says about one submission."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1
MAX_MESSAGE_CHARS = 2000

TestStatus = Literal["passed", "failed", "error", "timeout", "memory", "crashed", "invalid", "skipped"]
SubmissionStatus = Literal["graded", "invalid_submission", "grader_error"]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _byte_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def valid_text(text: str, bytes_as_escapes: bool = True) -> str:
    r"""``text`` as valid Unicode: what JSON and SQLite can store (issue 11).

    Python reads a file name's undecodable bytes as lone surrogates (surrogateescape); each such
    byte is written ``\xNN``, as ``backslashreplace`` would, unless ``bytes_as_escapes`` is false
    (source code, where a backslash would mean something); every other lone surrogate becomes U+FFFD.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_byte_escape if bytes_as_escapes else "\ufffd", text)
    return text


def printable(text: str) -> str:
    r"""``text`` on one line for a TA to read: valid (see valid_text), and every character that
    ``repr`` would escape (newlines, control and text-direction characters) escaped the same way."""
    text = valid_text(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Shorten a message for a report, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 40] + f" ... [{len(text) - limit + 40} more characters cut]"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmissionInfo(_Model):
    id: str = Field(description="Submission id: the file's stem, or the student id in a batch.")
    path: str = Field(description="Path of the submitted file as given to the grader.")
    sha256: str | None = Field(description="SHA-256 of the file's bytes; null if it could not be read.")

    @field_validator("id", "path")
    @classmethod
    def _storable(cls, value: str) -> str:
        """A file name may hold bytes that are not UTF-8; the report keeps them as ``\\xNN`` (issue 11)."""
        return valid_text(value)


class TestResult(_Model):
    id: str = Field(description="pytest node id of the test, relative to the tests folder.")
    name: str = Field(description="Human name of the test (its function name).")
    status: TestStatus = Field(description="Outcome; see DESIGN.md's failure vocabulary.")
    score: float = Field(description="Points earned.")
    max_score: float = Field(description="Points available (from @points).")
    message: str = Field("", description="Why it did not pass; never echoes hidden values.")
    duration_s: float = Field(description="Wall seconds the test took, calls into the sandbox included.")
    visible: bool = Field(True, description="Whether details may be shown to the student.")
    max_call_s: float = Field(0.0, description="Wall seconds of the test's longest call into the submission.")
    test_raised: str = Field(
        "",
        description="TA only: the exception the test code raised while handling the submission's value "
        "(the test scored it as an error); many of these on one test point at a test that needs a fix.",
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Numbers the test recorded (accuracy, loss) for calibration."
    )


class Resources(_Model):
    wall_s: float = Field(description="Wall seconds for the whole submission.")
    cpu_s: float | None = Field(description="CPU seconds used by the sandbox (all its processes).")
    peak_rss_mb: float | None = Field(description="Peak memory of the sandbox in MiB.")
    gpu_s: float | None = Field(None, description="GPU seconds; null when no GPU was used.")
    gpu_peak_mb: float | None = Field(None, description="Peak GPU memory in MiB; null when no GPU.")
    output_bytes: int = Field(0, description="Bytes the submission wrote to stdout and stderr.")
    load_s: float | None = Field(None, description="Wall seconds loading the notebook took (its first load).")
    worker_starts: int = Field(0, description="Sandboxed workers started (1 + restarts after faults).")


CellStatus = Literal["ok", "error", "timeout", "memory", "crashed", "not_run"]
FIRST_LINE_CHARS = 40


def first_code_line(source: str, limit: int = FIRST_LINE_CHARS) -> str:
    """The first line of a cell that is not blank, shortened: what a student searches for (issue 13)."""
    line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def cell_label(index: int, position: int | None, execution_count: int | None, first_line: str) -> str:
    """How a cell is named wherever a student reads about it: ``code cell 4 (In [5]) "def f(x):"``.

    ``position`` counts code cells from 1, as a student counts them; ``In [5]`` is what Jupyter shows
    beside a cell of a notebook saved with execution counts; the first line is what Ctrl-F finds.
    Without a position (a report written before issue 13) the cell is ``cell <index>``, as then.
    """
    if position is None:
        return f"cell {index}"
    count = f" (In [{execution_count}])" if execution_count is not None else ""
    return f"code cell {position}{count}" + (f" {json.dumps(first_line, ensure_ascii=False)}" if first_line else "")


class CellOutcome(_Model):
    index: int = Field(description="0-based index of the cell among all cells of the notebook (markdown included).")
    ok: bool = Field(description="Whether the cell ran to its end without raising.")
    message: str = Field("", description="The error the cell raised, or why it was stopped or not run.")
    status: CellStatus = Field(
        "ok",
        description="ok | error (raised) | timeout (stopped at its time budget, cell_timeout_s) | memory | "
        "crashed (the worker died; it was restarted) | not_run (the load time limit was used up, or the "
        "submission was not run).",
    )
    position: int | None = Field(None, description="1-based position among the notebook's code cells.")
    execution_count: int | None = Field(
        None, description="The cell's In [n] in the saved notebook; null if it was saved unexecuted."
    )
    first_line: str = Field("", description="The cell's first non-blank source line, shortened.")
    defines: list[str] = Field(
        default_factory=list, description="Top-level functions and classes the cell's source defines."
    )
    duration_s: float | None = Field(None, description="Wall seconds the cell ran at load; null if it did not run.")

    @model_validator(mode="before")
    @classmethod
    def _status_of_older_reports(cls, data: Any) -> Any:
        """Reports from before ``status`` existed had only ``ok``: a cell that was not ok raised."""
        if isinstance(data, dict) and "status" not in data and data.get("ok") is False:
            return {**data, "status": "error"}
        return data

    @property
    def label(self) -> str:
        return cell_label(self.index, self.position, self.execution_count, self.first_line)


class SubmissionReport(_Model):
    schema_version: int = Field(SCHEMA_VERSION, description="Version of this report format.")
    grader_version: str = Field(description="Version of the grader that wrote the report.")
    assignment: str = Field(description="Assignment name (its folder name).")
    submission: SubmissionInfo
    status: SubmissionStatus = Field(description="graded | invalid_submission | grader_error.")
    message: str = Field("", description="One sentence on why the submission was not graded normally.")
    score: float | None = Field(description="Points earned; null for grader_error (not a zero).")
    max_score: float = Field(description="Points available.")
    tests: list[TestResult] = Field(default_factory=list)
    resources: Resources
    warnings: list[str] = Field(default_factory=list, description="Load warnings, skipped magics, limits hit.")
    cells: list[CellOutcome] = Field(default_factory=list, description="How each code cell ran at load.")
    output: str = Field("", description="What the submission printed (capped).")
    seed: int = Field(description="Seed given to random, numpy and torch in the worker.")
    sandbox: str = Field(description="Isolation used: bwrap or none.")


def read_report(path: Path) -> SubmissionReport:
    """Read a report, refusing other schema versions with a message that says which."""
    data = json.loads(path.read_text())
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        age = "newer" if isinstance(version, int) and version > SCHEMA_VERSION else "older"
        raise ValueError(
            f"{path} has report schema version {version!r}, {age} than this grader's "
            f"{SCHEMA_VERSION}; use a grader of the matching version or regrade"
        )
    return SubmissionReport.model_validate(data)


def write_report(report: SubmissionReport, path: Path) -> None:
    """Write atomically so a killed grader never leaves half a report."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    # ASCII only: a student's text may hold C1 controls or bidi overrides that a TA's terminal or
    # editor would act on when the file is viewed; JSON escapes keep them as data (issue 11).
    tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=True) + "\n")
    tmp.replace(path)


def json_schema() -> str:
    return json.dumps(SubmissionReport.model_json_schema(), indent=2) + "\n"
