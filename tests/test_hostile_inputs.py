"""Every byte from outside is data (issue 11): hostile names and contents stop no batch, and each
ends in its documented status, never grader_error. Graded for real in the sandbox; every test is
bounded (tiny submissions, a 5 s call limit, a 60 s submission limit, a thread timeout on the batch)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import zipfile
from pathlib import Path

import pytest

from grader.batch.exports import write_exports
from grader.batch.intake import collect
from grader.batch.runner import BatchSummary, run_batch
from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

HIDDEN = """
import numpy as np
from grader.testing import points, assert_close

@points(5)
def test_double(submission):
    assert_close(submission.double(np.arange(3.0)), np.arange(3.0) * 2, "double(x)")

@points(5)
def test_name(submission):
    name = submission.name()
    assert name == "ok", f"name() returned {name}"  # the student's own string, as the report will hold it
"""

CORRECT = 'def double(x):\n    return x * 2\n\ndef name():\n    return "ok"\n'
# A string with a lone surrogate is a valid str; JSON carries it; UTF-8, and so the report, cannot.
SURROGATES = 'def double(x):\n    raise ValueError("bad \\ud800")\n\ndef name():\n    return "\\udcff"\n'
DEEP_SOURCE = CORRECT + "x = " + "+".join(["1"] * 100_000) + "\n"  # past the parser's and the compiler's depth
LONG_MEMBER = "Long_888_assignsubmission_file_/" + "n" * 300 + ".py"  # ENAMETOOLONG, were it extracted
BATCH_TIMEOUT_S = 240


def notebook(extra: str) -> str:
    cell = {"cell_type": "code", "metadata": {}, "source": CORRECT, "outputs": [], "execution_count": None}
    body = json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell]})
    return body[:-1] + extra + "}"


def bounded_batch(*args: object, **kwargs: object) -> BatchSummary:
    """run_batch in a thread with a deadline: a hang fails this test instead of the whole run."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run_batch, *args, **kwargs).result(timeout=BATCH_TIMEOUT_S)


@pytest.fixture
def toy(make_course):
    return load_assignment(make_course(HIDDEN) / "assignments" / "toy")


def write_inputs(folder: Path) -> list[Path]:
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "good.py").write_text(CORRECT)
    with open(os.fsencode(inbox) + b"/M\xfcller.py", "w") as stream:  # Latin-1 bytes: not UTF-8
        stream.write(CORRECT)
    (inbox / "surrogates.py").write_text(SURROGATES)
    (inbox / "deep_source.py").write_text(DEEP_SOURCE)
    (inbox / "deep_json.ipynb").write_text(notebook(', "x": ' + "[" * 100_000 + "]" * 100_000))
    (inbox / "huge_int.ipynb").write_text(notebook(', "x": ' + "9" * 5000))
    dots = folder / "...py"  # stem "..": given by name, as a shell glob would
    dots.write_text(CORRECT)
    archive = folder / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Roe Rick_777_assignsubmission_file_/toy.py", CORRECT)
        zf.writestr(LONG_MEMBER, CORRECT)
        zf.writestr("Case/toy.py", CORRECT)
        zf.writestr("case/toy.py", CORRECT)
    return [inbox, dots, archive]


def test_a_batch_of_hostile_names_and_contents_grades_everyone_else(toy, tmp_path, sandbox_mode):
    intake = collect(write_inputs(tmp_path), "toy.ipynb", tmp_path / "out" / "extracted")
    assert intake.problems == [
        f"export.zip: member {LONG_MEMBER[:100]!r}... (335 characters) has a name part of 303 bytes, over the 255 "
        "byte limit of a file name; nothing graded from 'Long_888_assignsubmission_file_'",
        "export.zip: member 'case/toy.py' differs from 'Case' only in upper/lower case; nothing graded from 'case'",
        "export.zip: member 'Case' differs from 'case' only in upper/lower case; nothing graded from 'Case'",
    ]
    summary = bounded_batch(toy, intake, tmp_path / "out", GradeSettings(sandbox=sandbox_mode), workers=2)
    assert summary.grader_errors == []
    reports = {r.submission.id: r for r in summary.reports}
    assert {sid: (r.status, r.score) for sid, r in reports.items()} == {
        "good": ("graded", 10),
        "M_ller-4268b0e6d9": ("graded", 10),  # the name's bytes do not stop anyone
        "student-5ec1f7e700": ("graded", 10),  # the id '..' would have been one folder up
        "777": ("graded", 10),
        "surrogates": ("graded", 0),
        "deep_source": ("graded", 0),
        "deep_json": ("invalid_submission", 0),
        "huge_int": ("invalid_submission", 0),
    }
    assert reports["M_ller-4268b0e6d9"].submission.path == f"{tmp_path}/inbox/M\\xfcller.py"
    assert reports["deep_json"].message == (
        "deep_json.ipynb is not a valid notebook: its JSON is nested more than 100 levels deep; "
        "open it in Jupyter, save it, and submit again"
    )
    assert reports["huge_int"].message == (
        "huge_int.ipynb is not a valid notebook: it holds a number of more than 4300 digits; "
        "open it in Jupyter, save it, and submit again"
    )
    surrogates = {t.name: (t.status, t.message) for t in reports["surrogates"].tests}
    assert surrogates["test_name"] == ("failed", "name() returned \ufffd")
    assert surrogates["test_double"][0] == "error" and "ValueError: bad \ufffd" in surrogates["test_double"][1]
    blocked = (
        "every test scores 0: the notebook uses what this assignment forbids: code nested too deeply to be checked "
        "for forbidden names (split the long expression) (cell 0)"
    )
    assert [(t.status, t.message) for t in reports["deep_source"].tests] == [("failed", blocked)] * 2
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{sid}.json" for sid in reports)
    write_exports(out, ("gradescope",))
    written = sorted(str(p.relative_to(out / "export")) for p in (out / "export").rglob("*") if p.is_file())
    assert written == sorted(f"gradescope/{sid}/results.json" for sid in reports)


def test_a_second_run_finds_every_hostile_name_again(toy, tmp_path, sandbox_mode):
    """The gradebook is keyed by id: a resumed batch must map the same bytes to the same ids."""
    inputs = write_inputs(tmp_path)
    settings = GradeSettings(sandbox=sandbox_mode)
    first = bounded_batch(toy, collect(inputs, "toy.ipynb", tmp_path / "x"), tmp_path / "out", settings, workers=2)
    again = bounded_batch(toy, collect(inputs, "toy.ipynb", tmp_path / "x"), tmp_path / "out", settings, workers=2)
    assert (again.up_to_date, again.graded, again.invalid) == (first.total, 0, 0)


def test_deep_source_without_rules_fails_to_load_like_any_compile_error(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().split("[static]")[0])  # no forbidden names: nothing is parsed outside
    path = tmp_path / "deep_source.py"
    path.write_text(DEEP_SOURCE)
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert (report.status, report.score) == ("graded", 0)
    assert [(c.index, c.ok, c.message) for c in report.cells] == [
        (0, False, "RecursionError: maximum recursion depth exceeded during compilation")
    ]
    # The cell did not compile, so the function it defines is missing: the same failed test as for
    # any notebook whose cell raised (one vocabulary, issue 13).
    assert [t.status for t in report.tests] == ["failed", "failed"]
