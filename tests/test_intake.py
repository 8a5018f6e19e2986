"""Finding submissions: naming rules, duplicates, and archives extracted safely."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from grader.batch.intake import ArchiveError, collect, parse_student, safe_extract


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice.ipynb", ("alice", "")),
        ("Doe Jane_12345_assignsubmission_file_backprop.ipynb", ("12345", "Doe Jane")),
        ("Müller Jürgen_987_assignsubmission_file_", ("987", "Müller Jürgen")),
        ("bob_smith.py", ("bob_smith", "")),
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


def test_not_a_zip_is_one_clear_error(tmp_path):
    (tmp_path / "export.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ArchiveError, match="export.zip is not a readable zip archive"):
        collect([tmp_path / "export.zip"], "backprop.ipynb", tmp_path / "out")
