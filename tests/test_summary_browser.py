"""The class summary on degenerate batches (all zero, one student) and a busy one, in headless Chromium."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from grader.batch import adjustments
from grader.batch.exports import save_settings, write_exports
from grader.batch.late import SubmissionTime
from grader.batch.roster import read_roster
from grader.grading.spec import LatePolicy
from tests.test_adjustments import make_report, record
from tests.test_exports_browser import ARTIFACTS, CHROMIUM, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; scripts/test does)"),
]


def _all_zero(tmp_path):
    reports = [make_report(f"s{i}", {"test_softmax": 0, "test_backward": 0}, sha="ab" * 32) for i in range(4)]
    return record(tmp_path / "out", reports)


def _one_student(tmp_path):
    return record(tmp_path / "out", [make_report("12368", {"test_softmax": 5, "test_backward": 10})],
                  {"12368": "Müller Anna"})  # fmt: skip


def _busy(tmp_path):
    """Partial credit, identical copies, a grader error, a stale duplicate, a late student, an adjustment."""
    reports = [make_report(f"1236{i}", {"test_softmax": 5, "test_backward": 10 * (i % 2)}) for i in range(10)]
    reports += [
        make_report("12370", {"test_softmax": 10, "test_backward": 10}, sha="cd" * 32),
        make_report("12371", {"test_softmax": 10, "test_backward": 10}, sha="cd" * 32),
        make_report("12372", {"test_softmax": 0}, status="grader_error", message="collect failed\nTraceback"),
    ]
    out = record(tmp_path / "out", reports, {"12368": "Müller Anna"},
                 attention={"12369": "2 submissions found for one student (a, b); none graded"})  # fmt: skip
    roster = "id,name\n" + "".join(f"{n},Student {n}\n" for n in range(12360, 12373)) + "12399,Absent Abe\n"
    (tmp_path / "roster.csv").write_text(roster.replace("12368,Student 12368", "12368,Müller Anna"), encoding="utf-8")
    policy = LatePolicy(due=datetime(2026, 11, 20, 23, 59), timezone="UTC", penalty_percent_per_day=10)
    times = {"12360": SubmissionTime(student_id="12360", at=policy.due + timedelta(hours=5), source="times file")}
    save_settings(out, roster=read_roster(tmp_path / "roster.csv"), late=policy, submission_times=times)
    adjustments.add(out, "12361", test="test_softmax", points=3, set_score=None, reason="Q2 derivation right")
    return out


@pytest.mark.parametrize("batch", [_all_zero, _one_student, _busy])
def test_summary_renders_sane_charts_without_console_errors(tmp_path, batch):
    out = batch(tmp_path)
    write_exports(out, ("html",))
    page = out / "export" / "summary.html"
    text = " ".join(page.read_text().split())
    assert text.count("<svg") == 4 and "<script" not in text
    assert '<details id="grading-machine">' in text, "resource charts are folded away"
    dom = chromium(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 4
    shot = ARTIFACTS / f"summary-{batch.__name__.strip('_').replace('_', '-')}.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run = chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}")
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists() and shot.stat().st_size > 10_000
    if batch is _all_zero:
        assert "0.00 / 10</td> <td>0 %</td><td>100 %</td>" in text, "every test: mean 0 of 10, none full, all zero"
        assert "4 identical files (sha256 abababababab)" in text
    if batch is _busy:
        assert "test_softmax</td><td>5.83 / 10</td> <td>17 %</td><td>0 %</td>" in text, "partial credit is points"
        assert "Needs attention (2)" in text and "grader error" in text and "No submission (1)" in text
        assert "Rerun exactly these" in text and "grader grade toy /nonexistent/12372.py --out" in text
        assert "2 identical files (sha256 cdcdcdcdcdcd)" in text
        assert "Q2 derivation right" in text and "Late work (1 late)" in text
        assert "12368</a> Müller Anna" in text


def test_score_axis_runs_from_zero_to_the_maximum_on_an_all_zero_batch(tmp_path):
    out = _all_zero(tmp_path)
    write_exports(out, ("html",))
    svg = (out / "export" / "summary.html").read_text()
    assert "points (of 20)" in svg and "−0.4" not in svg and "-0.4" not in svg
