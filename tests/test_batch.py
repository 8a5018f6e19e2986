"""Batch grading: parallel equals serial, resume after kill -9, fingerprints, locking, exports."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grader.batch.exports import write_exports
from grader.batch.gradebook import Gradebook
from grader.batch.intake import collect
from grader.batch.runner import run_batch
from grader.errors import UsageError
from grader.grading.pipeline import grade
from grader.grading.spec import FeedbackPolicy, load_assignment
from grader.settings import GradeSettings

HIDDEN = """
import numpy as np
from grader.testing import points, assert_close

@points(5)
def test_double(submission):
    assert_close(submission.double(np.arange(3.0)), np.arange(3.0) * 2, "double(x)")

@points(5, visible=False)
def test_triple(submission):
    assert_close(submission.triple(2.0), 6.0, "triple(2)")
"""

CORRECT = "def double(x):\n    return x * 2\n\ndef triple(x):\n    return x * 3\n"
WRONG = "def double(x):\n    return x + 2\n\ndef triple(x):\n    return x * 3\n"
HOSTILE = {
    "loops": "def double(x):\n    while True:\n        pass\n\ndef triple(x):\n    return x * 3\n",
    "exits": "import os\ndef double(x):\n    os._exit(3)\n\ndef triple(x):\n    return x * 3\n",
    "liar": "class L:\n    def __eq__(s, o):\n        return True\ndef double(x):\n    return L()\ndef triple(x):\n"
    "    return L()\n",
}


def make_submissions(folder: Path) -> Path:
    """31 files: correct, wrong, hostile, unreadable; inbox plus late/ hold two duplicate ids."""
    inbox = folder / "inbox"
    inbox.mkdir()
    late = folder / "late"
    late.mkdir()
    for i in range(12):
        (inbox / f"good{i:02d}.py").write_text(CORRECT)
    for i in range(10):
        (inbox / f"wrong{i:02d}.py").write_text(WRONG)
    for name, source in HOSTILE.items():
        (inbox / f"{name}.py").write_text(source)
    (inbox / "garbled.ipynb").write_text("{not a notebook")
    (inbox / "empty.ipynb").write_text("")
    (inbox / "twice.py").write_text(CORRECT)
    (late / "twice.py").write_text(WRONG)
    (inbox / "again.py").write_text(CORRECT)
    (late / "again.ipynb").write_text("{}")
    return inbox


def comparable(report) -> dict:
    data = report.model_dump()
    data.pop("resources")
    data["submission"].pop("path")
    for test in data["tests"]:
        test.pop("duration_s")
        test.pop("max_call_s")  # a measured time, like duration_s
    for cell in data["cells"]:
        cell.pop("duration_s", None)
    return data


@pytest.fixture
def toy(make_course):
    course = make_course(HIDDEN, call_timeout_s=1.0)
    return load_assignment(course / "assignments" / "toy")


@pytest.mark.slow
def test_parallel_batch_equals_grading_one_by_one(toy, tmp_path, sandbox_mode):
    inbox = make_submissions(tmp_path)
    intake = collect([inbox, tmp_path / "late"], "toy.ipynb", tmp_path / "x")
    assert len(intake.candidates) == 27
    assert sorted(p.split("'")[1] for p in intake.problems) == ["again", "twice"]
    settings = GradeSettings(sandbox=sandbox_mode)
    summary = run_batch(toy, intake, tmp_path / "out", settings, workers=2)
    assert summary.graded == 25 and summary.invalid == 2 and summary.grader_errors == []
    batch = {r.submission.id: comparable(r) for r in summary.reports}
    serial = {c.student_id: comparable(grade(c.path, toy, settings, c.student_id)) for c in intake.candidates}
    assert batch == serial
    assert batch["good00"]["score"] == 10 and batch["wrong00"]["score"] == 5
    assert batch["loops"]["tests"][0]["status"] == "timeout"
    assert batch["exits"]["tests"][0]["status"] == "crashed"
    assert batch["liar"]["score"] == 0


def gradebook_rows(out: Path) -> dict[str, tuple[float, float]]:
    path = out / "gradebook.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {sid: (score, at) for sid, score, at in db.execute("SELECT student_id, score, graded_at FROM reports")}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    """Every process below pid: pool processes are forked by a forkserver (issue 20), their
    sandboxes below them; all must die with the grader."""
    found, frontier = [], [pid]
    while frontier:
        children = [child for parent in frontier for child in _children(parent)]
        found += children
        frontier = children
    return found


def _wait_gone(pids: list[int], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
    assert not alive, f"processes {alive} outlived the killed grader"


def grader_command(course: Path, inbox: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "import cli; cli.main()", "grade", "toy", str(inbox), "--out", str(out),
            "--course", str(course), "--workers", "2", "--no-export", *extra]  # fmt: skip


@pytest.mark.slow
def test_kill_9_then_rerun_loses_nothing_and_grades_nothing_twice(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN.replace("import numpy as np", "import numpy as np, time"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    slow = "import time\ndef double(x):\n    time.sleep(0.4)\n    return x * 2\n\ndef triple(x):\n    return x * 3\n"
    for i in range(14):
        (inbox / f"s{i:02d}.py").write_text(slow if i % 2 else slow.replace("x * 2", "x + 2"))
    out = tmp_path / "out"
    first = subprocess.Popen(grader_command(course, inbox, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(gradebook_rows(out)) < 4 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    pool = _descendants(first.pid)
    assert len(pool) >= 3, f"the grader should have started a forkserver and pool processes, found {pool}"
    first.send_signal(signal.SIGKILL)
    first.wait()
    _wait_gone(pool)
    before = gradebook_rows(out)
    assert 4 <= len(before) < 14, "the kill must land mid-batch"
    rerun = subprocess.run(grader_command(course, inbox, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = gradebook_rows(out)
    assert len(after) == 14
    for student, (score, graded_at) in before.items():
        assert after[student] == (score, graded_at), f"{student} was graded twice"
    assert f"{14 - len(before)} graded now" in rerun.stdout.replace("\n", " ")
    assert {sid: score for sid, (score, _) in after.items()} == {
        f"s{i:02d}": (10.0 if i % 2 else 5.0) for i in range(14)
    }
    reports = sorted(p.name for p in out.glob("s*.json"))  # not export-settings.json, preflight.json
    assert reports == [f"s{i:02d}.json" for i in range(14)]


def test_pool_processes_are_forked_warm_and_trace_their_start(make_course, tmp_path, sandbox_mode):
    # Issue 20: pool processes come from one preloaded forkserver, collect the tests and start
    # their zygote before the first job; GRADER_TRACE records that timeline for benchmarks.
    course = make_course(HIDDEN)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(4):
        (inbox / f"s{i}.py").write_text(CORRECT)
    trace = tmp_path / "trace.txt"
    env = {**os.environ, "GRADER_TRACE": str(trace)}
    done = subprocess.run(grader_command(course, inbox, tmp_path / "out"), env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    events: dict[int, list[str]] = {}
    for line in trace.read_text().splitlines():
        pid, _, event = line.split(" ", 2)
        events.setdefault(int(pid), []).append(event)
    (grader_pid,) = [pid for pid, seen in events.items() if "cli start" in seen]
    pool = {pid: seen for pid, seen in events.items() if seen[0].startswith("pool process started")}
    assert len(pool) == 2, events
    for seen in pool.values():
        parent = int(seen[0].removeprefix("pool process started (parent ").rstrip(")"))
        assert parent not in (grader_pid, *pool), "pool processes come from the forkserver"
        first_job = next(i for i, event in enumerate(seen) if event.startswith("grade "))
        assert {"collect end", "zygote preloaded", "pool process warm"} <= set(seen[:first_job]), seen
        # A forkserver's children skip atexit: their zygote is closed by a finalizer, at the end.
        assert seen[-1].startswith("pool process closed"), seen
    graded = sorted(e.split()[1] for seen in pool.values() for e in seen if e.startswith("grade ") and e.endswith(" end"))
    assert graded == ["s0", "s1", "s2", "s3"]


@pytest.mark.slow
def test_fingerprint_decides_what_reruns(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    assignment = load_assignment(course / "assignments" / "toy")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"s{i}.py").write_text(CORRECT)
    intake = collect([inbox], "toy.ipynb", tmp_path / "x")
    settings = GradeSettings(sandbox=sandbox_mode)
    out = tmp_path / "out"
    assert run_batch(assignment, intake, out, settings, workers=2).graded == 3
    again = run_batch(assignment, intake, out, settings, workers=2)
    assert (again.graded, again.up_to_date) == (0, 3)
    (inbox / "s1.py").write_text(WRONG)  # one student resubmits
    changed = run_batch(assignment, intake, out, settings, workers=2)
    assert (changed.graded, changed.up_to_date) == (1, 2)
    hidden = course / "autograde_tests" / "toy" / "test_toy.py"
    hidden.write_text(hidden.read_text().replace("triple(2)", "triple(two)"))  # a hidden test is edited
    edited = run_batch(load_assignment(course / "assignments" / "toy"), intake, out, settings, workers=2)
    assert (edited.graded, edited.up_to_date) == (3, 0)
    forced = run_batch(assignment, intake, out, settings, workers=2, force=True)
    assert forced.graded == 3


def test_concurrent_run_on_same_folder_is_refused(tmp_path):
    first = Gradebook.open(tmp_path, "toy")
    try:
        with pytest.raises(
            UsageError, match=rf"{tmp_path} is being graded by another run \(pid {os.getpid()}, started"
        ):
            Gradebook.open(tmp_path, "toy")
    finally:
        first.close()
    Gradebook.open(tmp_path, "toy").close()  # free again once the first run ends


def test_gradebook_of_another_assignment_is_refused(tmp_path):
    Gradebook.open(tmp_path, "toy").close()
    with pytest.raises(UsageError, match="holds grades for assignment 'toy', not 'cnn'"):
        Gradebook.open(tmp_path, "cnn")


@pytest.mark.slow
def test_exports_follow_their_formats(toy, tmp_path, sandbox_mode):
    inbox = make_submissions(tmp_path)
    intake = collect([inbox], "toy.ipynb", tmp_path / "x")
    out = tmp_path / "out"
    run_batch(toy, intake, out, GradeSettings(sandbox=sandbox_mode), workers=2)
    write_exports(out)
    with open(out / "export" / "gradebook.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["student_id", "name", "status", "score", "max_score", "test_double", "test_triple",
                             "message", "automatic_score", "adjustment", "late_penalty", "days_late", "submitted_at",
                             "needs_attention"]  # fmt: skip
    by_id = {row["student_id"]: row for row in rows}
    assert (by_id["good00"]["score"], by_id["good00"]["test_double"]) == ("10", "5")
    assert by_id["garbled"]["status"] == "invalid_submission" and by_id["garbled"]["score"] == "0"
    suites = ET.parse(out / "export" / "junit.xml").getroot()
    assert suites.tag == "testsuites" and len(suites) == len(rows)
    for case in suites.iter("testcase"):
        assert {child.tag for child in case} <= {"failure", "error", "skipped"}
    for row in rows:
        results = json.loads((out / "export" / "gradescope" / row["student_id"] / "results.json").read_text())
        assert_gradescope_shape(results)
    good = json.loads((out / "export" / "gradescope" / "good00" / "results.json").read_text())
    assert [t["visibility"] for t in good["tests"]] == ["visible", "after_published"]
    feedback = (out / "export" / "feedback" / "liar.html").read_text()
    assert "details of this test are hidden" in feedback
    summary = (out / "export" / "summary.html").read_text()
    assert summary.count("<svg") == 4 and "<script" not in summary


def assert_gradescope_shape(results: dict) -> None:
    """Gradescope's autograder results.json: the fields and value sets its spec allows."""
    assert set(results) <= {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests",
                            "extra_data", "leaderboard", "output_format"}  # fmt: skip
    assert isinstance(results["score"], int | float) and isinstance(results["execution_time"], int)
    assert results.get("visibility", "visible") in {"hidden", "after_due_date", "after_published", "visible"}
    for test in results["tests"]:
        assert set(test) <= {"score", "max_score", "status", "name", "number", "output", "tags", "visibility",
                             "extra_data", "name_format", "output_format"}  # fmt: skip
        assert test["status"] in {"passed", "failed"}
        assert test["visibility"] in {"hidden", "after_due_date", "after_published", "visible"}
        assert 0 <= test["score"] <= test["max_score"]


def test_student_html_is_escaped(toy, tmp_path, sandbox_mode):
    path = tmp_path / "xss.py"
    path.write_text("print('<script>alert(1)</script>')\n" + WRONG)
    intake = collect([path], "toy.ipynb", tmp_path / "x")
    run_batch(toy, intake, tmp_path / "out", GradeSettings(sandbox=sandbox_mode), workers=1)
    write_exports(tmp_path / "out", ("html",), FeedbackPolicy(show_output=True))  # printed output opted in
    page = (tmp_path / "out" / "export" / "feedback" / "xss.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


MOODLE_PARTICIPANTS = (
    "First name,Last name,Email address,Roles,Groups,Last access to course\n"
    "Anna,Müller,anna@example.org,Student,No groups,now\n"
    "Mia,Weber,mia@example.org,Student,No groups,now\n"
    "Jan,Kowalski,jan@example.org,Student,No groups,now\n"
    "Lea,Schmidt,lea@example.org,Student,No groups,now\n"
)


def _moodle_zip(path: Path, members: dict[str, tuple[str, tuple[int, ...]]]) -> Path:
    """A Moodle "Download all submissions" zip: flat files named Full Name_participant_assignsubmission_..."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, (text, when) in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=when), text)
    return path


def test_stale_row_after_a_duplicate_is_marked_in_csv_and_summary(toy, tmp_path, sandbox_mode):
    inbox, late = tmp_path / "inbox", tmp_path / "late"
    inbox.mkdir()
    late.mkdir()
    (inbox / "Weber Mia_12368_assignsubmission_file_toy.py").write_text(CORRECT)
    (inbox / "Kowalski Jan_12369_assignsubmission_file_toy.py").write_text(WRONG)
    out = tmp_path / "out"
    settings = GradeSettings(sandbox=sandbox_mode)
    run_batch(toy, collect([inbox], "toy.ipynb", tmp_path / "x"), out, settings, workers=1)
    write_exports(out)
    (late / "Weber Mia_12368_assignsubmission_file_toy.py").write_text(WRONG)  # a late resubmission
    again = run_batch(toy, collect([inbox, late], "toy.ipynb", tmp_path / "x"), out, settings, workers=1)
    assert again.stale == ["12368"] and again.names == {"12369": "Kowalski Jan"}
    write_exports(out)
    with open(out / "export" / "gradebook.csv", newline="") as stream:
        rows = {row["student_id"]: row for row in csv.DictReader(stream)}
    assert rows["12368"]["needs_attention"] == "yes" and rows["12368"]["score"] == ""
    assert rows["12368"]["automatic_score"] == "10", "the earlier run's grade is kept, but never as a clean grade"
    assert rows["12368"]["message"].startswith("needs attention: 2 submissions found for one student")
    assert rows["12369"]["needs_attention"] == "" and rows["12369"]["score"] == "5"
    summary = " ".join((out / "export" / "summary.html").read_text().split())
    assert "Needs attention (1)" in summary and "Weber Mia" in summary
    assert "2 submissions found for one student" in summary


def test_ta_goes_from_a_moodle_zip_and_participants_csv_to_a_worksheet_moodle_imports(make_course, tmp_path,
                                                                                      sandbox_mode):  # fmt: skip
    """The issue's "done when": one late student, one extension, one adjustment, one missing student."""
    from click.testing import CliRunner

    import cli
    from grader.batch.lms import MOODLE_HEADER, read_moodle_worksheet

    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().replace("[limits]", '[late]\ndue = 2026-11-20T23:59:00\ntimezone = "UTC"\n'
                                             "penalty_percent_per_day = 10\n\n[limits]"))  # fmt: skip
    on_time, late = (2026, 11, 20, 22, 0, 0), (2026, 11, 21, 10, 0, 0)
    export = _moodle_zip(tmp_path / "moodle-export.zip", {
        "Müller Anna_12368_assignsubmission_file_toy.py": (CORRECT, on_time),
        "Weber Mia_12370_assignsubmission_file_toy.py": (CORRECT, late),  # one day late
        "Kowalski Jan_12371_assignsubmission_file_toy.py": (WRONG, late),  # late, with an extension
        "Weber Mia_12370_assignsubmission_onlinetext_onlinetext.html": ("<p>see notebook</p>", late),
    })  # fmt: skip
    (tmp_path / "participants.csv").write_text(MOODLE_PARTICIPANTS, encoding="utf-8")
    (tmp_path / "extensions.csv").write_text("student_id,due\n12371,+2d\n")
    out = tmp_path / "grading"
    runner = CliRunner()
    graded = runner.invoke(cli.main, ["grade", "toy", str(export), "--out", str(out), "--course", str(course),
                                      "--roster", str(tmp_path / "participants.csv"),
                                      "--extensions", str(tmp_path / "extensions.csv"), "--workers", "1"])  # fmt: skip
    assert graded.exit_code == 0, graded.output
    assert "12368 Müller Anna: graded 10 / 10" in graded.output
    assert "ignored 1 file that is not a submission: Weber Mia_12370_assignsubmission_onlinetext_onlinetext.html" in (
        graded.output
    )
    adjusted = runner.invoke(cli.main, ["adjust", str(out), "12368", "--test", "test_triple", "--points", "-2",
                                        "--reason", "hard-coded the answer", "--show-reason"])  # fmt: skip
    assert adjusted.exit_code == 0, adjusted.output
    worksheet = out / "export" / "moodle-grading-worksheet.csv"
    header = worksheet.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == MOODLE_HEADER
    grades = read_moodle_worksheet(worksheet)
    assert grades["12368"][0] == "8" and "hard-coded the answer" in grades["12368"][1]
    assert grades["12370"][0] == "9" and "late penalty -1" in grades["12370"][1]  # 10 - 10 % of 10
    assert grades["12371"][0] == "5", "the extension covers the late submission"
    with open(out / "export" / "gradebook.csv", newline="", encoding="utf-8") as stream:
        rows = {row["name"]: row for row in csv.DictReader(stream)}
    assert rows["Lea Schmidt"]["status"] == "missing"
    summary = " ".join((out / "export" / "summary.html").read_text().split())
    assert "No submission (1)" in summary and "Lea Schmidt" in summary and "Late work (1 late)" in summary
