"""A Ray executor (issue 7): each submission is a Ray task running the same grade() in the same
sandbox on whichever node Ray places it. Optional: `pip install ".[ray]"`.

What travels: the assignment (spec, visible and hidden tests, probes, data) as one tar archive
put once in Ray's object store, and each submission's bytes as a task argument. A Ray worker
process unpacks the archive once into a private temporary folder (mode 0700) that the sandbox
never mounts, and keeps it, with its warm sandbox and collected tests, for the next tasks of the
same archive; it is deleted when the process exits. Each submission is written to a folder of
its own and deleted after grading. Solutions never travel. A task whose node dies is retried once
by Ray (on another node if one is alive); a second loss becomes a grader_error report.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grader.batch.executors import Job, grader_error_report
from grader.errors import SandboxFailure
from grader.grading.report import SubmissionReport
from grader.grading.spec import Assignment
from grader.settings import GradeSettings

TASK_RETRIES = 1


def pack_assignment(assignment: Assignment) -> bytes:
    """assignments/<name>, autograde_tests/<name> and the data folder as a tar archive (no solutions)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(assignment.assignment_dir, arcname=f"assignments/{assignment.name}")
        tar.add(assignment.hidden_tests_dir, arcname=f"autograde_tests/{assignment.name}",
                filter=lambda info: None if "__pycache__" in info.name else info)  # fmt: skip
        if assignment.data_dir is not None and assignment.spec.data_dir is not None:
            tar.add(assignment.data_dir, arcname=assignment.spec.data_dir)
    return buffer.getvalue()


_unpacked: dict[str, Path] = {}  # archive sha256 -> its course folder, in this Ray worker process


def scratch_root() -> Path:
    """This user's folder for Ray workers' unpacked courses and tasks (0700: nobody else looks in)."""
    root = Path(tempfile.gettempdir()) / f"grader-ray-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    # Someone else may have made it first in a shared /tmp, to swap our folders for links.
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SandboxFailure(f"{root} is not a private folder of this user; remove it and rerun")
    return root


def sweep_dead_scratch(root: Path) -> int:
    """Remove the folders of Ray workers that died without cleaning up (SIGKILL, a lost node).

    Each folder is named ``<kind>-<pid>-...`` after the process that made it; a folder whose
    process is gone is removed (issue 11: a killed worker left autograde_tests/ in /tmp).
    """
    removed = 0
    for folder in root.iterdir():
        parts = folder.name.split("-")
        if len(parts) < 3 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _private_folder(kind: str) -> Path:
    root = scratch_root()
    sweep_dead_scratch(root)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=root))


def _extract(tar: tarfile.TarFile, target: Path) -> None:
    """extractall with the "data" filter; Python before 3.11.4 (Debian 12's 3.11.2) has no filters,
    so there every member is checked the same way first: plain files and folders inside target."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    for member in tar.getmembers():
        inside = (target / member.name).resolve().is_relative_to(target.resolve())
        if not inside or not (member.isfile() or member.isdir()):
            raise SandboxFailure(f"the assignment archive holds {member.name!r}, which may not be extracted")
    tar.extractall(target)  # noqa: S202 - every member was checked above


def _course_folder(bundle: bytes, digest: str, name: str) -> Path:
    """The archive unpacked once per worker process, so its tests are collected once (issue 6).

    Removed when the process exits normally; what a killed worker leaves is swept by the next
    task on that node (``sweep_dead_scratch``).
    """
    course = _unpacked.get(digest)
    if course is None or not course.is_dir():
        scratch = _private_folder("course")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            _extract(tar, scratch / "course")
        (scratch / "course" / "solutions" / name).mkdir(parents=True)
        course = _unpacked[digest] = scratch / "course"
    return course


def grade_on_node(bundle: bytes, meta: dict[str, Any], data: bytes) -> tuple[str, str]:
    """The Ray task body: unpack privately, grade, clean up; returns (report JSON, node id)."""
    import ray

    from grader.grading.pipeline import grade
    from grader.grading.spec import load_assignment
    from grader.grading.suite import shared_suites

    name, student_id, filename = meta["assignment"], meta["student_id"], meta["filename"]
    settings = GradeSettings.model_validate_json(meta["settings"])
    settings = _with_ray_gpu(settings, ray.get_gpu_ids(), meta["jobs_per_gpu"])
    node_id = ray.get_runtime_context().get_node_id()
    course = _course_folder(bundle, meta["bundle_sha256"], name)
    scratch = _private_folder("task")
    try:
        submission = scratch / filename
        submission.write_bytes(data)
        assignment = load_assignment(course / "assignments" / name)
        report = grade(submission, assignment, settings, submission_id=student_id, suites=shared_suites())
        return report.model_dump_json(), node_id
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _with_ray_gpu(settings: GradeSettings, gpu_ids: list[Any], jobs_per_gpu: int) -> GradeSettings:
    """Lease the device Ray assigned to this task (its share: 1/jobs_per_gpu of the memory)."""
    if not gpu_ids:
        return settings
    from grader.sandbox.gpu import discover_gpus

    assigned = {str(gpu_id) for gpu_id in gpu_ids}
    devices = [d for d in discover_gpus() if str(d.index) in assigned or d.uuid in assigned]
    if not devices:
        return settings  # a declared but absent GPU (a test cluster): graded by the CPU policy
    device = devices[0]
    return settings.model_copy(update={"gpu_device": device, "gpu_memory_cap_mb": device.memory_mb // jobs_per_gpu})


class RayExecutor:
    """Runs jobs as Ray tasks; results stream back in completion order."""

    def __init__(self, address: str | None = None, jobs_per_gpu: int = 1) -> None:
        self.address, self.jobs_per_gpu = address, jobs_per_gpu
        self.placements: dict[str, str] = {}  # student id -> node id, for reports and tests

    def run(self, jobs: list[Job], assignment: Assignment, settings: GradeSettings) -> Iterator[tuple[Job, str]]:
        if self.address is None:
            # A Ray of our own on this machine stays on loopback (read when ray is first imported).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        gpu = assignment.spec.gpu != "none"
        remote = ray.remote(grade_on_node).options(
            num_cpus=1,
            num_gpus=(1 / self.jobs_per_gpu) if gpu else 0,
            max_retries=TASK_RETRIES,  # a lost node or killed worker: once more elsewhere
            retry_exceptions=False,  # a grader bug is not retried: it becomes a report below
        )
        packed = pack_assignment(assignment)
        bundle, bundle_sha256 = ray.put(packed), hashlib.sha256(packed).hexdigest()
        settings_json = settings.model_dump_json()
        pending: dict[Any, Job] = {}
        for job in jobs:
            meta = {"assignment": assignment.name, "student_id": job.student_id, "filename": job.path.name,
                    "settings": settings_json, "jobs_per_gpu": self.jobs_per_gpu,
                    "bundle_sha256": bundle_sha256}  # fmt: skip
            ref = remote.remote(bundle, meta, job.path.read_bytes())
            pending[ref] = job
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            job = pending.pop(ref)
            try:
                report_json, node_id = ray.get(ref)
                self.placements[job.student_id] = node_id
                report = SubmissionReport.model_validate_json(report_json)
                report.submission.path = str(job.path)  # the driver's path, as the local executor reports
                report_json = report.model_dump_json()
            except Exception as exc:  # noqa: BLE001 - Ray raises many types for lost tasks
                reason = f"the grading task was lost twice ({type(exc).__name__}); rerun this submission"
                report_json = grader_error_report(job, assignment, reason).model_dump_json()
            yield job, report_json
