"""One submission's conversation with its sandbox: start, load, call, restart after faults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.errors import SandboxFailure
from grader.grading.report import CellOutcome
from grader.grading.submission import Submission
from grader.sandbox.box import Box, BoxSettings
from grader.sandbox.faults import CallTimeout, NotGraded, NotRun, SubmissionFault
from grader.sandbox.gpu import GpuTimer, gpu_memory_used_mb
from grader.sandbox.zygote import BoxProvider, ZygoteChild

# Starting a sandbox and its interpreter; a loaded machine can take seconds.
STARTUP_TIMEOUT_S = 60.0


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
        self.limits = box_settings.limits
        self.started = time.monotonic()
        self.box: Box | ZygoteChild | None = None
        self.load_fault: SubmissionFault | None = None
        self.cells: list[CellOutcome] | None = None
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

    def _start(self) -> Box | ZygoteChild:
        box = self.provider.worker(self.box_settings, self.preload) if self.provider else Box(self.box_settings)
        self.totals.worker_starts += 1
        try:
            box.wait_ready(timeout_s=STARTUP_TIMEOUT_S)
        except SandboxFailure:
            self._retire(box)
            raise
        load = {
            "cells": [{"index": c.index, "source": c.source} for c in self.submission.cells],
            "probes_source": self.probes_source,
            "preload": self.preload,
            "seed": self.seed,
            "threads": self.box_settings.threads,
        }
        timeout = min(self.limits.load_timeout_s, max(self.remaining_s(), 0.1))
        loading = time.monotonic()
        try:
            note = self.limit_notes.get("load", "")
            result = box.request("load", load, timeout, "time limit for loading the notebook", limit_note=note)
        except SubmissionFault as fault:
            self._retire(box)
            self.load_fault = type(fault)(f"the notebook could not be loaded: {fault.message}")
            raise self._record(self.load_fault) from None
        if self.cells is None:
            self.cells = _cell_outcomes(result)
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
            raise self._record(fault) from None
        if op in ("call", "probe"):
            self.test_returns.append((str(fields.get("name", op)), describe_value(answer)))
            self.test_call_max_s = max(self.test_call_max_s, time.monotonic() - called)
        return answer

    def _retire(self, box: Box | ZygoteChild) -> None:
        usage = box.close()
        self.totals.cpu_s += usage.cpu_s
        self.totals.peak_rss_mb = max(self.totals.peak_rss_mb, usage.peak_rss_mb)
        self.totals.output_bytes += usage.output_bytes
        self.totals.output.append(box.output())

    def close(self) -> SessionTotals:
        if self.box is not None:
            self._retire(self.box)
            self.box = None
        if self.gpu_timer is not None:
            self.totals.gpu_s = self.gpu_timer.used_s
            self.totals.gpu_peak_mb = self.gpu_timer.peak_mb
        return self.totals

    def _gpu_memory_watch(self, box: Box | ZygoteChild) -> Callable[[], int | None] | None:
        """How much GPU memory the box's processes hold (NVML, by the host pids of its cgroup)."""
        device = self.box_settings.gpu_device
        inner = box.box if isinstance(box, ZygoteChild) else box
        if device is None or inner.cgroup is None:
            return None
        cgroup = inner.cgroup
        return lambda: gpu_memory_used_mb(device, set(cgroup.pids()))


def _cell_outcomes(result: Any) -> list[CellOutcome]:
    """Untrusted, display-only: how the worker says each cell ran."""
    outcomes = []
    cells = result.get("cells", []) if isinstance(result, dict) else []
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and isinstance(cell.get("index"), int):
            outcomes.append(
                CellOutcome(index=cell["index"], ok=bool(cell.get("ok")), message=str(cell.get("message", ""))[:2000])
            )
    return outcomes


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
