"""Rosters: Moodle worksheet and participants list, Canvas export, plain id,name; missing and unknown students."""

from __future__ import annotations

import pytest

from grader.batch.exports import save_settings, write_exports
from grader.batch.roster import match_roster, name_key, read_roster
from grader.errors import UsageError
from tests.test_adjustments import csv_rows, make_report, record

MOODLE_WORKSHEET = (
    '"Identifier","Full name","Email address","Status","Grade","Maximum Grade","Grade can be changed",'
    '"Last modified (submission)","Last modified (grade)","Feedback comments"\n'
    '"Participant 12368","Müller Anna","anna@example.org","Submitted for grading","","100.00","Yes",'
    '"Friday, 20 November 2026, 11:30 PM","-",""\n'
    '"Participant 12370","Weber Mia","mia@example.org","No submission","","100.00","Yes","-","-",""\n'
)
PARTICIPANTS = (
    "First name,Last name,Email address,Roles,Groups,Last access to course\n"
    "Anna,Müller,anna@example.org,Student,No groups,now\n"
    "Mia,Weber,mia@example.org,Student,No groups,now\n"
)
CANVAS = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Backprop (4411)\n"
    "    Points Possible,,,,,100\n"
    '"Müller, Anna",9001,s12368,amueller,DL 2026,\n'
    '"Weber, Mia",9002,s12370,mweber,DL 2026,\n'
)


def test_each_kind_is_recognised(tmp_path):
    kinds = [
        ("w.csv", MOODLE_WORKSHEET, "moodle-worksheet"), ("p.csv", PARTICIPANTS, "moodle-participants"),
        ("c.csv", CANVAS, "canvas"), ("plain.csv", "id,name\n12368,Anna Müller\n", "plain"),
        ("bare.csv", "12368,Anna Müller\n12370,Mia Weber\n", "plain"),
    ]  # fmt: skip
    for name, text, kind in kinds:
        (tmp_path / name).write_text(text, encoding="utf-8")
        roster = read_roster(tmp_path / name)
        assert roster.format == kind, name
    assert read_roster(tmp_path / "w.csv").entries[0].ids == ["12368"]
    assert read_roster(tmp_path / "c.csv").entries[0].ids == ["9001", "s12368", "amueller"]
    assert read_roster(tmp_path / "c.csv").entries[0].name == "Anna Müller"
    assert [e.ids for e in read_roster(tmp_path / "bare.csv").entries] == [["12368"], ["12370"]]


def test_a_roster_with_a_bom_and_semicolons_reads(tmp_path):
    (tmp_path / "r.csv").write_bytes("\ufeffid;name\n12368;Anna Müller\n".encode())
    assert read_roster(tmp_path / "r.csv").entries[0].name == "Anna Müller"


def test_not_a_roster_says_what_is_read(tmp_path):
    (tmp_path / "r.csv").write_text("\n\n")
    with pytest.raises(UsageError, match="the roster is empty"):
        read_roster(tmp_path / "r.csv")


def test_names_match_whatever_their_order_case_or_accents():
    assert name_key("Müller Anna") == name_key("anna  MULLER") == name_key("Anna Müller")


def test_participants_list_matches_by_name_missing_and_unknown(tmp_path):
    (tmp_path / "p.csv").write_text(PARTICIPANTS, encoding="utf-8")
    roster = read_roster(tmp_path / "p.csv")
    match = match_roster(roster, [("12368", "Müller Anna"), ("99999", "Stranger Sam")])
    assert match.by_student["12368"].email == "anna@example.org"
    assert [e.name for e in match.missing] == ["Mia Weber"]
    assert match.unknown == ["99999"]


def test_missing_student_and_unknown_id_in_every_export(tmp_path):
    out = record(tmp_path / "out", [make_report("12368", {"test_a": 10}), make_report("99999", {"test_a": 5})],
                 {"12368": "Müller Anna", "99999": "Stranger Sam"})  # fmt: skip
    (tmp_path / "w.csv").write_text(MOODLE_WORKSHEET, encoding="utf-8")
    save_settings(out, roster=read_roster(tmp_path / "w.csv"))
    write_exports(out)
    rows = csv_rows(out / "export" / "gradebook.csv")
    assert rows["12370"]["status"] == "missing" and rows["12370"]["name"] == "Weber Mia"
    assert rows["12370"]["message"] == "no submission" and rows["12370"]["score"] == ""
    assert rows["99999"]["needs_attention"] == "yes" and "not on the roster w.csv" in rows["99999"]["message"]
    assert rows["12368"]["name"] == "Müller Anna" and rows["12368"]["score"] == "10"
    summary = " ".join((out / "export" / "summary.html").read_text().split())
    assert "2 on the roster (w.csv), 2 submitted" in summary
    assert "No submission (1)" in summary and "12370 Weber Mia" in summary
    assert "Not on the roster (1)" in summary and "Stranger Sam" in summary
