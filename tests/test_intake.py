"""Finding submissions: naming rules, duplicates, and archives extracted safely."""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from grader.batch.intake import ArchiveError, collect, parse_student, safe_extract
from grader.batch.paths import safe_path_component


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice.ipynb", ("alice", "")),
        ("Doe Jane_12345_assignsubmission_file_backprop.ipynb", ("12345", "Doe Jane")),
        ("Müller Jürgen_987_assignsubmission_file_", ("987", "Müller Jürgen")),
        ("bob_smith.py", ("bob_smith", "")),
        # Made safe (issue 11): a slug and a hash of the name as found, which is kept for display.
        ("Doe Jane.py", ("Doe_Jane-e075274ea4", "Doe Jane")),
        ("...py", ("student-5ec1f7e700", "..")),
        ("M\udcfcller.ipynb", ("M_ller-4268b0e6d9", "M\\xfcller")),  # the byte 0xfc of a Latin-1 name
        ("evil\n\u202egpj.py", ("evil_gpj-36d1f70b7d", "evil\\n\\u202egpj")),
        ("Dupont Zoé_4711_assignsubmission_file_", ("4711", "Dupont Zoé")),
    ],
)
def test_student_ids_from_names(name, expected):
    assert parse_student(name) == expected


def test_folder_of_files_and_folder_of_folders(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "alice.ipynb").write_text("{}")
    (flat / "notes.txt").write_text("ignored")
    nested = tmp_path / "nested"
    (nested / "Doe Jane_12345_assignsubmission_file_").mkdir(parents=True)
    (nested / "Doe Jane_12345_assignsubmission_file_" / "backprop.ipynb").write_text("{}")
    (nested / "carol" / "scratch").mkdir(parents=True)
    (nested / "carol" / "backprop.ipynb").write_text("{}")
    (nested / "carol" / "scratch" / "old.py").write_text("")
    intake = collect([flat, nested], "backprop.ipynb", tmp_path / "x")
    assert sorted((c.student_id, c.path.name, c.display_name) for c in intake.candidates) == [
        ("12345", "backprop.ipynb", "Doe Jane"),
        ("alice", "alice.ipynb", ""),
        ("carol", "backprop.ipynb", ""),
    ]
    assert intake.problems == []


def test_duplicates_and_ambiguous_folders_are_reported_not_guessed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "dave.ipynb").write_text("{}")
    (tmp_path / "b" / "dave.py").write_text("")
    (tmp_path / "b" / "erin").mkdir()
    (tmp_path / "b" / "erin" / "v1.ipynb").write_text("{}")
    (tmp_path / "b" / "erin" / "v2.ipynb").write_text("{}")
    intake = collect([tmp_path / "a", tmp_path / "b"], "backprop.ipynb", tmp_path / "x")
    assert intake.candidates == []
    assert any("student id 'dave' appears 2 times" in p for p in intake.problems)
    assert any(
        "2 candidate files (v1.ipynb, v2.ipynb); not guessing which one to grade for erin" in p for p in intake.problems
    )


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo("link.ipynb")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, symlink)
    return path


def test_lms_archive_is_extracted_and_collected(tmp_path):
    archive = make_zip(tmp_path / "export.zip", {
        "Doe Jane_12345_assignsubmission_file_/backprop.ipynb": b"{}",
        "Roe Rick_777_assignsubmission_file_/backprop.ipynb": b"{}",
    })  # fmt: skip
    intake = collect([archive], "backprop.ipynb", tmp_path / "extracted")
    assert sorted(c.student_id for c in intake.candidates) == ["12345", "777"]
    assert all((tmp_path / "extracted") in c.path.parents for c in intake.candidates)


@pytest.mark.parametrize(
    ("members", "symlink", "message"),
    [
        ({"../../evil.py": b"x"}, None, "export.zip: member '../../evil.py' points outside the archive"),
        ({"/etc/cron.d/evil": b"x"}, None, "export.zip: member '/etc/cron.d/evil' points outside the archive"),
        ({"a/ok.ipynb": b"{}"}, "/etc/passwd", "export.zip: member 'link.ipynb' is a symbolic link"),
        ({"bomb.ipynb": b"0" * (40 * 2**20)}, None, "export.zip: member 'bomb.ipynb' expands more than 200x"),
    ],
)
def test_archive_attacks_are_refused_with_one_message(tmp_path, members, symlink, message):
    archive = make_zip(tmp_path / "export.zip", members, symlink)
    with pytest.raises(ArchiveError) as caught:
        safe_extract(archive, tmp_path / "out")
    assert str(caught.value).startswith(message)
    assert not (tmp_path / "evil.py").exists()


def test_lying_size_header_is_caught_while_streaming(tmp_path, monkeypatch):
    import grader.batch.intake

    archive = make_zip(tmp_path / "export.zip", {"big.ipynb": b"1" * 4096})
    monkeypatch.setattr(grader.batch.intake, "MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(grader.batch.intake, "_check_member", lambda archive, member: None)  # header says it's fine
    with pytest.raises(ArchiveError, match="expands past its size cap"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "big.ipynb").exists()


def test_not_a_zip_is_one_line_and_the_rest_goes_on(tmp_path):
    (tmp_path / "export.zip").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "alice.py").write_text("x = 1")
    intake = collect([tmp_path / "export.zip", tmp_path / "alice.py"], "backprop.ipynb", tmp_path / "out")
    assert intake.problems == [
        "export.zip is not a readable zip archive (File is not a zip file); nothing from this archive was graded"
    ]
    assert [c.student_id for c in intake.candidates] == ["alice"]


# ------------------------------------------------------------------ every byte is data (issue 11)

HOSTILE_NAMES = ["..", ".", "", "a/b", "../../etc", "/abs", "-rf", ".hidden", "a\x00b", "\n", "\u202e", "x" * 300,
                 "M\udcfcller", "\udcff\udcfe", "CON", "a" * 80, "a" * 81, "a..b", "__", "张伟"]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_id_escapes_its_folder(tmp_path, name):
    component = safe_path_component(name)
    assert component not in ("", ".", "..") and "/" not in component and "\x00" not in component
    assert component.isascii() and component.isprintable() and not component.startswith((".", "-"))
    assert len(component) <= 80
    assert (tmp_path / component).resolve().parent == tmp_path.resolve()
    assert safe_path_component(component) == component, "the rule must be idempotent (exports apply it again)"
    (tmp_path / component).write_text("fits")  # a real file system takes it


def test_safe_ids_are_stable_and_distinct():
    # A resumed batch finds its rows again only if the same name gives the same id on every run.
    assert safe_path_component("Doe Jane") == "Doe_Jane-e075274ea4"
    names = ["Doe Jane", "Doe_Jane", "Doe  Jane", "doe jane", "Müller", "Muller", "Mu\u0308ller"]
    assert len({safe_path_component(n) for n in names}) == len(names)
    assert safe_path_component("alice") == "alice" and safe_path_component("12345") == "12345"


def make_raw_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A zip whose member list may repeat a name (ZipFile warns, then writes it)."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
        for name, data in members:
            zf.writestr(name, data)
    return path


def test_bad_member_names_refuse_their_student_only(tmp_path):
    long_name = "Roe Rick_777_assignsubmission_file_/" + "n" * 300 + ".ipynb"
    archive = make_raw_zip(tmp_path / "export.zip", [
        ("Doe Jane_12345_assignsubmission_file_/backprop.ipynb", b"{}"),
        (long_name, b"{}"),
        ("Roe Rick_777_assignsubmission_file_/old.py", b""),  # must not be graded in place of the refused one
        ("evil\nname/backprop.ipynb", b"{}"),
        ("\u202egpj.py", b""),
        ("Case/backprop.ipynb", b"{}"),
        ("case/backprop.ipynb", b"{}"),
        ("twice/backprop.ipynb", b"1"),
        ("twice/backprop.ipynb", b"2"),
    ])  # fmt: skip
    intake = collect([archive], "backprop.ipynb", tmp_path / "extracted")
    assert [(c.student_id, c.display_name) for c in intake.candidates] == [("12345", "Doe Jane")]
    assert intake.problems == [
        f"export.zip: member {long_name[:100]!r}... (342 characters) has a name part of 306 bytes, over the "
        "255 byte limit of a file name; nothing graded from 'Roe Rick_777_assignsubmission_file_'",
        "export.zip: member 'evil\\nname/backprop.ipynb' has a control or text-direction character ('\\n') in its "
        "name; nothing graded from 'evil\\nname'",
        "export.zip: member '\\u202egpj.py' has a control or text-direction character ('\\u202e') in its name; "
        "nothing graded from '\\u202egpj.py'",
        "export.zip: member 'case/backprop.ipynb' differs from 'Case' only in upper/lower case; nothing graded "
        "from 'case'",
        "export.zip: member 'Case' differs from 'case' only in upper/lower case; nothing graded from 'Case'",
        "export.zip: member 'twice/backprop.ipynb' appears twice in the archive; nothing graded from 'twice'",
    ]
    extracted = tmp_path / "extracted"
    assert sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*")) == [
        "export", "export/Doe Jane_12345_assignsubmission_file_",
        "export/Doe Jane_12345_assignsubmission_file_/backprop.ipynb",
    ]  # fmt: skip


def test_an_error_while_writing_refuses_that_entry_and_removes_it(tmp_path):
    archive = make_raw_zip(tmp_path / "export.zip", [
        ("alice.py", b"x = 1"),
        ("carol", b"a file"),
        ("carol/backprop.ipynb", b"{}"),  # a folder where a file already is: the OS says no
    ])  # fmt: skip
    intake = collect([archive], "backprop.ipynb", tmp_path / "extracted")
    assert [c.student_id for c in intake.candidates] == ["alice"]
    assert intake.problems == [
        "export.zip: member 'carol/backprop.ipynb' could not be extracted (File exists); nothing graded from 'carol'"
    ]
    assert sorted(p.name for p in (tmp_path / "extracted" / "export").iterdir()) == ["alice.py"]


def test_a_name_that_is_not_utf8_refuses_the_archive(tmp_path):
    good = make_zip(tmp_path / "good.zip", {"AAAA.ipynb": b"{}"})
    raw = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        assert not zf.infolist()[0].flag_bits & 0x800
    # Set the "name is UTF-8" flag (general purpose bit 11) in both headers, then break the name.
    raw = raw.replace(b"PK\x03\x04\x14\x00\x00\x00", b"PK\x03\x04\x14\x00\x00\x08")
    raw = raw.replace(b"PK\x01\x02\x14\x03\x14\x00\x00\x00", b"PK\x01\x02\x14\x03\x14\x00\x00\x08")
    (tmp_path / "bad.zip").write_bytes(raw.replace(b"AAAA", b"\xff\xfe\xfd\xfc"))
    intake = collect([tmp_path / "bad.zip"], "backprop.ipynb", tmp_path / "extracted")
    assert intake.problems == [
        "bad.zip is not a readable zip archive (a member name is not valid UTF-8); nothing from this archive was graded"
    ]
    assert not (tmp_path / "extracted").exists() or not any((tmp_path / "extracted").rglob("*"))


def test_a_refused_archive_leaves_nothing_behind(tmp_path, monkeypatch):
    import grader.batch.intake

    archive = make_zip(tmp_path / "export.zip", {"a.ipynb": b"{}", "b.ipynb": b"1" * 4096})
    monkeypatch.setattr(grader.batch.intake, "MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(grader.batch.intake, "_check_member", lambda label, member: None)
    intake = collect([archive], "backprop.ipynb", tmp_path / "extracted")
    assert intake.problems == [
        "export.zip: member 'b.ipynb' expands past its size cap (a zip bomb?); nothing from this archive was graded"
    ]
    assert list((tmp_path / "extracted").iterdir()) == []  # not a.ipynb, not a .partial folder


def test_extracting_again_replaces_what_the_last_run_left(tmp_path):
    first = make_zip(tmp_path / "export.zip", {"alice.py": b"", "bob.py": b""})
    collect([first], "backprop.ipynb", tmp_path / "extracted")
    second = make_zip(tmp_path / "export.zip", {"alice.py": b"x = 2"})
    intake = collect([second], "backprop.ipynb", tmp_path / "extracted")
    assert [c.student_id for c in intake.candidates] == ["alice"]  # bob withdrew: not graded from a stale copy
    assert sorted(p.name for p in (tmp_path / "extracted" / "export").iterdir()) == ["alice.py"]


def test_two_archives_with_one_name_get_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = make_zip(tmp_path / "a" / "export.zip", {"alice.py": b""})
    two = make_zip(tmp_path / "b" / "export.zip", {"bob.py": b""})
    intake = collect([one, two], "backprop.ipynb", tmp_path / "extracted")
    assert sorted((c.student_id, c.path.parent.name) for c in intake.candidates) == [
        ("alice", "export"), ("bob", "export-2"),
    ]  # fmt: skip


def test_names_of_any_bytes_in_a_folder_are_graded_under_safe_ids(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in (b"M\xfcller.py", b"two\nlines.py", b"\xe2\x80\xaetxt.py", b"alice.py"):
        with open(os.fsencode(folder) + b"/" + name, "wb") as stream:
            stream.write(b"x = 1\n")
    intake = collect([folder], "backprop.ipynb", tmp_path / "x")
    assert intake.problems == []
    assert sorted((c.student_id, c.display_name) for c in intake.candidates) == [
        ("M_ller-4268b0e6d9", "M\\xfcller"),
        ("alice", ""),
        ("two_lines-edc8c12845", "two\\nlines"),
        ("txt-e44b07bca2", "\\u202etxt"),
    ]


def test_names_equal_up_to_case_are_one_student_twice(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in ("Alice.py", "alice.ipynb", "Zoé.py", "Zoe\u0301.py", "bob.py"):
        (folder / name).write_text("x = 1")
    intake = collect([folder], "backprop.ipynb", tmp_path / "x")
    assert [c.student_id for c in intake.candidates] == ["bob"]
    assert intake.problems == [
        f"student names 'Alice', 'alice' are one name up to upper/lower case or accents ({folder}/Alice.py, "
        f"{folder}/alice.ipynb); none graded: their files would collide on a case-insensitive disk; rename all but one",
        f"student names 'Zoe\u0301', 'Zoé' are one name up to upper/lower case or accents ({folder}/Zoe\u0301.py, "
        f"{folder}/Zoé.py); none graded: their files would collide on a case-insensitive disk; rename all but one",
    ]


def test_an_input_that_cannot_be_read_is_one_line(tmp_path):
    (tmp_path / "alice.py").write_text("x = 1")
    too_long = tmp_path / ("n" * 300 + ".py")
    intake = collect([too_long, tmp_path / "alice.py"], "backprop.ipynb", tmp_path / "x")
    assert intake.problems == [f"{too_long}: cannot be read (File name too long); nothing graded from it"]
    assert [c.student_id for c in intake.candidates] == ["alice"]
