"""`grader gradescope-run NAME`: grade the one submission in Gradescope's container (run_autograder).

The sandbox is the first of the modes the bundle names that works here (bubblewrap, then the
uid sandbox); none working is a grader failure: no results.json, so Gradescope reports the
autograder as failed and staff can rerun it, never a student's zero. results.json is made from
the student view; the full report goes to stdout, which results.json keeps hidden from students.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.batch.exports.gradescope import gradescope_results
from grader.errors import GraderError, SandboxUnavailable, UsageError
from grader.gradescope.layout import Layout
from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import Assignment, load_assignment
from grader.grading.student_view import student_view
from grader.settings import GradeSettings

SUBMISSION_SUFFIXES = (".ipynb", ".py")


@dataclass(frozen=True)
class GradescopeRun:
    """What one run did: the sandbox used (and why others were not), the report, results.json."""

    sandbox: str
    skipped: tuple[str, ...]
    report: SubmissionReport
    results: dict[str, object]


MAX_SUBMISSION_BYTES = 50 * 2**20


def _plain_file(path: Path, folder: Path) -> bool:
    """A regular file inside the upload: never a link (the grader reads it as root: a link to the
    hidden tests or /proc would be graded as student code), never something huge."""
    if path.is_symlink() or not path.is_file():
        return False
    if any(parent.is_symlink() for parent in path.relative_to(folder).parents if parent != Path(".")):
        return False
    return path.stat().st_size <= MAX_SUBMISSION_BYTES


def find_submission(folder: Path, notebook: str) -> Path:
    """The file named like the assignment's notebook, else the only notebook or .py file."""
    if _plain_file(folder / notebook, folder):
        return folder / notebook
    found = sorted(p for p in folder.rglob("*") if p.suffix in SUBMISSION_SUFFIXES and _plain_file(p, folder))
    if len(found) == 1:
        return found[0]
    listed = ", ".join(p.name for p in found[:10]) or "no notebook or .py file"
    raise UsageError(f"upload exactly one notebook, ideally named {notebook}; found: {listed}")


def choose_sandbox(modes: Sequence[str], assignment: Assignment) -> tuple[str, tuple[str, ...]]:
    """The first mode that works here, and one line for each mode that did not."""
    from grader.doctor import probe_sandbox
    from grader.sandbox import uidbox
    from grader.sandbox.bwrap import GRADER_PACKAGE_DIR

    skipped: list[str] = []
    for mode in modes:
        if mode == "bwrap":
            check = probe_sandbox("bwrap")
            if check.ok:
                return "bwrap", tuple(skipped)
            skipped.append(f"bwrap: {check.detail}")
        elif mode == "uid":
            try:
                uid = uidbox.student_uid()
                secrets = (assignment.hidden_tests_dir, assignment.solutions_dir)
                uidbox.check_layout(uid, secrets, GRADER_PACKAGE_DIR, assignment.data_dir)
            except SandboxUnavailable as exc:
                skipped.append(f"uid: {exc}")
                continue
            return "uid", tuple(skipped)
        else:
            raise UsageError(f"unknown sandbox mode {mode!r}: use bwrap, uid or none")
    raise SandboxUnavailable("no sandbox works in this container: " + "; ".join(skipped))


def _no_submission_results(message: str) -> dict[str, object]:
    """The student's own mistake (nothing gradable uploaded): score 0 with the reason, visible."""
    return {"score": 0.0, "output": message, "stdout_visibility": "hidden", "tests": []}


def run_gradescope(layout: Layout, name: str, modes: Sequence[str]) -> GradescopeRun | None:
    """Grade the submission and write results.json; None (nothing written) when the grader failed."""
    assignment = load_assignment(layout.course / "assignments" / name)
    layout.results.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.results, 0o700)  # the grader's alone: student code never writes results.json
    try:
        path = find_submission(layout.submission, assignment.spec.notebook)
    except UsageError as exc:
        layout.results_json.write_text(json.dumps(_no_submission_results(str(exc)), indent=2))
        return None
    sandbox, skipped = choose_sandbox(modes, assignment)
    report = grade(path, assignment, GradeSettings(sandbox=sandbox), submission_id="submission")
    print(report.model_dump_json(indent=2))  # staff only: results.json keeps stdout hidden
    if report.status == "grader_error":
        return GradescopeRun(sandbox, skipped, report, {})
    results = gradescope_results(student_view(report, assignment.spec.feedback))
    results["extra_data"] = {"sandbox": sandbox, "grader_version": report.grader_version}
    layout.results_json.write_text(json.dumps(results, indent=2))
    return GradescopeRun(sandbox, skipped, report, results)


def main(name: str, root: Path | None, modes: Sequence[str]) -> int:
    """The command's body: an exit code, a line for staff."""
    layout = Layout(root) if root is not None else Layout.from_env()
    try:
        run = run_gradescope(layout, name, modes)
    except GraderError as exc:
        print(f"grader error (not the student's fault; rerun after fixing): {exc}")
        return exc.exit_code
    if run is None:
        print("no gradable submission; results.json says why")
        return 0
    for line in run.skipped:
        print(f"sandbox not used: {line}")
    print(f"graded in the {run.sandbox} sandbox: {run.report.status}, {run.report.score} / {run.report.max_score}")
    return 3 if run.report.status == "grader_error" else 0
