"""Warm workers (issue 6): one sandbox per grading process imports numpy/torch once, then forks a
fresh child per submission. Where that is not possible, a fresh sandbox per worker start.

Isolation per submission still holds: each child is forked from a zygote that never ran student
code; after it ends, the zygote kills every other process in the box and wipes /tmp and
/dev/shm; the box's cgroup caps memory and processes; the child's CPU limit is its own. Any
fault that could leave the box in doubt (a call timed out, a garbled frame, the zygote died)
throws the whole box away: the next submission gets a new zygote.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from grader.sandbox.box import Box, BoxSettings, BoxUsage
from grader.sandbox.faults import SubmissionFault, WorkerCrashed
from grader.trace import mark

PRELOAD_TIMEOUT_S = 120.0
CHILD_EXIT_TIMEOUT_S = 10.0


class ZygoteUnavailable(Exception):
    """This box cannot fork children (preload failed, threads running): use fresh boxes."""


class Zygote:
    """The grader's handle on a warm worker box."""

    def __init__(self, settings: BoxSettings, preload: list[str], wait: bool = True) -> None:
        self.settings, self.preload = settings, tuple(preload)
        self.children = 0
        # Started from the calling thread: bwrap --die-with-parent ties the box to the thread that
        # started it (PR_SET_PDEATHSIG), so a helper thread may only wait for it (prewarm).
        self.box = Box(settings, zygote=True)
        if wait:
            self.finish_start()

    def finish_start(self) -> None:
        """Wait for the box, preload the modules, set the memory limit on top of the baseline."""
        settings, preload = self.settings, list(self.preload)
        mark("zygote box started")
        self.box.wait_ready(timeout_s=PRELOAD_TIMEOUT_S)
        mark("zygote hello")
        try:
            info = self.box.request("preload", list(preload), PRELOAD_TIMEOUT_S, "time limit for preloading")
        except SubmissionFault as fault:
            self.box.close()
            raise ZygoteUnavailable(f"preloading {preload} failed: {fault.message}") from None
        mark("zygote preloaded")
        if not isinstance(info, dict) or info.get("threads") != 1:
            self.box.close()
            raise ZygoteUnavailable(f"the zygote runs {info} threads after preloading; forking is unsafe")
        if self.box.cgroup is not None:
            baseline_mb = self.box.cgroup.usage().current_memory_mb
            # The limit is the student's own allowance on top of what the zygote already holds.
            self.box.cgroup.set_memory_limit(int(settings.limits.memory_mb + baseline_mb))

    @property
    def alive(self) -> bool:
        return not self.box.dead and self.box.process.poll() is None

    def fork(self) -> ZygoteChild:
        if self.box.cgroup is not None:
            self.box.oom_base = self.box.cgroup.usage().oom_kills
            self.box.cgroup.reset_peak()
        cpu_before = self.box.cgroup.usage().cpu_s if self.box.cgroup is not None else 0.0
        self.box.reset_output()
        self.box.child_exited = False
        self.box.torch_gpu_peak_mb = None  # each child's own (the zygote never starts CUDA)
        options = {"cpu_s": self.settings.limits.cpu_s, "threads": self.settings.threads}
        reply = self.box.request("fork", options, PRELOAD_TIMEOUT_S, "time limit for starting a worker")
        if not isinstance(reply, dict) or type(reply.get("pid")) is not int:
            self.box.kill()
            raise WorkerCrashed("the zygote did not start a worker")
        self.children += 1
        return ZygoteChild(self, cpu_before)

    def close(self) -> None:
        self.box.close()


class ZygoteChild:
    """One submission's worker, forked from a zygote; quacks like a Box for WorkerSession."""

    def __init__(self, zygote: Zygote, cpu_before: float) -> None:
        self.zygote, self.box = zygote, zygote.box
        self.cpu_before = cpu_before
        self.ended = False
        self.printed: str | None = None

    @property
    def dead(self) -> bool:
        return self.ended or self.box.dead

    @property
    def torch_gpu_peak_mb(self) -> int | None:
        """This child's torch GPU peak as its worker reported it (reset at each fork)."""
        return self.box.torch_gpu_peak_mb

    def wait_ready(self, timeout_s: float) -> None:
        """The child said hello when it answered the fork."""

    def request(self, op: str, value: Any, timeout_s: float, limit_name: str, **fields: Any) -> Any:
        if self.dead:
            raise WorkerCrashed("the worker had already stopped before this call")
        try:
            return self.box.request(op, value, timeout_s, limit_name, **fields)
        except SubmissionFault:
            # The child may have raised (it lives on) or ended; or the whole box was killed.
            self.ended = self.box.dead or self.box.child_exited
            raise

    def close(self) -> BoxUsage:
        """Let the child finish, wait for the zygote's sweep, and measure the child alone."""
        if not self.box.dead and not self.ended:
            with contextlib.suppress(OSError):
                self.box.send("exit")
            self.ended = True
            self._await_exit()
        if self.box.dead:
            # Closing the box joins its output drains, so all the child printed is read; waiting
            # for the pipes to go quiet first would wait out settle_output's timeout, since a
            # pipe at its end always reads as ready (0.2 s per timed-out call, issue 20).
            usage = self.box.close()
            self.printed = self.box.output()
            return usage
        self.box.settle_output()
        self.printed = self.box.output()
        usage = BoxUsage(output_bytes=self.box.reset_output())
        if self.box.cgroup is not None:
            measured = self.box.cgroup.usage()
            usage.cpu_s = max(0.0, measured.cpu_s - self.cpu_before)
            usage.peak_rss_mb = measured.peak_memory_mb
        return usage

    def _await_exit(self) -> None:
        try:
            self.box.read_child_exit(time.monotonic() + CHILD_EXIT_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - any doubt about the box: throw it away
            self.box.kill()

    def output(self) -> str:
        return self.printed if self.printed is not None else self.box.output()


_shared: BoxProvider | None = None


def shared_provider() -> BoxProvider:
    """The provider of this process: grading processes keep one warm zygote between submissions."""
    global _shared
    if _shared is None:
        import atexit

        _shared = BoxProvider()
        atexit.register(_shared.close)
    return _shared


class BoxProvider:
    """Hands out workers to WorkerSession: zygote children when possible, else fresh boxes."""

    def __init__(self, use_zygotes: bool = True) -> None:
        self.use_zygotes = use_zygotes
        self.zygote: Zygote | None = None
        self.notes: list[str] = []
        self._warming: threading.Thread | None = None
        self._warmed: Zygote | BaseException | None = None

    def prewarm(self, settings: BoxSettings, preload: list[str]) -> None:
        """Start the zygote in the background, so that its imports (torch: seconds) overlap the
        grading process's own collection of the hidden tests (issue 20); ``worker`` waits for it.
        """
        current = self.zygote
        if not self.use_zygotes or self._warming is not None:
            return
        if current is not None and current.alive and current.settings == settings and current.preload == tuple(preload):
            return

        try:
            starting = Zygote(settings, preload, wait=False)  # in this thread: see Zygote.__init__
        except Exception:  # noqa: BLE001 - worker() starts one itself and reports what fails
            return

        def finish() -> None:
            try:
                starting.finish_start()
                self._warmed = starting
            except BaseException as exc:  # noqa: BLE001 - handed to worker(), which decides
                starting.box.close()
                self._warmed = exc

        self._warming = threading.Thread(target=finish, name="zygote-warm-up", daemon=True)
        self._warming.start()

    def adopt_warmed(self, settings: BoxSettings, preload: list[str]) -> None:
        """Adopt the zygote started by prewarm, if it suits; a failure there is retried in worker()."""
        if self._warming is None:
            return
        self._warming.join()
        warmed, self._warming, self._warmed = self._warmed, None, None
        if isinstance(warmed, Zygote):
            if warmed.settings == settings and warmed.preload == tuple(preload) and self.zygote is None:
                self.zygote = warmed
            else:
                warmed.close()

    def worker(self, settings: BoxSettings, preload: list[str]) -> Box | ZygoteChild:
        if not self.use_zygotes:
            return Box(settings)
        self.adopt_warmed(settings, preload)
        zygote = self.zygote
        if zygote is not None and (not zygote.alive or zygote.settings != settings or zygote.preload != tuple(preload)):
            zygote.close()
            zygote = self.zygote = None
        if zygote is None:
            try:
                zygote = self.zygote = Zygote(settings, preload)
            except ZygoteUnavailable as exc:
                self.notes.append(f"warm worker unavailable, using a fresh sandbox per start: {exc}")
                self.use_zygotes = False
                return Box(settings)
        try:
            return zygote.fork()
        except SubmissionFault as fault:  # the zygote failed, not the student: start afresh
            zygote.close()
            self.zygote = None
            self.notes.append(f"a warm worker failed to fork ({fault.message}); used a fresh sandbox")
            return Box(settings)

    def close(self) -> None:
        if self._warming is not None:
            self._warming.join()
            if isinstance(self._warmed, Zygote):
                self._warmed.close()
            self._warming = self._warmed = None
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
