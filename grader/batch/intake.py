"""Collect submissions from files, folders and LMS export archives, one per student id.

Accepted naming (documented in the README):
- a file: the student id is its stem (``alice.ipynb`` -> ``alice``);
- a folder of files: one file per student, as above;
- a folder of folders: one sub-folder per student, named by id, holding the notebook;
- Moodle/StudIP exports: ``Lastname Firstname_12345_assignsubmission_file_[name.ipynb]`` as a
  file or folder name; the id is the participant number (``12345``), the name is kept for display;
- a .zip archive of any of the above, extracted safely first.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.errors import UsageError

SUBMISSION_SUFFIXES = (".ipynb", ".py")
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_[a-z]+_?(?P<rest>.*)$")
MAX_MEMBERS = 5000
MAX_MEMBER_BYTES = 50 * 2**20
MAX_TOTAL_BYTES = 2 * 2**30
MAX_RATIO = 200  # uncompressed / compressed, for members big enough to matter
RATIO_FLOOR_BYTES = 2**20


class ArchiveError(UsageError):
    """An archive that cannot be extracted safely; the message names the archive and the member."""


@dataclass(frozen=True)
class Candidate:
    """One student's submission file, found in the inputs."""

    student_id: str
    path: Path
    display_name: str = ""


@dataclass
class Intake:
    """What was found: submissions to grade and problems a TA must look at."""

    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_student(name: str) -> tuple[str, str]:
    """(student id, display name) from a file or folder name."""
    stem = name
    for suffix in SUBMISSION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    match = MOODLE_NAME.match(stem)
    if match:
        return match.group("id"), match.group("name").strip()
    return stem, ""


def _is_submission(path: Path) -> bool:
    return path.is_file() and path.suffix in SUBMISSION_SUFFIXES and not path.name.startswith(".")


def _from_folder(folder: Path, notebook_name: str, intake: Intake) -> None:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "__MACOSX")):
            continue
        if _is_submission(entry):
            student_id, display = parse_student(entry.name)
            intake.candidates.append(Candidate(student_id, entry, display))
        elif entry.is_dir():
            student_id, display = parse_student(entry.name)
            files = sorted(p for p in entry.rglob("*") if _is_submission(p) and ".ipynb_checkpoints" not in p.parts)
            preferred = [p for p in files if p.name == notebook_name] or [p for p in files if p.suffix == ".ipynb"]
            if len(preferred) == 1 or len(files) == 1:
                intake.candidates.append(Candidate(student_id, (preferred or files)[0], display))
            elif not files:
                intake.problems.append(f"{entry}: no notebook or .py file inside; nothing graded for {student_id}")
            else:
                names = ", ".join(str(p.relative_to(entry)) for p in files[:5])
                intake.problems.append(
                    f"{entry}: {len(files)} candidate files ({names}); not guessing which one to grade "
                    f"for {student_id}: keep one, or name it {notebook_name}"
                )


def safe_extract(archive: Path, destination: Path) -> Path:
    """Extract a zip with every member checked; raise ArchiveError naming the first bad member."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{archive.name} is not a readable zip archive ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise ArchiveError(f"{archive.name} has {len(members)} members, over the cap of {MAX_MEMBERS}")
        for member in members:
            _check_member(archive, member)
        destination.mkdir(parents=True, exist_ok=True)
        total = 0
        for member in members:
            target = destination.joinpath(*PurePosixPath(member.filename).parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            total += _copy_member(zf, member, target, archive, MAX_TOTAL_BYTES - total)
    return destination


def _check_member(archive: Path, member: zipfile.ZipInfo) -> None:
    name = member.filename
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise ArchiveError(f"{archive.name}: member {name!r} points outside the archive (path traversal)")
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{archive.name}: member {name!r} is a symbolic link; links are not accepted")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: archiver stored no file type
        raise ArchiveError(f"{archive.name}: member {name!r} is not a regular file")
    if member.file_size > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{archive.name}: member {name!r} is {member.file_size} bytes, over the 50 MB cap")
    if member.file_size > RATIO_FLOOR_BYTES and member.file_size > MAX_RATIO * max(member.compress_size, 1):
        raise ArchiveError(f"{archive.name}: member {name!r} expands more than {MAX_RATIO}x (a zip bomb?)")


def _copy_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, archive: Path, budget: int) -> int:
    """Stream one member, counting real bytes: declared sizes in the header can lie."""
    written = 0
    with zf.open(member) as source, open(target, "wb") as sink:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > MAX_MEMBER_BYTES or written > budget:
                sink.close()
                target.unlink()
                raise ArchiveError(
                    f"{archive.name}: member {member.filename!r} expands past its size cap (a zip bomb?)"
                )
            sink.write(chunk)
    return written


def collect(inputs: list[Path], notebook_name: str, extract_dir: Path) -> Intake:
    """Find every student's submission in ``inputs``; duplicates are reported, not graded."""
    intake = Intake()
    for item in inputs:
        if not item.exists():
            raise UsageError(f"{item} does not exist")
        if item.is_dir():
            _from_folder(item, notebook_name, intake)
        elif item.suffix == ".zip":
            _from_folder(safe_extract(item, extract_dir / item.stem), notebook_name, intake)
        elif item.suffix in SUBMISSION_SUFFIXES:
            student_id, display = parse_student(item.name)
            intake.candidates.append(Candidate(student_id, item, display))
        else:
            intake.problems.append(f"{item}: not a notebook, .py file, folder or .zip archive; skipped")
    by_id: dict[str, list[Candidate]] = {}
    for candidate in intake.candidates:
        by_id.setdefault(candidate.student_id, []).append(candidate)
    intake.candidates = [group[0] for group in by_id.values() if len(group) == 1]
    for student_id, group in by_id.items():
        if len(group) > 1:
            paths = ", ".join(str(c.path) for c in group)
            intake.problems.append(f"student id {student_id!r} appears {len(group)} times ({paths}); none graded")
    return intake
