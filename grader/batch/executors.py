"""Executors: run grade() for many submissions in parallel and stream reports back."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from grader import __version__
from grader.grading.report import Resources, SubmissionInfo, SubmissionReport
from grader.grading.spec import Assignment
from grader.sandbox.gpu import LeaseManager
from grader.settings import GradeSettings

MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Job:
    """One submission to grade, as sent to a pool process."""

    student_id: str
    path: Path


def grade_job(job: Job, assignment: Assignment, settings: GradeSettings) -> str:
    """Runs in a pool process; a bug in the grader becomes a grader_error report, never a crash."""
    from grader.grading.pipeline import grade
    from grader.grading.suite import shared_suites
    from grader.trace import mark

    mark(f"grade {job.student_id} start")
    try:
        report = grade(job.path, assignment, settings, submission_id=job.student_id, suites=shared_suites())
        mark(f"grade {job.student_id} end")
        return report.model_dump_json()
    except Exception as exc:  # noqa: BLE001 - any grader bug must become a report, not a lost job
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return grader_error_report(job, assignment, f"the grader failed: {detail}").model_dump_json()


def grader_error_report(job: Job, assignment: Assignment, message: str) -> SubmissionReport:
    return SubmissionReport(
        grader_version=__version__,
        assignment=assignment.name,
        submission=SubmissionInfo(id=job.student_id, path=str(job.path), sha256=None),
        status="grader_error",
        message=message[:2000],
        score=None,
        max_score=0.0,
        resources=Resources(wall_s=0.0, cpu_s=None, peak_rss_mb=None),
        seed=assignment.spec.seed,
        sandbox="none",
    )


def start_pool_process(assignment: Assignment, settings: GradeSettings, grader_pid: int) -> None:
    """A pool process's initializer: die with the grader, then get warm before the first job."""
    from multiprocessing import util

    die_with_parent()
    die_with_grader(grader_pid)
    util.Finalize(None, close_pool_process, exitpriority=10)
    from grader.trace import mark

    mark(f"pool process started (parent {os.getppid()})")
    from grader.grading.pipeline import warm_up
    from grader.grading.suite import shared_suites

    with contextlib.suppress(Exception):  # only speed is lost; the first job reports what is wrong
        warm_up(assignment, settings, shared_suites())
    mark("pool process warm")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this pool process when its parent (the forkserver) dies."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def die_with_grader(grader_pid: int) -> None:
    """SIGKILL this pool process as soon as the grader process is gone (kill -9 included).

    Pool processes are forked by a forkserver, not by the grader (issue 20), and the forkserver
    lives as long as any of them does, so the parent-death signal alone would not fire. A thread
    waits on a pidfd of the grader (Linux 5.3+), or polls it where pidfds are missing; the
    sandboxes of this process die with it (bwrap --die-with-parent).
    """
    import select
    import signal
    import threading

    def end() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    try:
        pidfd = os.pidfd_open(grader_pid)
    except ProcessLookupError:
        end()  # the grader is already gone
        return
    except (AttributeError, OSError):
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while os.path.exists(f"/proc/{grader_pid}"):
                time.sleep(0.5)
        end()

    threading.Thread(target=watch, name="die-with-grader", daemon=True).start()


def pool_context(assignment: Assignment) -> multiprocessing.context.BaseContext:
    """Pool processes are forked from one preloaded forkserver (issue 20).

    The forkserver imports the grader and the assignment's preloads (torch: ~2 s) once, and each
    pool process is a fork of it: a 2-worker torch batch pays one torch import in the grading
    processes instead of one per worker, while the zygotes' imports in the boxes run beside it.
    The forkserver itself is a fresh interpreter (never a fork of this threaded process), started
    with PYTHONSAFEPATH so that nothing is imported from the working directory (a student's
    torch.py in the folder a TA grades from). It starts once per grader process, with the
    environment and preloads of that moment; a process that grades several batches (the test
    suite) shares it, which costs speed only. Started here, not by the pool's first submit.
    """
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["grader.batch.pool_preload"])
    names = ["grader.batch.executors", "grader.grading.pipeline", *assignment.spec.preload]
    # grader.batch.pool_preload reads this variable: never import that module here.
    with _environment({"GRADER_POOL_PRELOAD": ",".join(names), "PYTHONSAFEPATH": "1"}):
        forkserver.ensure_running()  # returns at once; the forkserver imports in the background
    return context


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """These variables set for a process started inside the block (only the forkserver is)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def close_pool_process() -> None:
    """At a pool process's normal end: close its zygote and its collected tests.

    A forkserver's children end with os._exit, so atexit handlers never run there; this runs as
    a multiprocessing finalizer instead (without it every pool process left its zygote's cgroup
    behind, found by review).
    """
    import resource

    from grader.grading.suite import shared_suites
    from grader.sandbox.zygote import shared_provider
    from grader.trace import mark

    shared_provider().close()
    shared_suites().close()
    mark(f"pool process closed (peak rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB)")


class _NoForkserver(Exception):
    """The pool could not start a process: its forkserver is gone."""


class LocalExecutor:
    """A pool of grader processes; each grade() starts its own sandboxes.

    Pool processes come from a preloaded forkserver (never forked from this threaded process)
    and die with the grader: after a kill -9 of the grader nothing keeps running, and their
    sandboxes die with them. If a pool process dies, the submissions in flight are retried once
    in a fresh pool, then recorded as grader_error.
    """

    def __init__(self, workers: int, leases: LeaseManager | None = None) -> None:
        self.workers = workers
        self.leases = leases

    def _settings_for(self, job: Job, settings: GradeSettings) -> GradeSettings | None:
        """The job's settings with its GPU lease; None when every GPU slot is taken right now."""
        if self.leases is None:
            return settings
        lease = self.leases.acquire(job.student_id, timeout_s=0)
        if lease is None:
            return None
        return settings.model_copy(update={"gpu_device": lease.device, "gpu_memory_cap_mb": lease.memory_cap_mb})

    def _release(self, job: Job) -> None:
        if self.leases is not None:
            self.leases.release_holder(job.student_id)

    def run(self, jobs: list[Job], assignment: Assignment, settings: GradeSettings) -> Iterator[tuple[Job, str]]:
        attempts = {job.student_id: 0 for job in jobs}
        pending = list(reversed(jobs))
        context = pool_context(assignment)
        while pending:
            pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context,
                initializer=start_pool_process, initargs=(assignment, settings, os.getpid()),
            )  # fmt: skip
            running: dict[Future[str], Job] = {}
            try:
                while pending or running:
                    while pending and len(running) < self.workers:
                        job_settings = self._settings_for(pending[-1], settings)
                        if job_settings is None:
                            break  # all GPU slots busy: wait for a job to finish
                        job = pending.pop()
                        try:
                            future = pool.submit(grade_job, job, assignment, job_settings)
                        except (EOFError, OSError) as exc:  # no process could be started
                            self._release(job)
                            pending.append(job)
                            raise _NoForkserver from exc
                        attempts[job.student_id] += 1
                        running[future] = job
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = running[future]
                        result = future.result()  # raises BrokenProcessPool if its process died
                        del running[future]
                        self._release(job)
                        yield job, result
            except _NoForkserver:
                if context.get_start_method() != "forkserver":
                    raise
                # The forkserver is gone (its preload exited or crashed): spawned processes, as
                # before issue 20, are slower to start but need nothing from it.
                for job in running.values():
                    self._release(job)
                    pending.append(job)
                context = multiprocessing.get_context("spawn")
            except BrokenProcessPool:
                for job in running.values():
                    self._release(job)  # a crashed worker returns its lease
                    if attempts[job.student_id] < MAX_ATTEMPTS:
                        pending.append(job)
                    else:
                        report = grader_error_report(job, assignment, "a grading process died twice on this submission")
                        yield job, report.model_dump_json()
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
