"""LMS files: Moodle's grading worksheet round trip, Canvas's import shape, the UTF-8 BOM option."""

from __future__ import annotations

import csv
import io

from grader.batch import adjustments
from grader.batch.exports import CANVAS_FILE, MOODLE_FILE, save_settings, write_exports
from grader.batch.lms import MOODLE_HEADER, read_moodle_worksheet
from grader.batch.roster import read_roster
from tests.test_adjustments import csv_rows, make_report, record
from tests.test_roster import CANVAS, MOODLE_WORKSHEET, PARTICIPANTS

MOODLE_EXPORTED_HEADER = [
    "Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
    "Last modified (submission)", "Last modified (grade)", "Feedback comments",
]  # fmt: skip


def _graded(tmp_path, roster_text: str, name: str = "roster.csv"):
    out = record(tmp_path / "out", [make_report("12368", {"test_a": 40, "test_b": 25}, max_each=50)],
                 {"12368": "Müller Anna"})  # fmt: skip
    (tmp_path / name).write_text(roster_text, encoding="utf-8")
    save_settings(out, roster=read_roster(tmp_path / name))
    return out


def test_moodle_worksheet_round_trip_keeps_header_and_identifiers(tmp_path):
    out = _graded(tmp_path, MOODLE_WORKSHEET)
    adjustments.add(out, "12368", test="test_b", points=5, set_score=None, reason="Q3 written answer is right",
                    show_reason=True)  # fmt: skip
    write_exports(out)
    path = out / "export" / MOODLE_FILE
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == MOODLE_EXPORTED_HEADER, "Moodle finds its columns by these exact names"
    assert [r[0] for r in rows[1:]] == ["Participant 12368", "Participant 12370"]
    assert rows[1][1:4] == ["Müller Anna", "anna@example.org", "Submitted for grading"]
    assert rows[1][7] == "Friday, 20 November 2026, 11:30 PM" and rows[1][8] == "-"
    parsed = read_moodle_worksheet(path)
    grade, feedback = parsed["12368"]
    assert grade == "70", "final score 65 + 5 on the worksheet's own maximum (100) equals the grader's"
    assert feedback.startswith("70 / 100 points; adjustment (test_b) +5: Q3 written answer is right")
    assert parsed["12370"] == ("", ""), "a student who did not submit keeps an empty grade: Moodle skips it"
    assert "\n" not in feedback and len(feedback) <= 500


def test_moodle_scales_to_the_worksheets_maximum(tmp_path):
    out = _graded(tmp_path, MOODLE_WORKSHEET.replace('"100.00"', '"20.00"'))
    write_exports(out, ("moodle",))
    assert read_moodle_worksheet(out / "export" / MOODLE_FILE)["12368"][0] == "13"  # 65/100 of 20


def test_moodle_worksheet_without_the_worksheet_is_made_in_its_layout(tmp_path):
    out = _graded(tmp_path, PARTICIPANTS)
    write_exports(out, ("moodle",))
    rows = list(csv.reader(io.StringIO((out / "export" / MOODLE_FILE).read_text(encoding="utf-8"))))
    assert rows[0] == MOODLE_HEADER == MOODLE_EXPORTED_HEADER
    assert rows[1][:5] == ["Participant 12368", "Anna Müller", "anna@example.org", "Graded by dl-grader", "65"]
    assert len(rows) == 2, "Mia (no submission, no participant number known) has no row to write"


def test_attention_rows_carry_no_grade_in_lms_files(tmp_path):
    out = _graded(tmp_path, MOODLE_WORKSHEET)
    record(out, [make_report("12368", {"test_a": 40, "test_b": 25}, max_each=50)],
           attention={"12368": "2 submissions found for one student (a, b); none graded"})  # fmt: skip
    write_exports(out)
    row = next(r for r in csv.reader(io.StringIO((out / "export" / MOODLE_FILE).read_text())) if r[0].endswith("12368"))
    assert row[4] == "" and row[9] == "", "nothing stale is imported"
    assert row[3].startswith("dl-grader: needs attention, not graded (needs attention: 2 submissions found")
    assert row[3].endswith("; Submitted for grading")


def test_canvas_csv_shape_with_a_canvas_roster(tmp_path):
    out = record(tmp_path / "out", [make_report("amueller", {"test_a": 40, "test_b": 25}, max_each=50)])
    (tmp_path / "canvas.csv").write_text(CANVAS, encoding="utf-8")
    save_settings(out, roster=read_roster(tmp_path / "canvas.csv"))  # matched by SIS Login ID
    write_exports(out)  # a Canvas roster makes the Canvas file one of the defaults
    rows = list(csv.reader(io.StringIO((out / "export" / CANVAS_FILE).read_text(encoding="utf-8"))))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "toy"]
    assert rows[1] == ["    Points Possible", "", "", "", "", "100"]
    assert rows[2:] == [["Müller, Anna", "9001", "s12368", "amueller", "DL 2026", "65"]]
    write_exports(out, ("canvas",))
    save_settings(out, canvas_column="Backprop (4411)")
    write_exports(out, ("canvas",))
    assert (out / "export" / CANVAS_FILE).read_text().splitlines()[0].endswith(",Backprop (4411)")


def test_canvas_csv_without_a_canvas_roster_puts_the_id_in_sis_user_id(tmp_path):
    out = record(tmp_path / "out", [make_report("s1", {"test_a": 7})], {"s1": "Ada Lovelace"})
    write_exports(out, ("canvas",))
    rows = list(csv.reader(io.StringIO((out / "export" / CANVAS_FILE).read_text())))
    assert rows[2] == ["Ada Lovelace", "", "s1", "", "", "7"]


def test_bom_option_for_excel(tmp_path):
    out = _graded(tmp_path, MOODLE_WORKSHEET)
    write_exports(out)
    assert not (out / "export" / "gradebook.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    save_settings(out, csv_bom=True)
    write_exports(out)
    for name in ("gradebook.csv", MOODLE_FILE):
        data = (out / "export" / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), name
        assert "Müller Anna" in data.decode("utf-8-sig")
    assert csv_rows(out / "export" / "gradebook.csv")["12368"]["name"] == "Müller Anna"


def test_gradebook_csv_cells_are_single_short_lines(tmp_path):
    traceback = "Traceback (most recent call last):\n  File x\n" + "ValueError: boom\n" * 50
    out = record(tmp_path / "out", [make_report("s1", {"test_a": 7}, status="grader_error", message=traceback)])
    write_exports(out, ("csv",))
    text = (out / "export" / "gradebook.csv").read_text()
    assert len(text.splitlines()) == 2, "one line per student"
    row = csv_rows(out / "export" / "gradebook.csv")["s1"]
    assert row["message"].startswith("needs attention: grader error") and len(row["message"]) <= 200
