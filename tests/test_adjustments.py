"""Adjustments: an append-only log applied on top of the automatic score, kept and flagged across regrades."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from grader.batch import adjustments
from grader.batch.adjustments import grade_lines, read_log
from grader.batch.exports import write_exports
from grader.batch.gradebook import Gradebook, read_rows
from grader.errors import UsageError
from grader.grading.report import Resources, SubmissionInfo, SubmissionReport
from grader.grading.report import TestResult as ReportedTest
from grader.grading.spec import FeedbackPolicy


def make_report(
    student_id: str, scores: dict[str, float], *, max_each: float = 10.0, sha: str | None = None,
    status: str = "graded", message: str = "", path: str = "",
) -> SubmissionReport:  # fmt: skip
    """A report as grade() writes one: a test per entry of ``scores``, each out of ``max_each``."""
    tests = [
        ReportedTest(
            id=f"test_toy.py::{name}",
            name=name,
            status="passed" if score == max_each else "failed",
            score=score,
            max_score=max_each,
            message="" if score == max_each else f"{name} is wrong",
            duration_s=0.1,
        )  # fmt: skip
        for name, score in scores.items()
    ]
    return SubmissionReport(
        grader_version="0.1.0", assignment="toy",
        submission=SubmissionInfo(id=student_id, path=path or f"/nonexistent/{student_id}.py",
                                  sha256=sha or f"{abs(hash(student_id)):064x}"[:64]),
        status=status, message=message,
        score=None if status == "grader_error" else sum(scores.values()), max_score=max_each * len(scores),
        tests=tests, resources=Resources(wall_s=0.5, cpu_s=0.4, peak_rss_mb=40.0), seed=0, sandbox="bwrap",
    )  # fmt: skip


def record(out: Path, reports: list[SubmissionReport], names: dict[str, str] | None = None,
           fingerprint: str = "fp1", attention: dict[str, str] | None = None) -> Path:  # fmt: skip
    book = Gradebook.open(out, "toy")
    try:
        for report in reports:
            book.record(report, (names or {}).get(report.submission.id, ""), fingerprint)
        if attention is not None:
            book.set_attention(attention)
    finally:
        book.close()
    return out


def lines_of(out: Path) -> dict[str, adjustments.GradeLine]:
    return {line.student_id: line for line in grade_lines(read_rows(out), read_log(out), FeedbackPolicy())}


def csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        return {row["student_id"]: row for row in csv.DictReader(stream)}


def test_points_and_set_score_apply_in_every_export_and_feedback(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_a": 5, "test_b": 10}),
                                    make_report("bob", {"test_a": 10, "test_b": 10})])  # fmt: skip
    adjustments.add(out, "alice", test="test_a", points=3, set_score=None, reason="regrade: answer 2 is right",
                    show_reason=True, author="ta1")  # fmt: skip
    adjustments.add(out, "bob", test=None, points=None, set_score=0, reason="academic integrity", author="ta1")
    write_exports(out)
    rows = csv_rows(out / "export" / "gradebook.csv")
    assert (rows["alice"]["score"], rows["alice"]["automatic_score"], rows["alice"]["adjustment"]) == ("18", "15", "3")
    assert rows["alice"]["test_a"] == "8"
    assert (rows["bob"]["score"], rows["bob"]["automatic_score"]) == ("0", "20")
    feedback = (out / "export" / "feedback" / "alice.html").read_text()
    assert "automatic score 15" in feedback and "+3: regrade: answer 2 is right" in feedback
    bob_feedback = (out / "export" / "feedback" / "bob.html").read_text()
    assert "academic integrity" not in bob_feedback, "a reason is shown only with --show-reason"
    assert "0 / 20" in bob_feedback and "-20" in bob_feedback
    assert '"score": 18' in (out / "export" / "gradescope" / "alice" / "results.json").read_text()
    summary = (out / "export" / "summary.html").read_text()
    assert "regrade: answer 2 is right" in summary and "academic integrity" in summary


def test_log_is_append_only_and_undo_is_an_entry(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_a": 5})])
    first = adjustments.add(out, "alice", test="test_a", points=2, set_score=None, reason="r1", author="ta1")
    adjustments.undo(out, first.seq, "mistake", author="ta2")
    log = read_log(out)
    assert [(a.seq, a.kind, a.author, a.target) for a in log] == [(1, "points", "ta1", None), (2, "undo", "ta2", 1)]
    assert log[0].against_score == 5 and log[0].against_sha256 == read_rows(out)[0].report.submission.sha256
    assert lines_of(out)["alice"].score == 5
    with pytest.raises(UsageError, match="already undone"):
        adjustments.undo(out, first.seq)
    db = sqlite3.connect(out / "gradebook.sqlite")
    assert db.execute("SELECT COUNT(*) FROM adjustments").fetchone() == (2,)
    db.close()


def test_adjustments_survive_a_regrade_and_are_flagged_when_their_score_changed(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_a": 5, "test_b": 4}),
                                    make_report("bob", {"test_a": 5, "test_b": 4})])  # fmt: skip
    kept = adjustments.add(out, "alice", test="test_a", points=2, set_score=None, reason="partial credit")
    moved = adjustments.add(out, "bob", test="test_b", points=3, set_score=None, reason="written answer ok")
    # regrade: new fingerprint (hidden tests edited); alice's test_a unchanged, bob's test_b changed under him
    record(out, [make_report("alice", {"test_a": 5, "test_b": 6}), make_report("bob", {"test_a": 5, "test_b": 7})],
           fingerprint="fp2")  # fmt: skip
    lines = lines_of(out)
    assert lines["alice"].score == 13 and lines["alice"].attention == []
    assert lines["bob"].score == 5 + 10, "still applied (7 + 3, kept within the test's points), but flagged"
    assert lines["bob"].attention == [
        f"adjustment {moved.seq}: test test_b was 4 when it was made and is 7 now; review it: "
        f"`grader adjust confirm OUT {moved.seq}` or `grader adjust undo OUT {moved.seq}`"
    ]
    write_exports(out)
    rows = csv_rows(out / "export" / "gradebook.csv")
    assert rows["bob"]["needs_attention"] == "yes" and rows["bob"]["score"] == ""
    assert rows["bob"]["message"].startswith("needs attention: adjustment 2: test test_b was 4")
    assert rows["alice"]["score"] == "13"
    adjustments.confirm(out, moved.seq)
    assert lines_of(out)["bob"].attention == [] and lines_of(out)["bob"].score == 15
    assert read_log(out)[kept.seq - 1].kind == "points"


def test_adjustment_whose_test_disappeared_is_flagged_not_applied(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_old": 5, "test_b": 5})])
    entry = adjustments.add(out, "alice", test="test_old", points=5, set_score=None, reason="r")
    record(out, [make_report("alice", {"test_new": 5, "test_b": 5})], fingerprint="fp2")
    line = lines_of(out)["alice"]
    assert line.score == 10 and line.applied[0].applied is False
    assert line.attention[0].startswith(f"adjustment {entry.seq}: test test_old is no longer in the report")


def test_whole_submission_order_points_then_penalty_then_set_score(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_a": 5, "test_b": 5})])
    adjustments.add(out, "alice", test=None, points=-30, set_score=None, reason="r")
    assert lines_of(out)["alice"].score == 0, "never below zero"
    adjustments.add(out, "alice", test=None, points=None, set_score=7, reason="r")
    assert lines_of(out)["alice"].score == 7


def test_refusals_name_the_fix(tmp_path):
    out = record(tmp_path / "out", [make_report("alice", {"test_a": 5})])
    with pytest.raises(UsageError, match=r"no test 'test_x' \(tests: test_a\)"):
        adjustments.add(out, "alice", test="test_x", points=1, set_score=None, reason="r")
    with pytest.raises(UsageError, match="no student 'carol'"):
        adjustments.add(out, "carol", test=None, points=1, set_score=None, reason="r")
    with pytest.raises(UsageError, match="outside 0..10"):
        adjustments.add(out, "alice", test="test_a", points=None, set_score=11, reason="r")
    with pytest.raises(UsageError, match="--reason is required"):
        adjustments.add(out, "alice", test=None, points=1, set_score=None, reason=" ")


def test_cli_adjust_add_list_undo(tmp_path):
    out = record(tmp_path / "out", [make_report("12368", {"test_a": 5})], {"12368": "Weber Mia"})
    runner = CliRunner()
    added = runner.invoke(cli.main, ["adjust", str(out), "12368", "--test", "test_a", "--points", "2",
                                     "--reason", "regrade request", "--by", "ta1"])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "adjustment 1: 12368 test_a +2 points" in added.output and "exports rewritten" in added.output
    assert csv_rows(out / "export" / "gradebook.csv")["12368"]["score"] == "7"
    listed = runner.invoke(cli.main, ["adjust", "list", str(out)], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "   1  12368  test_a  +2  'regrade request'  ta1 " in listed.output
    undone = runner.invoke(cli.main, ["adjust", "undo", str(out), "1"])
    assert undone.exit_code == 0, undone.output
    assert csv_rows(out / "export" / "gradebook.csv")["12368"]["score"] == "5"
    wrong = runner.invoke(cli.main, ["adjust", str(out), "12368", "--points", "1", "--set-score", "2", "--reason", "x"])
    assert wrong.exit_code == 2 and "give exactly one of --points P or --set-score S" in wrong.output
