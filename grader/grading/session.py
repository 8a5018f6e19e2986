"""One submission's conversation with its sandbox: start, load, call, restart after faults."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.errors import SandboxFailure
from grader.grading.report import CellOutcome, CellStatus
from grader.grading.submission import Cell, Submission
from grader.sandbox.box import Box, BoxSettings
from grader.sandbox.faults import (
    CallTimeout,
    NotGraded,
    NotRun,
    OutOfMemory,
    StudentError,
    SubmissionFault,
    WorkerCrashed,
)
from grader.sandbox.gpu import GpuTimer, gpu_memory_used_mb
from grader.sandbox.zygote import BoxProvider, ZygoteChild

# Starting a sandbox and its interpreter; a loaded machine can take seconds.
STARTUP_TIMEOUT_S = 60.0
# How long past a cell's budget the grader waits for the worker's own interrupt before it kills the
# worker (a long operation in compiled code only sees the interrupt when it returns; issue 13).
CELL_GRACE_S = 2.0
# worker.NOT_DEFINED (grading may not import the worker): a call named a function the module lacks.
NOT_DEFINED = "grader.NotDefined"
NOT_DEFINED_MESSAGE = "the submission does not define {name}: check that the cell defining it runs without an error"
NOT_RUN_BLOCKED = "not run: the submission was not run (see the report's message)"
# What the worker may say of where a cell was interrupted; anything else is dropped (untrusted).
_WHERE = re.compile(r" \(in cell \d{1,5}, line \d{1,6}, in (?:[A-Za-z_]\w{0,59}|<[a-z]{1,12}>)\)")


class NotDefined(SubmissionFault):
    """The test called a function the submission does not define: the test fails (issue 13's one wording)."""

    status = "failed"


@dataclass
class SessionTotals:
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    output_bytes: int = 0
    worker_starts: int = 0
    gpu_s: float = 0.0
    gpu_peak_mb: float | None = None
    load_s: float | None = None  # the first load of the notebook, for reference times (issue 20)
    output: list[str] = field(default_factory=list)


class WorkerSession:
    """Serves calls for one submission, starting a fresh worker whenever the last one faulted."""

    def __init__(
        self,
        submission: Submission,
        box_settings: BoxSettings,
        preload: list[str],
        seed: int,
        probes_source: str | None,
        blocked_reason: str | None = None,
        provider: BoxProvider | None = None,
        blocked_status: str = "failed",
    ) -> None:
        self.submission = submission
        self.box_settings = box_settings
        self.preload, self.seed, self.probes_source = preload, seed, probes_source
        self.blocked_reason = blocked_reason
        self.provider = provider
        self.blocked_status = blocked_status
        self.gpu_timer = GpuTimer() if box_settings.gpu_device is not None else None
        self.torch_gpu_peak_mb: int | None = None  # what the workers' torch reported (no NVML needed)
        self.limits = box_settings.limits
        self.started = time.monotonic()
        self.box: Box | ZygoteChild | None = None
        self.load_fault: SubmissionFault | None = None
        self.cells: list[CellOutcome] | None = None
        # Cells that timed out or killed the worker at the first load: not run again when a worker
        # is restarted (no second wait, no second crash); they keep their first outcome.
        self.skipped_cells: dict[int, CellOutcome] = {}
        if blocked_reason is not None:
            self.cells = [_outcome(c, "not_run", NOT_RUN_BLOCKED) for c in submission.cells if c.source.strip()]
        self.totals = SessionTotals()
        self.test_faults: list[SubmissionFault] = []
        # What the submission handed back during the current test: (function, description of the
        # value). A test that raises after this is the submission's failed test, not a grader error.
        self.test_returns: list[tuple[str, str]] = []
        self.test_call_max_s = 0.0  # the current test's longest call, for reference times (issue 20)
        # How a relative limit was derived ("20x the reference's 0.06 s on this machine"), per limit.
        self.limit_notes: dict[str, str] = {}

    def remaining_s(self) -> float:
        return self.limits.submission_timeout_s - (time.monotonic() - self.started)

    def _record(self, fault: SubmissionFault) -> SubmissionFault:
        self.test_faults.append(fault)
        return fault

    def _new_box(self) -> Box | ZygoteChild:
        box = self.provider.worker(self.box_settings, self.preload) if self.provider else Box(self.box_settings)
        self.totals.worker_starts += 1
        try:
            box.wait_ready(timeout_s=STARTUP_TIMEOUT_S)
        except SandboxFailure:
            self._retire(box)
            raise
        return box

    def _start(self) -> Box | ZygoteChild:
        """A worker with the notebook loaded cell by cell, each cell under its own budget (issue 13).

        A cell that does not answer by its budget plus CELL_GRACE_S, or that kills the worker, is
        recorded with its status; the worker is started again, the cells before it are run again,
        and loading goes on after it. The whole load stays under load_timeout_s: cells it leaves no
        time for are recorded as not run.
        """
        loading = time.monotonic()
        load = _Load(self, loading + min(self.limits.load_timeout_s, max(self.remaining_s(), 0.1)))
        while True:
            box = self._new_box()
            try:
                outcomes = load.run(box)
                if outcomes is not None:
                    self.cells = self.cells or outcomes
                    load.probes(box)
                    break
            except SubmissionFault as fault:
                self._retire(box)
                self.load_fault = type(fault)(f"the notebook could not be loaded: {fault.message}")
                if self.cells is None:
                    reason = f"not run: the notebook could not be loaded: {fault.message}"
                    self.cells = [_outcome(c, "not_run", reason) for c in self.submission.cells]
                raise self._record(self.load_fault) from None
            self._retire(box)  # a cell stopped the worker: start again without it
        if self.totals.load_s is None:
            self.totals.load_s = time.monotonic() - loading
        return box

    def _box(self) -> Box | ZygoteChild:
        if self.blocked_reason is not None:
            fault = NotRun if self.blocked_status == "skipped" else NotGraded
            raise self._record(fault(self.blocked_reason))
        if self.load_fault is not None:
            raise self._record(self.load_fault)
        if self.box is None or self.box.dead:
            if self.box is not None:
                self._retire(self.box)
            self.box = self._start()
        return self.box

    def request(self, op: str, value: Any, call_timeout_s: float | None, call_note: str = "", **fields: Any) -> Any:
        """One call into the sandbox under the call and submission time limits."""
        box = self._box()
        per_call = call_timeout_s or self.limits.call_timeout_s
        fields["limit_note"] = call_note
        remaining = self.remaining_s()
        if remaining <= 0:
            raise self._record(
                CallTimeout(
                    f"not run: the submission's total time limit of {self.limits.submission_timeout_s:g} s is used up"
                )
            )
        if remaining < per_call:
            per_call, limit_name = remaining, "rest of the submission's total time limit"
            fields["limit_note"] = self.limit_notes.get("submission", "")
        else:
            limit_name = "time limit per call"
        budget = self.limits.gpu_s
        if self.gpu_timer is not None and budget is not None:
            gpu_left = self.gpu_timer.remaining_s(budget)
            if gpu_left <= 0:
                raise self._record(CallTimeout(f"not run: the GPU time limit (gpu_s) of {budget:g} s is used up"))
            if gpu_left < per_call:
                per_call, limit_name = gpu_left, f"GPU time limit (gpu_s = {budget:g} s, what was left of it)"
        called = time.monotonic()
        try:
            if self.gpu_timer is None:
                answer = box.request(op, value, per_call, limit_name, **fields)
            else:
                with self.gpu_timer.running(self._gpu_memory_watch(box)):
                    answer = box.request(op, value, per_call, limit_name, **fields)
        except SubmissionFault as fault:
            if box.dead:
                self._retire(box)
                self.box = None
            if op == "call" and isinstance(fault, StudentError) and fault.exc_type == NOT_DEFINED:
                fault = NotDefined(NOT_DEFINED_MESSAGE.format(name=fields.get("name", "?")))
            raise self._record(fault) from None
        if op in ("call", "probe"):
            self.test_returns.append((str(fields.get("name", op)), describe_value(answer)))
            self.test_call_max_s = max(self.test_call_max_s, time.monotonic() - called)
        return answer

    def _retire(self, box: Box | ZygoteChild) -> None:
        if box.torch_gpu_peak_mb is not None:
            self.torch_gpu_peak_mb = max(self.torch_gpu_peak_mb or 0, box.torch_gpu_peak_mb)
        usage = box.close()
        self.totals.cpu_s += usage.cpu_s
        self.totals.peak_rss_mb = max(self.totals.peak_rss_mb, usage.peak_rss_mb)
        self.totals.output_bytes += usage.output_bytes
        self.totals.output.append(box.output())

    def names(self) -> dict[str, list[str]]:
        """What the loaded notebook defines (untrusted, display only): its public names and its functions."""
        answer = self.request("names", None, None)
        if not isinstance(answer, dict):
            return {"names": [], "functions": []}
        return {
            key: [str(n) for n in answer.get(key, []) if isinstance(n, str)][:500] for key in ("names", "functions")
        }

    def close(self) -> SessionTotals:
        if self.box is not None:
            self._retire(self.box)
            self.box = None
        if self.cells is None:  # no test called into the notebook: the report still lists its cells
            self.cells = [
                _outcome(c, "not_run", "not run: no test called into the notebook") for c in self.submission.cells
            ]
        if self.gpu_timer is not None:
            self.totals.gpu_s = self.gpu_timer.used_s
            # NVML's samples of the box's processes where NVML is present, else (or if larger)
            # torch's own peak as the worker reported it (issue 20).
            peaks = [p for p in (self.gpu_timer.peak_mb, self.torch_gpu_peak_mb) if p is not None]
            self.totals.gpu_peak_mb = max(peaks) if peaks else None
        return self.totals

    def _gpu_memory_watch(self, box: Box | ZygoteChild) -> Callable[[], int | None] | None:
        """How much GPU memory the box's processes hold (NVML, by the host pids of its cgroup)."""
        device = self.box_settings.gpu_device
        inner = box.box if isinstance(box, ZygoteChild) else box
        if device is None or inner.cgroup is None:
            return None
        cgroup = inner.cgroup
        return lambda: gpu_memory_used_mb(device, set(cgroup.pids()))


class _Load:
    """One load of the notebook into a worker, cell by cell, under one deadline shared by restarts."""

    def __init__(self, session: WorkerSession, deadline: float) -> None:
        self.session, self.deadline = session, deadline
        self.limits = session.limits
        self.note = session.limit_notes.get("load", "")

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def load_limit(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"the time limit for loading the notebook of {self.limits.load_timeout_s:g} s{note}"

    def run(self, box: Box | ZygoteChild) -> list[CellOutcome] | None:
        """Outcomes of every code cell, or None when a cell stopped the worker (then start again)."""
        session = self.session
        setup = {"preload": session.preload, "seed": session.seed, "threads": session.box_settings.threads}
        box.request(
            "setup", setup, max(self.left_s(), 0.1), "time limit for loading the notebook", limit_note=self.note
        )
        outcomes = []
        for cell in session.submission.cells:
            outcome = session.skipped_cells.get(cell.index) or self.run_cell(box, cell)
            if outcome is None:
                return None
            outcomes.append(outcome)
        return outcomes

    def probes(self, box: Box | ZygoteChild) -> None:
        """The hidden tests' probes.py, after the notebook (trusted code; a failure fails every test)."""
        if self.session.probes_source is not None:
            box.request("probes", self.session.probes_source, max(self.left_s(), 5.0), "time limit for loading")

    def run_cell(self, box: Box | ZygoteChild, cell: Cell) -> CellOutcome | None:
        if not cell.source.strip():
            return _outcome(cell, "ok", "", duration_s=0.0)
        left = self.left_s()
        if left <= 0:
            return _outcome(cell, "not_run", f"not run: {self.load_limit()} was used up by the cells before it")
        per_cell = self.limits.cell_timeout_s
        if per_cell is not None and per_cell <= left:
            budget, limit = per_cell, f"the time limit per cell (cell_timeout_s) of {per_cell:g} s"
        else:
            budget, limit = left, f"what was left of {self.load_limit()}"
        request = {"index": cell.index, "source": cell.source, "budget_s": budget}
        started = time.monotonic()
        try:
            answer = box.request("cell", request, budget + CELL_GRACE_S, "time limit per cell")
        except SubmissionFault as fault:
            status, message = _fault_outcome(fault, limit)
            ran_s = round(time.monotonic() - started, 4)
            self.session.skipped_cells[cell.index] = _outcome(cell, status, message, ran_s)
            return None
        outcome = _answer_outcome(cell, answer, limit)
        if outcome.status == "timeout":
            self.session.skipped_cells[cell.index] = outcome
        return outcome


def _outcome(cell: Cell, status: CellStatus, message: str, duration_s: float | None = None) -> CellOutcome:
    return CellOutcome(
        index=cell.index, ok=status == "ok", message=message[:2000], status=status, position=cell.position,
        execution_count=cell.execution_count, first_line=cell.first_line, defines=list(cell.defines),
        duration_s=duration_s,
    )  # fmt: skip


def _fault_outcome(fault: SubmissionFault, limit: str) -> tuple[CellStatus, str]:
    """How a cell ended that stopped the worker (the worker was started again without it)."""
    again = "; the worker was started again, without this cell"
    if isinstance(fault, CallTimeout) and fault.message.startswith("took longer than"):
        return "timeout", f"took longer than {limit} and did not stop when interrupted{again}"
    if isinstance(fault, CallTimeout):
        return "timeout", fault.message + again
    if isinstance(fault, OutOfMemory):
        return "memory", fault.message + again
    if isinstance(fault, WorkerCrashed):
        return "crashed", fault.message + again
    return "crashed", f"the cell broke the worker ({fault.message[:300]}){again}"


def _answer_outcome(cell: Cell, answer: Any, limit: str) -> CellOutcome:
    """Untrusted, display only: how the worker says the cell ran; timeouts are worded here."""
    answer = answer if isinstance(answer, dict) else {}
    duration = answer.get("duration_s")
    duration_s = float(duration) if type(duration) in (int, float) and 0 <= duration < 1e7 else None
    status = answer.get("status")
    if status == "ok":
        return _outcome(cell, "ok", "", duration_s)
    if status == "timeout":
        where = answer.get("where") if isinstance(answer.get("where"), str) else ""
        where = where if _WHERE.fullmatch(where) else ""
        return _outcome(cell, "timeout", f"took longer than {limit} and was interrupted{where}", duration_s)
    return _outcome(cell, "error", str(answer.get("message", "the cell raised"))[:2000], duration_s)


def describe_value(value: Any) -> str:
    """What a returned value is, never what it holds: type, shape and dtype, length (issue 14)."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, tuple | list):
        kinds = ", ".join(type(item).__name__ if not isinstance(item, np.ndarray) else f"array{item.shape}"
                          for item in value[:4])  # fmt: skip
        more = ", ..." if len(value) > 4 else ""
        return f"a {type(value).__name__} of {len(value)} items ({kinds}{more})"
    if isinstance(value, dict):
        return f"a dict of {len(value)} entries"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
