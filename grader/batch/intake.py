"""Collect submissions from files, folders and LMS export archives, one per student id.

Accepted naming (documented in the README):
- a file: the student id is its stem (``alice.ipynb`` -> ``alice``);
- a folder of files: one file per student, as above;
- a folder of folders: one sub-folder per student, named by id, holding the notebook;
- Moodle/StudIP exports: ``Lastname Firstname_12345_assignsubmission_file_[name.ipynb]`` as a
  file or folder name; the id is the participant number (``12345``), the name is kept for display;
- a .zip archive of any of the above, extracted safely first.

Every name is data (issue 11): an id is made a safe file name once, here (``safe_path_component``),
and the name as found is kept, printable, for display. An input that cannot be read, a bad archive
member and a student named twice are refused with one line each in ``Intake.problems``; the rest of
the batch goes on.
"""

# Over ~400 lines: every check on untrusted names and archive members is here, in one reading order.

from __future__ import annotations

import os
import re
import shutil
import stat
import time
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from grader.batch.paths import safe_path_component
from grader.errors import UsageError
from grader.grading.report import printable

SUBMISSION_SUFFIXES = (".ipynb", ".py")
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<id>[0-9]+)_assignsubmission_[a-z]+_?(?P<rest>.*)$")
MAX_MEMBERS = 5000
MAX_MEMBER_BYTES = 50 * 2**20
MAX_TOTAL_BYTES = 2 * 2**30
MAX_RATIO = 200  # uncompressed / compressed, for members big enough to matter
RATIO_FLOOR_BYTES = 2**20
NAME_MAX_BYTES = 255  # one path component: the limit of Linux file systems (ENAMETOOLONG beyond)
MAX_MEMBER_NAME_BYTES = 1024  # a whole member path, well inside PATH_MAX (4096) with the destination
# Characters no file name needs and that make one lie on screen: controls (a newline starts a fake
# line), format characters (U+202E turns "gpj.exe" around), line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


class ArchiveError(UsageError):
    """An archive that cannot be extracted safely; the message names the archive and the member."""


@dataclass(frozen=True)
class Candidate:
    """One student's submission file, found in the inputs."""

    student_id: str
    path: Path
    display_name: str = ""
    name_as_found: str = ""  # the id before it was made safe; two equal up to case are one student twice


@dataclass
class Intake:
    """What was found: submissions to grade and problems a TA must look at."""

    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Student id -> one line on why it was not graded this time (a grade from an earlier run is stale, issue 15).
    attention: dict[str, str] = field(default_factory=dict)
    # Files in the inputs' folders that are not submissions (a Moodle onlinetext page), listed once (issue 15).
    ignored: list[str] = field(default_factory=list)


def _split_name(name: str) -> tuple[str, str]:
    """(id as the name gives it, display name as the name gives it)."""
    stem = name
    for suffix in SUBMISSION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    match = MOODLE_NAME.match(stem)
    if match:
        return match.group("id"), match.group("name").strip()
    return stem, ""


def parse_student(name: str) -> tuple[str, str]:
    """(safe student id, printable display name) from a file or folder name.

    The display name is the Moodle name where there is one, else the name as found when making the
    id safe changed it (``Doe Jane.ipynb`` -> ``Doe_Jane-<hash>``, shown as ``Doe Jane``), else empty.
    """
    raw_id, display = _split_name(name)
    student_id = safe_path_component(raw_id)
    if not display and student_id != raw_id:
        display = raw_id
    return student_id, printable(display)


def _candidate(name: str, path: Path) -> Candidate:
    student_id, display = parse_student(name)
    return Candidate(student_id, path, display, _split_name(name)[0])


def _shown(path: Path | str) -> str:
    return printable(str(path))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _is_submission(path: Path) -> bool:
    return path.is_file() and path.suffix in SUBMISSION_SUFFIXES and not path.name.startswith(".")


def _from_folder(folder: Path, notebook_name: str, intake: Intake) -> None:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        intake.problems.append(f"{_shown(folder)}: cannot be read ({_reason(exc)}); nothing graded from it")
        return
    for entry in entries:
        if entry.name.startswith((".", "__MACOSX")):
            continue
        try:
            _from_entry(entry, notebook_name, intake)
        except OSError as exc:  # ENAMETOOLONG, EACCES, ELOOP...: this entry only (issue 11)
            intake.problems.append(f"{_shown(entry)}: cannot be read ({_reason(exc)}); nothing graded from it")


def _not_a_file_submission(name: str) -> bool:
    """A Moodle entry of another submission plugin (``..._assignsubmission_onlinetext_``): not a notebook."""
    match = MOODLE_NAME.match(name)
    return match is not None and "_assignsubmission_file_" not in name


def _from_entry(entry: Path, notebook_name: str, intake: Intake) -> None:
    if _is_submission(entry):
        intake.candidates.append(_candidate(entry.name, entry))
    elif entry.is_dir():
        found = _candidate(entry.name, entry)  # the folder names the student
        files = sorted(p for p in entry.rglob("*") if _is_submission(p) and ".ipynb_checkpoints" not in p.parts)
        preferred = [p for p in files if p.name == notebook_name] or [p for p in files if p.suffix == ".ipynb"]
        if len(preferred) == 1 or len(files) == 1:
            intake.candidates.append(replace(found, path=(preferred or files)[0]))
        elif not files and _not_a_file_submission(entry.name):
            intake.ignored.append(_shown(entry.name) + "/")
        elif not files:
            why = f"{_shown(entry)}: no notebook or .py file inside; nothing graded for {found.student_id}"
            intake.problems.append(why)
            intake.attention[found.student_id] = "no notebook or .py file in the student's folder"
        else:
            names = ", ".join(_shown(p.relative_to(entry)) for p in files[:5])
            intake.problems.append(
                f"{_shown(entry)}: {len(files)} candidate files ({names}); not guessing which one to grade "
                f"for {found.student_id}: keep one, or name it {notebook_name}"
            )
            intake.attention[found.student_id] = f"{len(files)} candidate files in the student's folder"
    elif entry.is_file():
        intake.ignored.append(_shown(entry.name))


# ------------------------------------------------------------------------------------ archives


def safe_extract(archive: Path, destination: Path) -> list[str]:
    """Extract a zip into ``destination`` (replacing what an earlier run left there), every member checked.

    Raise ArchiveError, extracting nothing, for what makes the whole archive suspect: unreadable,
    too many members, a path leaving the archive, a link, a device, a bomb. Refuse one student's
    entry (its top-level file or folder, so that no other file of theirs is graded in its place)
    for a bad name (too long, a control or text-direction character, duplicated, or equal to
    another up to case) or any error writing it; return one line per refused entry.
    """
    label = printable(archive.name)
    try:
        zf = zipfile.ZipFile(archive)
    except UnicodeDecodeError:
        raise ArchiveError(f"{label} is not a readable zip archive (a member name is not valid UTF-8)") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{label} is not a readable zip archive ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise ArchiveError(f"{label} has {len(members)} members, over the cap of {MAX_MEMBERS}")
        for member in members:
            _check_member(label, member)
        refused = _refused_entries(label, members)
        partial = destination.with_name(destination.name + ".partial")
        try:
            _remove(partial)
            partial.mkdir(parents=True)
            _extract_members(zf, members, partial, label, refused)
            _remove(destination)
            partial.rename(destination)
        except OSError as exc:
            _remove(partial)
            raise ArchiveError(
                f"{label} could not be extracted to {printable(str(destination))} ({_reason(exc)})"
            ) from None
        except BaseException:
            _remove(partial)  # never half an archive: what was written so far goes too
            raise
    return list(refused.values())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _check_member(label: str, member: zipfile.ZipInfo) -> None:
    name = member.filename
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise ArchiveError(f"{label}: member {_quoted(name)} points outside the archive (path traversal)")
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{label}: member {_quoted(name)} is a symbolic link; links are not accepted")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: archiver stored no file type
        raise ArchiveError(f"{label}: member {_quoted(name)} is not a regular file")
    if member.file_size > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{label}: member {_quoted(name)} is {member.file_size} bytes, over the 50 MB cap")
    if member.file_size > RATIO_FLOOR_BYTES and member.file_size > MAX_RATIO * max(member.compress_size, 1):
        raise ArchiveError(f"{label}: member {_quoted(name)} expands more than {MAX_RATIO}x (a zip bomb?)")


def _quoted(name: str, limit: int = 100) -> str:
    """A member name for a message: repr (so a newline or U+202E shows as an escape), long ones cut."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + f"... ({len(name)} characters)"


def _entry(name: str) -> str:
    """The student's entry a member belongs to: the first part of its path."""
    parts = PurePosixPath(name).parts
    return parts[0] if parts else name


def _name_problem(name: str) -> str | None:
    """Why a member's name cannot become a file name as it is, or None. Checked before extracting."""
    if not PurePosixPath(name).parts:
        return "has an empty name"
    odd = next((ch for ch in name if unicodedata.category(ch) in _REFUSED_CATEGORIES), None)
    if odd is not None:
        return f"has a control or text-direction character ({ascii(odd)}) in its name"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_MEMBER_NAME_BYTES:
        return f"has a name of {size} bytes, over the {MAX_MEMBER_NAME_BYTES} byte limit"
    for part in PurePosixPath(name).parts:
        if (size := len(part.encode("utf-8", "surrogatepass"))) > NAME_MAX_BYTES:
            return f"has a name part of {size} bytes, over the {NAME_MAX_BYTES} byte limit of a file name"
    return None


def _fold(name: str) -> str:
    """Equal for names that a case-insensitive or normalising file system would store as one."""
    return unicodedata.normalize("NFC", name).casefold()


def _refused_entries(label: str, members: list[zipfile.ZipInfo]) -> dict[str, str]:
    """Entry -> the one line saying why it is refused, for every entry a bad member name belongs to."""
    refused: dict[str, str] = {}

    def refuse(name: str, why: str) -> None:
        entry = _entry(name)
        refused.setdefault(entry, f"{label}: member {_quoted(name)} {why}; nothing graded from {_quoted(entry)}")

    files: set[str] = set()
    folded: dict[str, str] = {}  # folded path prefix -> the first spelling seen
    for member in members:
        name = member.filename
        problem = _name_problem(name)
        if problem is not None:
            refuse(name, problem)
            continue
        path = name.rstrip("/")
        if not member.is_dir():
            if path in files:
                refuse(name, "appears twice in the archive")
                continue
            files.add(path)
        parts = PurePosixPath(path).parts
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            first = folded.setdefault(_fold(prefix), prefix)
            if first != prefix:
                refuse(name, f"differs from {_quoted(first)} only in upper/lower case")
                refuse(first, f"differs from {_quoted(prefix)} only in upper/lower case")
                break
    return refused


def _extract_members(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path, label: str, refused: dict[str, str]
) -> None:
    total = 0
    for member in members:
        entry = _entry(member.filename)
        if entry in refused:
            continue
        target = folder.joinpath(*PurePosixPath(member.filename).parts)
        try:
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            total += _copy_member(zf, member, target, label, MAX_TOTAL_BYTES - total)
            _keep_member_time(target, member)
        except ArchiveError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever reading or writing these bytes raises is about them
            why = _reason(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            refused[entry] = (
                f"{label}: member {_quoted(member.filename)} could not be extracted ({why}); "
                f"nothing graded from {_quoted(entry)}"
            )
            _remove(folder / entry)


def _keep_member_time(target: Path, member: zipfile.ZipInfo) -> None:
    """The member's time (the LMS's time of the file, local time) as the file's, for late work (issue 15)."""
    try:
        when = time.mktime((*member.date_time, 0, 0, -1))
        os.utime(target, (when, when))
    except (OverflowError, ValueError, OSError):
        pass  # a nonsense date in the header: the extraction time stays, and the late check warns about file times


def _copy_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, label: str, budget: int) -> int:
    """Stream one member, counting real bytes: declared sizes in the header can lie."""
    written = 0
    with zf.open(member) as source, open(target, "wb") as sink:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > MAX_MEMBER_BYTES or written > budget:
                sink.close()
                target.unlink()
                raise ArchiveError(
                    f"{label}: member {_quoted(member.filename)} expands past its size cap (a zip bomb?)"
                )
            sink.write(chunk)
    return written


# ------------------------------------------------------------------------------------ collect


def collect(inputs: list[Path], notebook_name: str, extract_dir: Path) -> Intake:
    """Find every student's submission in ``inputs``; what cannot be taken is reported, one line each.

    A missing input is the TA's typo and stops here (UsageError); an input that cannot be read, a
    bad archive, a refused archive member and a student found twice become ``problems``.
    """
    intake = Intake()
    destinations: set[str] = set()
    for item in inputs:
        try:
            exists = item.exists()
        except OSError as exc:
            intake.problems.append(f"{_shown(item)}: cannot be read ({_reason(exc)}); nothing graded from it")
            continue
        if not exists:
            raise UsageError(f"{_shown(item)} does not exist")
        try:
            _collect_input(item, notebook_name, extract_dir, destinations, intake)
        except ArchiveError as exc:
            intake.problems.append(f"{exc}; nothing from this archive was graded")
        except OSError as exc:
            intake.problems.append(f"{_shown(item)}: cannot be read ({_reason(exc)}); nothing graded from it")
    intake.candidates = _one_per_student(intake.candidates, intake.problems, intake.attention)
    return intake


def _collect_input(item: Path, notebook_name: str, extract_dir: Path, destinations: set[str], intake: Intake) -> None:
    if item.is_dir():
        _from_folder(item, notebook_name, intake)
    elif item.suffix.lower() == ".zip":
        base = name = safe_path_component(item.stem)
        while name in destinations:  # two archives called export.zip must not share a folder
            name = f"{base}-{len(destinations) + 1}"
        destinations.add(name)
        intake.problems += safe_extract(item, extract_dir / name)
        _from_folder(extract_dir / name, notebook_name, intake)
    elif item.suffix in SUBMISSION_SUFFIXES:
        intake.candidates.append(_candidate(item.name, item))
    else:
        intake.problems.append(f"{_shown(item)}: not a notebook, .py file, folder or .zip archive; skipped")


def _one_per_student(candidates: list[Candidate], problems: list[str], attention: dict[str, str]) -> list[Candidate]:
    """Drop every student found more than once (same id, or names equal up to case), one line each."""
    twice: set[int] = set()
    for group in _groups(candidates):
        if len(group) == 1:
            continue
        twice.update(group)
        same = [candidates[i] for i in group]
        paths = ", ".join(_shown(c.path) for c in same)
        spellings = sorted({c.name_as_found or c.student_id for c in same})
        for candidate in same:
            attention[candidate.student_id] = f"{len(same)} submissions found for one student ({paths}); none graded"
        if len(spellings) == 1:
            problems.append(f"student id {same[0].student_id!r} appears {len(same)} times ({paths}); none graded")
        else:
            names = ", ".join(repr(printable(s)) for s in spellings)
            problems.append(
                f"student names {names} are one name up to upper/lower case or accents ({paths}); none graded: "
                "their files would collide on a case-insensitive disk; rename all but one"
            )
    return [c for i, c in enumerate(candidates) if i not in twice]


def _groups(candidates: list[Candidate]) -> list[list[int]]:
    """Indices of candidates that are one student: equal safe ids or names, up to case (union-find)."""
    parent = list(range(len(candidates)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in (_keys(c.student_id for c in candidates), _keys(c.name_as_found for c in candidates)):
        for indices in keys.values():
            for other in indices[1:]:
                parent[root(other)] = root(indices[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(candidates)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _keys(names: Iterable[str]) -> dict[str, list[int]]:
    keys: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name:
            keys.setdefault(_fold(name), []).append(i)
    return keys
