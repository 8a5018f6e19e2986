"""Start, limit, talk to and kill the sandboxed worker (bubblewrap + rlimits + cgroups)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import SandboxFailure
from grader.grading.spec import Limits
from grader.inside import rpc
from grader.sandbox import uidbox
from grader.sandbox.bwrap import (
    GRADER_PACKAGE_DIR,
    SANDBOX_LIB,
    SANDBOX_UID,
    WORKER_BOOT,
    BoxSettings,
    SandboxMode,
    bwrap_command,
    bwrap_path,
    mounted_sources,
    worker_env,
)
from grader.sandbox.cgroups import BoxCgroup
from grader.sandbox.faults import CallTimeout, InvalidValue, OutOfMemory, StudentError, WorkerCrashed
from grader.sandbox.hostuid import UidMapping, choose_host_uid, drop_privileges

__all__ = ["SANDBOX_UID", "BoxSettings", "SandboxMode", "bwrap_command", "bwrap_path", "worker_env"]


@dataclass
class BoxUsage:
    """Resources one box used, as measured from outside."""

    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    output_bytes: int = 0


def _apply_limits(limits: Limits, cgroup: BoxCgroup | None, mapping: UidMapping) -> None:
    """Runs in the forked child before exec: join the cgroup, set rlimits, drop to the box's uid."""
    if cgroup is not None:
        cgroup.join_self()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    size = limits.file_size_mb * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if cgroup is None:
        # Only without a cgroup: RLIMIT_NPROC counts every process of the host uid, not this box's
        # (the box's bwrap monitor, a box still dying), while pids.max is exact and per box.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        memory = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    drop_privileges(mapping)


class _Drain(threading.Thread):
    """Reads one output pipe to the end, keeping at most ``cap`` bytes."""

    def __init__(self, stream: Any, cap: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            self.total += len(chunk)
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]


class Box:
    """One running worker in its sandbox. Not reusable: after a fault, make a new one."""

    def __init__(self, settings: BoxSettings, zygote: bool = False) -> None:
        self.settings = settings
        self.usage = BoxUsage()
        self.oom_base = 0  # OOM kills before the current child started (zygote mode)
        self.cgroup = BoxCgroup.create(settings.limits.memory_mb, settings.limits.processes)
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        cap = settings.limits.output_bytes
        worker_args = [str(request_r), str(reply_w), str(cap), "zygote" if zygote else "single"]
        self.uid_mapping = UidMapping(os.geteuid())
        if settings.mode == "bwrap":
            command = bwrap_command(settings, worker_args)
            self.uid_mapping = choose_host_uid(command[0], mounted_sources(settings))
            # bwrap itself gets nothing of the grader's environment (issue 11); --clearenv and
            # --setenv then give the worker its own.
            env: dict[str, str] = {"PATH": "/usr/bin:/bin"}
        else:
            command = [
                sys.executable,
                "-I",
                "-B",
                "-c",
                WORKER_BOOT.replace(SANDBOX_LIB, str(GRADER_PACKAGE_DIR.parent)),
                *worker_args,
            ]
            env = {**worker_env(settings.threads), **settings.gpu_view()[1]}
        self.home: Path | None = None
        if settings.mode == "uid":
            uid = uidbox.student_uid()
            uidbox.check_layout(uid, settings.secret_dirs, GRADER_PACKAGE_DIR, settings.data_dir)
            self.uid_mapping, self.home = UidMapping(uid), uidbox.make_home(uid)
            env.update(HOME=str(self.home), TMPDIR=str(self.home))
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_r, reply_w),
                env=env,
                start_new_session=True,
                cwd=self.home,
                preexec_fn=lambda: _apply_limits(settings.limits, self.cgroup, self.uid_mapping),  # noqa: PLW1509 - nothing else runs threads here
            )
        except OSError as exc:  # EAGAIN from a process limit, a missing interpreter: not the student's
            raise SandboxFailure(f"the sandbox could not be started: {exc}") from None
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._drains = [_Drain(self.process.stdout, cap), _Drain(self.process.stderr, cap)]
        for drain in self._drains:
            drain.start()
        self._next_id = 0
        self.dead = False
        self.closed = False
        self.seccomp = ""  # what the worker said of its syscall filter
        self.child_exited = False  # zygote mode: the current child has ended
        self.torch_gpu_peak_mb: int | None = None  # torch's peak as the worker reported it (zygote: this child's)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the worker's hello, sent before any student code runs.

        A box that dies before saying hello is a sandbox failure (bwrap refused to start, the
        interpreter is missing), never the student's fault.
        """
        try:
            hello = rpc.read_frame(self._reply_r, time.monotonic() + timeout_s)
        except (rpc.ChannelClosed, rpc.ChannelTimeout, rpc.FrameError) as exc:
            self.kill()
            self.process.wait()
            for drain in self._drains:
                drain.join(timeout=2)
            detail = bytes(self._drains[1].kept).decode("utf-8", "replace").strip()[-1000:]
            raise SandboxFailure(
                f"the sandbox did not start ({type(exc).__name__}, exit code {self.process.returncode}): "
                f"{detail or 'no message'}. Run `grader doctor` to see what this machine lacks."
            ) from None
        if hello.get("value") != "ready":
            self.kill()
            raise SandboxFailure("the sandbox started but the worker did not identify itself")
        self.seccomp = str(hello.get("seccomp", ""))

    def request(self, op: str, value: Any, timeout_s: float, limit_name: str, **fields: Any) -> Any:
        """Send one request and return the worker's plain-data answer, or raise a SubmissionFault."""
        if self.dead:
            raise WorkerCrashed("the worker had already stopped before this call")
        note = str(fields.pop("limit_note", ""))  # how the limit was derived, for the message
        self._next_id += 1
        request_id = self._next_id
        try:
            rpc.write_all(self._request_w, rpc.encode_frame({"op": op, "id": request_id, **fields}, value))
        except OSError:
            raise self._death_fault() from None
        deadline = time.monotonic() + timeout_s
        try:
            reply = rpc.read_frame(self._reply_r, deadline)
        except rpc.ChannelTimeout:
            self.kill()
            if self._memory_killed():
                raise OutOfMemory(self._memory_message()) from None
            note = f" ({note})" if note else ""
            raise CallTimeout(f"took longer than the {limit_name} of {timeout_s:g} s{note} and was stopped") from None
        except rpc.ChannelClosed:
            raise self._death_fault() from None
        except rpc.FrameError as exc:
            self.kill()  # the stream is out of sync; a fresh worker is needed
            raise InvalidValue(str(exc)) from None
        if "child_exit" in reply:  # a zygote's child ended while we waited for its answer
            self.child_exited = True
            raise self.child_exit_fault(reply["child_exit"])
        if reply.get("id") != request_id:
            self.kill()
            raise InvalidValue("the worker answered out of turn (the submission wrote to the grader's channel)")
        self._note_gpu_peak(reply.get("gpu_peak_mb"))
        if reply.get("ok") is True:
            return reply.get("value")
        message = str(reply.get("message", ""))[:4000]
        kind = reply.get("kind")
        if kind == "invalid":
            raise InvalidValue(message)
        if kind == "memory" and "cuda" in message.lower():
            cap = self.settings.gpu_memory_cap_mb or "the device's"
            raise OutOfMemory(f"ran out of GPU memory ({message[:300]}); the GPU memory limit is {cap} MB")
        if kind == "memory":
            raise OutOfMemory(f"ran out of memory ({message}); the limit is {self.settings.limits.memory_mb} MB")
        raise StudentError(message, exc_type=str(reply.get("exc_type", "")), traceback=str(reply.get("traceback", "")))

    def _note_gpu_peak(self, peak: Any) -> None:
        """The worker's own torch figure (a GPU box only): untrusted, so an int no larger than
        the leased device's memory, and informational (never a limit)."""
        device = self.settings.gpu_device
        if device is None or type(peak) is not int or not 0 <= peak <= device.memory_mb:
            return
        self.torch_gpu_peak_mb = max(self.torch_gpu_peak_mb or 0, peak)

    def send(self, op: str, **fields: Any) -> None:
        """A request that expects no answer (telling a zygote's child to finish)."""
        self._next_id += 1
        rpc.write_all(self._request_w, rpc.encode_frame({"op": op, "id": self._next_id, **fields}))

    def read_child_exit(self, deadline: float) -> dict[str, Any]:
        """Read frames until the zygote reports that its child ended (late answers are dropped)."""
        while True:
            frame = rpc.read_frame(self._reply_r, deadline)
            if "child_exit" in frame:
                return frame

    def _memory_killed(self) -> bool:
        return self.cgroup is not None and self.cgroup.usage().oom_kills > self.oom_base

    def child_exit_fault(self, child_exit: Any) -> Exception:
        """How a zygote's child ended, as the fault of the call it was serving."""
        code = child_exit.get("code", 0) if isinstance(child_exit, dict) else 0
        code = code if type(code) is int else 0
        return self._exit_fault(code)

    def _memory_message(self) -> str:
        return f"ran out of memory: the sandbox's limit of {self.settings.limits.memory_mb} MB was reached"

    def _death_fault(self) -> Exception:
        """Why the worker vanished: memory, CPU time, or a crash (signal or exit)."""
        try:  # the worker is gone or going; give it a moment to say how it ended
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return WorkerCrashed("the submission closed the worker's channel to the grader")
        self.kill()
        return self._exit_fault(code)

    def _exit_fault(self, code: int) -> Exception:
        if self._memory_killed():
            return OutOfMemory(self._memory_message())
        signum = -code if code < 0 else code - 128 if code > 128 else 0
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and self._cpu_exhausted()):
            return CallTimeout(f"used up the CPU time limit of {self.settings.limits.cpu_s} s and was stopped")
        if signum:
            name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
            return WorkerCrashed(f"the worker was killed by signal {name}")
        return WorkerCrashed(
            f"the worker process ended (exit code {code}) during the call; "
            "the submission must not call os._exit, exit() or kill its own process"
        )

    def _cpu_exhausted(self) -> bool:
        return self.cgroup is not None and self.cgroup.usage().cpu_s >= self.settings.limits.cpu_s - 0.5

    def kill(self) -> None:
        """Stop everything in the box at once."""
        self.dead = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if self.settings.mode == "uid":  # no PID namespace: a double fork escapes the group
            uidbox.kill_user_processes(self.uid_mapping.host_uid)

    def close(self) -> BoxUsage:
        """Ask the worker to exit, make sure everything is gone, and return what it used."""
        if self.closed:
            return self.usage
        self.closed = True
        if not self.dead:
            try:
                rpc.write_all(self._request_w, rpc.encode_frame({"op": "exit", "id": 0}))
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.process.wait()
        for drain in self._drains:
            drain.join(timeout=5)
            drain.stream.close()
        for fd in (self._request_w, self._reply_r):
            os.close(fd)
        self._measure()
        if self.cgroup is not None:
            self.cgroup.destroy()
        if self.home is not None:
            uidbox.remove_home(self.home)
        return self.usage

    def _measure(self) -> None:
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            self.usage.cpu_s, self.usage.peak_rss_mb = usage.cpu_s, usage.peak_memory_mb
        self.usage.output_bytes = sum(drain.total for drain in self._drains)

    def output(self) -> str:
        """What the student's code printed, capped, stdout first."""
        return "".join(bytes(d.kept).decode("utf-8", "replace") for d in self._drains)

    def settle_output(self, timeout_s: float = 0.2) -> None:
        """Wait until the drains have read what an ended child wrote (its pipes go quiet)."""
        import select

        deadline = time.monotonic() + timeout_s
        streams = [d.stream for d in self._drains if not d.stream.closed]
        while streams and time.monotonic() < deadline:
            if not select.select(streams, [], [], 0)[0]:
                return
            time.sleep(0.002)

    def reset_output(self) -> int:
        """Start counting output afresh (a zygote's next child); returns the bytes seen so far."""
        seen = sum(d.total for d in self._drains)
        for drain in self._drains:
            drain.kept.clear()
            drain.total = 0
        return seen
