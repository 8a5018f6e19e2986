"""Late work: the [late] policy, extensions, submission times and the penalty's arithmetic at its boundaries."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from grader.batch.exports import save_settings, write_exports
from grader.batch.late import (
    Extension,
    SubmissionTime,
    late_outcome,
    parse_time,
    read_extensions,
    read_submission_times,
)
from grader.errors import SpecError, UsageError
from grader.grading.spec import LatePolicy, load_spec
from tests.test_adjustments import csv_rows, make_report, record

BERLIN = ZoneInfo("Europe/Berlin")
POLICY = LatePolicy(due=datetime(2026, 11, 20, 23, 59), timezone="Europe/Berlin", grace_minutes=15,
                    penalty_percent_per_day=10, max_penalty_percent=30)  # fmt: skip


def at(delta: timedelta) -> SubmissionTime:
    return SubmissionTime(student_id="s", at=POLICY.due + delta, source="times file")


@pytest.mark.parametrize(
    ("delta", "days", "penalty"),
    [
        (timedelta(0), 0, 0.0),  # exactly on time
        (-timedelta(days=3), 0, 0.0),  # early
        (timedelta(minutes=15), 0, 0.0),  # the last second of the grace
        (timedelta(minutes=15, seconds=1), 1, 10.0),  # just past the grace: one started day
        (timedelta(hours=24), 1, 10.0),  # exactly a day
        (timedelta(hours=24, seconds=1), 2, 20.0),  # a second into the second day
        (timedelta(days=3), 3, 30.0),  # at the cap
        (timedelta(days=10), 10, 30.0),  # past the cap: still 30 %
    ],
)
def test_penalty_at_the_boundaries(delta, days, penalty):
    outcome = late_outcome(POLICY, at(delta), None, score=80, max_score=100)
    assert (outcome.days_late, outcome.penalty_percent, outcome.penalty_points) == (days, penalty, penalty)


def test_penalty_of_the_score_and_never_below_zero():
    of_score = POLICY.model_copy(update={"penalty_basis": "score"})
    assert late_outcome(of_score, at(timedelta(days=2)), None, score=50, max_score=100).penalty_points == 10
    assert late_outcome(POLICY, at(timedelta(days=5)), None, score=12, max_score=100).penalty_points == 12


def test_extension_moves_the_deadline():
    extension = Extension(student_id="s", due=POLICY.due + timedelta(days=2))
    two_days_late = at(timedelta(days=1, hours=20))
    assert late_outcome(POLICY, two_days_late, None, 80, 100).days_late == 2
    extended = late_outcome(POLICY, two_days_late, extension, 80, 100)
    assert (extended.days_late, extended.penalty_points, extended.extended) == (0, 0.0, True)
    past = late_outcome(POLICY, at(timedelta(days=2, hours=1)), extension, 80, 100)
    assert (past.days_late, past.penalty_points) == (1, 10.0)


def test_unknown_time_is_on_time_and_says_so():
    outcome = late_outcome(POLICY, None, None, 80, 100)
    assert outcome.days_late == 0 and outcome.submitted_at is None


def test_due_is_read_in_its_zone_and_dst_is_the_zones(tmp_path):
    spec = tmp_path / "toy" / "assignment.toml"
    spec.parent.mkdir()
    spec.write_text('title = "T"\nnotebook = "t.ipynb"\n[late]\ndue = 2026-07-01T12:00:00\ntimezone = "Europe/Berlin"\n'
                    "penalty_percent_per_day = 5\n")  # fmt: skip
    late = load_spec(spec).late
    assert late is not None and late.due.utcoffset() == timedelta(hours=2)  # summer time in Berlin
    spec.write_text(spec.read_text().replace("Europe/Berlin", "Mars/Olympus"))
    with pytest.raises(SpecError, match="late.timezone: .*unknown time zone 'Mars/Olympus'"):
        load_spec(spec)


def test_moodle_and_iso_times_parse():
    assert parse_time("Friday, 20 November 2026, 11:59 PM", BERLIN) == datetime(2026, 11, 20, 23, 59, tzinfo=BERLIN)
    assert parse_time("2026-11-21T08:00:00Z", BERLIN).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="not a date-time"):
        parse_time("next tuesday", BERLIN)


def test_extensions_and_times_files(tmp_path):
    (tmp_path / "ext.csv").write_text("student_id,due,note\n12368,+2d,illness\nParticipant 12370,2026-11-25 12:00,\n")
    extensions = read_extensions(tmp_path / "ext.csv", POLICY)
    assert extensions["12368"].due == POLICY.due + timedelta(days=2) and extensions["12368"].note == "illness"
    assert extensions["12370"].due == datetime(2026, 11, 25, 12, tzinfo=BERLIN)
    (tmp_path / "times.csv").write_text("12368,2026-11-21 09:00\n")
    assert read_submission_times(tmp_path / "times.csv", BERLIN)["12368"].at.hour == 9
    (tmp_path / "bad.csv").write_text("id,due\n12368,soon\n")
    with pytest.raises(UsageError, match=r"bad.csv, line 2: 'soon' is not a date-time"):
        read_extensions(tmp_path / "bad.csv", POLICY)


def test_late_student_with_and_without_extension_in_the_exports(tmp_path):
    out = record(tmp_path / "out", [make_report(sid, {"test_a": 10, "test_b": 10}) for sid in ("101", "102", "103")],
                 {"101": "Late Lee", "102": "Extended Eva", "103": "Punctual Pat"})  # fmt: skip
    deltas = {"101": timedelta(hours=30), "102": timedelta(hours=30), "103": timedelta(0)}
    times = {sid: SubmissionTime(student_id=sid, at=POLICY.due + d, source="times file") for sid, d in deltas.items()}
    extensions = {"102": Extension(student_id="102", due=POLICY.due + timedelta(days=2))}
    save_settings(out, late=POLICY, submission_times=times, extensions=extensions)
    write_exports(out)
    rows = csv_rows(out / "export" / "gradebook.csv")
    assert (rows["101"]["automatic_score"], rows["101"]["late_penalty"], rows["101"]["score"]) == ("20", "4", "16")
    assert (rows["101"]["days_late"], rows["102"]["days_late"], rows["102"]["score"]) == ("2", "0", "20")
    assert rows["103"]["late_penalty"] == "0" and rows["103"]["submitted_at"] == "2026-11-20T23:59+01:00"
    feedback = " ".join((out / "export" / "feedback" / "101.html").read_text().split())
    assert "late penalty: -4: 2 days late (submitted 2026-11-22 05:59 +0100" in feedback
    summary = " ".join((out / "export" / "summary.html").read_text().split())
    assert "Late work (1 late)" in summary and "Late Lee" in summary and "(extension)" in summary
    grades = {g["student_id"]: g for g in json.loads((out / "export" / "grades.json").read_text())}
    assert grades["101"]["late"]["penalty_points"] == 4 and grades["101"]["automatic_score"] == 20


def test_file_times_are_used_with_a_warning(tmp_path):
    path = tmp_path / "104.py"
    path.write_text("x = 1\n")
    late_mtime = (POLICY.due + timedelta(hours=1)).timestamp()
    os.utime(path, (late_mtime, late_mtime))
    out = record(tmp_path / "out", [make_report("104", {"test_a": 10}, path=str(path))])
    save_settings(out, late=POLICY)
    write_exports(out)
    assert csv_rows(out / "export" / "gradebook.csv")["104"]["days_late"] == "1"
    summary = " ".join((out / "export" / "summary.html").read_text().split())
    assert "1 submission time came from file modification times" in summary


def test_extensions_need_a_due_date(tmp_path):
    from click.testing import CliRunner

    import cli

    out = record(tmp_path / "out", [make_report("101", {"test_a": 10})])
    (tmp_path / "ext.csv").write_text("101,+1d\n")
    result = CliRunner().invoke(cli.main, ["export", str(out), "--extensions", str(tmp_path / "ext.csv")])
    assert result.exit_code == 2 and "need a [late] table (due = ...) in assignment.toml" in result.output
    assert Path(out / "export").exists() is False
