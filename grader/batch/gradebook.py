"""The gradebook: one SQLite file per grading folder, a row per student, committed per report.

stdlib sqlite3 rather than SQLAlchemy: one table and a handful of queries need no ORM, and the
embedded default must need no server and no extra dependency.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from grader import __version__
from grader.errors import UsageError
from grader.grading.report import SubmissionReport, valid_text
from grader.grading.spec import Assignment

GRADEBOOK_FILE = "gradebook.sqlite"
LOCK_FILE = ".grader.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    student_id   TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    sha256       TEXT,
    fingerprint  TEXT NOT NULL,
    status       TEXT NOT NULL,
    score        REAL,
    max_score    REAL NOT NULL,
    report_json  TEXT NOT NULL,
    graded_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attention (
    student_id TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    noted_at   REAL NOT NULL
);
"""


class GradebookBusy(UsageError):
    """Another grading run holds this folder."""


def assignment_fingerprint(assignment: Assignment) -> str:
    """Hash of everything that decides a score: hidden tests, probes, spec, grader version."""
    digest = hashlib.sha256(f"grader {__version__}\n".encode())
    spec_file = assignment.assignment_dir / "assignment.toml"
    files = [spec_file, *sorted(p for p in assignment.hidden_tests_dir.rglob("*") if p.is_file())]
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(f"{path.relative_to(assignment.assignment_dir.parent.parent)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Row:
    student_id: str
    display_name: str
    sha256: str | None
    fingerprint: str
    report: SubmissionReport
    attention: str = ""  # why the last batch could not grade this student again (issue 15): the grade is stale
    graded_at: float = 0.0


class Gradebook:
    """Open with ``Gradebook.open(folder)``; one writer at a time, enforced by a lock file."""

    def __init__(self, folder: Path, connection: sqlite3.Connection, lock: IO[str]) -> None:
        self.folder, self.db, self._lock = folder, connection, lock

    @classmethod
    def open(cls, folder: Path, assignment_name: str) -> Gradebook:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 - held for the gradebook's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise GradebookBusy(
                f"{folder} is being graded by another run ({holder}); wait for it to finish, "
                "or grade into another --out folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        lock.flush()
        db = sqlite3.connect(folder / GRADEBOOK_FILE, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a finished report survives kill -9 and power loss
        db.executescript(SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'assignment'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('assignment', ?)", (assignment_name,))
        elif row[0] != assignment_name:
            db.close()
            lock.close()
            raise UsageError(
                f"{folder} holds grades for assignment {row[0]!r}, not {assignment_name!r}; use another --out folder"
            )
        return cls(folder, db, lock)

    def is_current(self, student_id: str, sha256: str, fingerprint: str) -> bool:
        """Whether this exact file was already graded against this exact assignment."""
        row = self.db.execute(
            "SELECT 1 FROM reports WHERE student_id = ? AND sha256 = ? AND fingerprint = ?"
            " AND status != 'grader_error'",
            (valid_text(student_id), sha256, fingerprint),  # sqlite3 refuses lone surrogates (issue 11)
        ).fetchone()
        return row is not None

    def record(self, report: SubmissionReport, display_name: str, fingerprint: str) -> None:
        """Store one report; committed before this returns (autocommit)."""
        self.db.execute(
            "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report.submission.id, valid_text(display_name), report.submission.sha256, fingerprint, report.status,
                report.score, report.max_score, report.model_dump_json(), time.time(),
            ),
        )  # fmt: skip

    def rows(self) -> Iterator[Row]:
        return _rows(self.db)

    def set_attention(self, reasons: dict[str, str]) -> None:
        """Replace the students the last intake could not grade (duplicates, ambiguous folders) with ``reasons``."""
        now = time.time()
        with self.db:  # one transaction: never half of the old list and half of the new
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM attention")
            self.db.executemany(
                "INSERT OR REPLACE INTO attention VALUES (?, ?, ?)",
                [(valid_text(sid), valid_text(why), now) for sid, why in reasons.items()],
            )

    def close(self) -> None:
        self.db.close()
        self._lock.close()


def read_rows(folder: Path) -> list[Row]:
    """Rows of a gradebook for exports, without taking the writer's lock."""
    path = folder / GRADEBOOK_FILE
    if not path.exists():
        raise UsageError(
            f"{folder} has no {GRADEBOOK_FILE}; grade into it first with `grader grade ... --out {folder}`"
        )
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(_rows(db))
    finally:
        db.close()


def read_attention(folder: Path) -> dict[str, str]:
    """Student id -> why the last batch could not grade them (every id, graded earlier or never)."""
    path = folder / GRADEBOOK_FILE
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT student_id, reason FROM attention ORDER BY student_id").fetchall())
    except sqlite3.OperationalError:  # a gradebook from before the attention table
        return {}
    finally:
        db.close()


def _rows(db: sqlite3.Connection) -> Iterator[Row]:
    columns = "r.student_id, display_name, sha256, fingerprint, report_json"
    try:
        found = db.execute(
            f"SELECT {columns}, COALESCE(a.reason, ''), graded_at FROM reports r "
            "LEFT JOIN attention a ON a.student_id = r.student_id ORDER BY r.student_id"
        ).fetchall()
    except sqlite3.OperationalError:  # a gradebook from before the attention table
        found = db.execute(f"SELECT {columns}, '', graded_at FROM reports r ORDER BY r.student_id").fetchall()
    for student_id, display, sha256, fingerprint, report_json, attention, graded_at in found:
        report = SubmissionReport.model_validate(json.loads(report_json))
        yield Row(student_id, display, sha256, fingerprint, report, attention, graded_at)
