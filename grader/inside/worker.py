"""The sandboxed worker: loads the student module cell by cell and serves calls over RPC.

Runs inside bubblewrap as an unprivileged user with a cleared environment. It trusts nothing it
runs and is trusted by nothing: every value it sends back is re-validated by the grader, and no
score is ever decided here. Only the stdlib, grader.inside and the preloaded modules are imported.
"""

# Over ~400 lines on purpose: what runs in the box stays in as few files as a reviewer must read;
# the zygote, cell loading and the sweep share the worker's state.

from __future__ import annotations

import contextlib
import importlib
import io
import os
import random
import sys
import time
import traceback
import types
from typing import Any

from grader.inside import jupyter_builtins, rpc
from grader.inside.alarm import CellAlarm
from grader.inside.cuda import MEMORY_CAP_ENV, torch_gpu_peak_mb

STUDENT_MODULE = "submission"
PROBES_MODULE = "probes"
MAX_MESSAGE_CHARS = 4000


class OutputBudget:
    """Bytes of stdout and stderr together that may still reach the grader's pipes."""

    def __init__(self, cap: int) -> None:
        self.remaining = cap


class CappedStream(io.TextIOBase):
    """A text stream that passes output to ``fd`` until the shared budget is spent, then drops it.

    Dropping here keeps a 2 GB print flood cheap; writes that bypass Python (os.write) are
    capped again by the grader, which drains the pipes.
    """

    def __init__(self, fd: int, budget: OutputBudget) -> None:
        self.fd, self.budget = fd, budget

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.budget.remaining > 0:
            data = text.encode("utf-8", "replace")[: self.budget.remaining]
            self.budget.remaining -= len(data)
            with contextlib.suppress(OSError):  # the grader stopped reading: output is best effort
                rpc.write_all(self.fd, data)
        return len(text)

    def flush(self) -> None:
        pass


def seed_everything(seed: int, threads: int) -> None:
    """Seed every RNG the student may use, so grading is repeatable (issue 3)."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True, warn_only=True)


def _student_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(("<cell", "<probes"))]


def _where(frames: list[traceback.FrameSummary]) -> str:
    """`` (in cell 3, line 5, in forward)``: the innermost line of the student's own code."""
    if not frames:
        return ""
    last = frames[-1]
    return f" (in {last.filename.strip('<>')}, line {last.lineno}, in {last.name})"


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """Type, message and the student's own frames, trimmed for a report."""
    frames = _student_frames(exc)
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    text, where = str(exc), _where(frames)
    if isinstance(exc, SyntaxError) and str(exc.filename).startswith("<cell ") and exc.lineno:
        # "'(' was never closed (<cell 8>, line 5)": the cell's line, named as every other one is
        text, where = str(exc.msg), f" (in {str(exc.filename).strip('<>')}, line {exc.lineno}, in <module>)"
    return {
        "exc_type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {text}"[:MAX_MESSAGE_CHARS] + where,
        "traceback": "".join(lines)[-MAX_MESSAGE_CHARS:],
    }


# The reply's exc_type when a call names a function the module does not define: the grader words
# it ("the submission does not define f: ..."), the same for visible and hidden tests (issue 13).
NOT_DEFINED = "grader.NotDefined"


class Worker:
    """Holds the student module and answers requests until told to exit."""

    def __init__(self, rpc_in: int, rpc_out: int) -> None:
        self.rpc_in, self.rpc_out = rpc_in, rpc_out
        self.module = types.ModuleType(STUDENT_MODULE)
        self.probes: types.ModuleType | None = None
        self.seed, self.threads = 0, 1
        self.alarm = CellAlarm()

    def reply(self, request_id: int, value: Any = None, **fields: Any) -> None:
        header = {"id": request_id, "ok": "kind" not in fields, **fields}
        if MEMORY_CAP_ENV in os.environ:  # a box with a GPU: torch's peak, for when NVML is absent
            peak = torch_gpu_peak_mb()
            if peak is not None:
                header["gpu_peak_mb"] = peak
        try:
            frame = rpc.encode_frame(header, value)
        except rpc.UnsupportedValue as exc:
            frame = rpc.encode_frame({"id": request_id, "ok": False, "kind": "invalid", "message": str(exc)})
        rpc.write_all(self.rpc_out, frame)

    def setup(self, request: dict[str, Any]) -> None:
        """Before the first cell: preloads, seeds, the GPU cap, Jupyter's built-ins."""
        for name in request.get("preload", []):
            importlib.import_module(name)
        self.seed, self.threads = int(request.get("seed", 0)), int(request.get("threads", 1))
        seed_everything(self.seed, self.threads)
        if MEMORY_CAP_ENV in os.environ:  # before any student code touches the GPU
            from grader.inside.cuda import apply_gpu_memory_cap_in_worker

            apply_gpu_memory_cap_in_worker()
        sys.modules[STUDENT_MODULE] = self.module
        jupyter_builtins.install(self.module)

    def load_probes(self, source: str) -> None:
        self.probes = types.ModuleType(PROBES_MODULE)
        exec(compile(source, "<probes>", "exec"), self.probes.__dict__)

    def load(self, request: dict[str, Any]) -> Any:
        """The whole notebook in one request (``grader doctor``); the grader loads cell by cell."""
        self.setup(request)
        budget = request.get("cell_budget_s")
        outcomes = [self.run_cell(cell["index"], cell["source"], budget) for cell in request["cells"]]
        if request.get("probes_source") is not None:
            self.load_probes(request["probes_source"])
        return {"cells": outcomes, "names": self.names()["names"]}

    def names(self) -> dict[str, list[str]]:
        """Public names of the module, and the functions and classes its own cells defined."""
        names = sorted(k for k in vars(self.module) if not k.startswith("_"))
        own = [
            k for k in names if callable(v := vars(self.module)[k]) and getattr(v, "__module__", "") == STUDENT_MODULE
        ]
        return {"names": names, "functions": own}

    def run_cell(self, index: int, source: str, budget_s: float | None = None) -> dict[str, Any]:
        """Run one cell under its time budget; how it ended is data, never a failed request."""
        started = time.monotonic()
        outcome: dict[str, Any] = {"index": index, "ok": True, "status": "ok"}
        try:
            code = compile(source, f"<cell {index}>", "exec")
            self.alarm.arm(budget_s)
            try:
                exec(code, self.module.__dict__)
            finally:
                self.alarm.disarm()
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit too
            self.alarm.disarm()  # again: an interrupt may have landed inside the finally above
            if self.alarm.fired:
                outcome = {"index": index, "ok": False, "status": "timeout", "where": _where(_student_frames(exc))}
            else:
                outcome = {"index": index, "ok": False, "status": "error", **describe_exception(exc)}
        else:
            if self.alarm.fired:  # the cell caught the interrupt and ended on its own
                outcome = {"index": index, "ok": False, "status": "timeout", "where": "", "caught": True}
        outcome["duration_s"] = round(time.monotonic() - started, 4)
        return outcome

    def call(self, request: dict[str, Any]) -> Any:
        args, kwargs = request["value"]
        if request["op"] == "probe":
            if self.probes is None or not hasattr(self.probes, request["name"]):
                raise LookupError(f"probe {request['name']!r} does not exist")
            function = getattr(self.probes, request["name"])
            args = (self.module, *args)
        else:
            function = getattr(self.module, request["name"], None)
            if function is None or not callable(function):
                raise _NotDefined(request["name"])
        seed_everything(self.seed, self.threads)
        return function(*args, **kwargs)

    def serve(self) -> None:
        while True:
            try:
                request = rpc.read_frame(self.rpc_in)
            except rpc.ChannelClosed:
                return
            op, request_id = request.get("op"), request.get("id", 0)
            if op == "exit":
                return
            try:
                result = self.handle(op, request)
            except _NotDefined as exc:
                self.reply(request_id, kind="error", exc_type=NOT_DEFINED, message=f"not defined: {exc.name}")
            except MemoryError as exc:
                self.reply(request_id, kind="memory", **describe_exception(exc))
            except RuntimeError as exc:  # CUDA out of memory arrives as a RuntimeError subclass
                kind = "memory" if _is_cuda_oom(exc) else "error"
                self.reply(request_id, kind=kind, **describe_exception(exc))
            except BaseException as exc:  # noqa: BLE001 - report whatever the student raised
                self.reply(request_id, kind="error", **describe_exception(exc))
            else:
                self.reply(request_id, result)

    def handle(self, op: Any, request: dict[str, Any]) -> Any:
        value: Any = request.get("value")
        if op == "load":
            return self.load(value)
        if op == "setup":
            return self.setup(value)
        if op == "cell":
            return self.run_cell(int(value["index"]), str(value["source"]), value.get("budget_s"))
        if op == "probes":
            return self.load_probes(str(value))
        if op == "names":
            return self.names()
        if op == "has":
            return callable(getattr(self.module, request["name"], None))
        return self.call(request)


class _NotDefined(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Zygote:
    """A warm worker (issue 6): preloads heavy modules once, then forks a fresh child per submission.

    The child serves one submission on the same channel and exits; the zygote then kills every
    other process in the sandbox, wipes the scratch dirs and reports how the child ended. The
    zygote never runs student code, is made non-dumpable so that a child (same uid) cannot
    ptrace it or write its memory, and forks only while it is single-threaded.
    """

    def __init__(self, worker: Worker, budget: OutputBudget, output_cap: int) -> None:
        self.worker, self.budget, self.output_cap = worker, budget, output_cap

    def serve(self) -> None:
        import signal

        # PID 1 gets only the signals it handles: Python's SIGINT handler would let a child end
        # the zygote with os.kill(1, SIGINT). Children get the default handler back (child()).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            try:
                request = rpc.read_frame(self.worker.rpc_in)
            except rpc.ChannelClosed:
                return
            op, request_id = request.get("op"), request.get("id", 0)
            if op == "preload":
                self.preload(request_id, request["value"])
            elif op == "fork":
                self.fork(request_id, request["value"])
            else:
                return

    def preload(self, request_id: int, modules: list[str]) -> None:
        if not _in_own_pid_namespace():
            # The sweep after each child kills every other process it can see: only safe in a
            # PID namespace of our own (bubblewrap's), never with --sandbox none.
            self.worker.reply(request_id, kind="error", exc_type="RuntimeError", message="no PID namespace")
            return
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - reported to the grader, which falls back
            self.worker.reply(request_id, kind="error", **describe_exception(exc))
            return
        _warm_up_torch()
        import ctypes

        ctypes.CDLL(None).prctl(4, 0)  # PR_SET_DUMPABLE = 0: children may not ptrace the zygote
        self.worker.reply(request_id, {"threads": _thread_count()})

    def fork(self, request_id: int, options: dict[str, Any]) -> None:
        if _thread_count() != 1:
            self.worker.reply(request_id, kind="error", exc_type="RuntimeError", message="zygote has threads")
            return
        pid = os.fork()
        if pid == 0:
            self.child(request_id, options)
        while True:  # as PID 1 the zygote also inherits the child's orphans: reap them meanwhile
            reaped, status = os.waitpid(-1, 0)
            if reaped == pid:
                break
        _sweep_sandbox()
        child_exit = {"code": os.waitstatus_to_exitcode(status)}
        rpc.write_all(self.worker.rpc_out, rpc.encode_frame({"id": -1, "ok": False, "child_exit": child_exit}))

    def child(self, request_id: int, options: dict[str, Any]) -> None:
        """In the forked child: own limits, own output budget, then one submission."""
        import resource
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # not PID 1: the kernel's default applies
        cpu_s = int(options["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        self.budget.remaining = self.output_cap
        threads = int(options.get("threads", 1))
        if threads > 1:
            with contextlib.suppress(Exception):  # best effort: BLAS pools stay single-threaded
                import threadpoolctl

                threadpoolctl.threadpool_limits(threads)
        self.worker.reply(request_id, {"pid": os.getpid()})
        self.worker.serve()
        os._exit(0)


def _warm_up_torch() -> None:
    """Pay torch's first-use costs (kernel dispatch, oneDNN set-up: ~1.4 s measured on the cnn
    solution) once in the zygote instead of in every child. One thread only, so no thread pool
    exists at fork time (the fork request re-checks); never touches CUDA.

    With a CUDA build of torch, the first backward pass initialises the CUDA driver and starts
    the autograd engine's device threads (seen on an H100 machine with torch 2.11+cu130: threads
    "cuda…" and "pt_autograd_0", even with no GPU in the box), after which forking is unsafe and
    the zygote would be refused. Such builds warm up the forward pass only.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    with contextlib.suppress(Exception):  # a warm-up failure only costs speed
        torch.set_num_threads(1)
        backward = not torch.backends.cuda.is_built()
        with torch.set_grad_enabled(backward):
            images = torch.randn(4, 1, 8, 8, requires_grad=backward)
            conv = torch.nn.Conv2d(1, 2, 3, padding=1)
            hidden = torch.nn.functional.max_pool2d(torch.relu(conv(images)), 2).flatten(1)
            loss = torch.nn.functional.cross_entropy(
                torch.nn.Linear(hidden.shape[1], 3)(hidden), torch.tensor([0, 1, 2, 0])
            )
            loss = loss + torch.tanh(torch.sigmoid(hidden)).sum()
        if backward:
            optimizer = torch.optim.Adam(conv.parameters(), lr=1e-3)
            loss.backward()
            optimizer.step()


def _is_cuda_oom(exc: BaseException) -> bool:
    if "torch" not in sys.modules:
        return False
    from grader.inside.cuda import classify_cuda_error

    return classify_cuda_error(str(exc)) == "memory"


def _in_own_pid_namespace() -> bool:
    """Whether this process is the init of a PID namespace (bwrap --as-pid-1) that it owns."""
    return os.getpid() == 1


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _sweep_sandbox() -> None:
    """Kill every process a finished child left behind and wipe the scratch dirs."""
    import signal
    import time

    me = os.getpid()
    if me != 1:  # kill(-1) below is only ever meant for the box's own PID namespace
        return
    for _ in range(500):
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not others:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(-1, signal.SIGKILL)  # from the namespace's init: everyone else, forks in flight too
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        time.sleep(0.002)
    for scratch in ("/tmp", "/dev/shm"):
        if os.path.isdir(scratch):
            _wipe(scratch)


def _wipe(directory: str) -> None:
    """Empty a folder without descending into mount points (a read-only venv bound under /tmp)."""
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)  # a student may have locked a folder it created
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                if os.path.ismount(entry.path):
                    continue
                _wipe(entry.path)
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def main() -> None:
    rpc_in, rpc_out, output_cap = (int(arg) for arg in sys.argv[1:4])
    mode = sys.argv[4] if len(sys.argv) > 4 else "single"
    budget = OutputBudget(output_cap)
    sys.stdout = CappedStream(1, budget)
    sys.stderr = CappedStream(2, budget)
    sys.stdin = io.StringIO()
    os.environ.setdefault("MPLBACKEND", "Agg")
    worker = Worker(rpc_in, rpc_out)
    # Before any student code and before the zygote's imports, so every child inherits it.
    from grader.inside import seccomp

    if os.getpid() == 1:
        # The box's init ignores signals it has no handler for: the soft CPU limit (SIGXCPU) would
        # pass unnoticed and the hard one end as a crash; exit the way the grader reads as CPU time.
        import signal

        signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
    worker.reply(0, "ready", seccomp=seccomp.install() or "installed")
    if mode == "zygote":
        Zygote(worker, budget, output_cap).serve()
    else:
        worker.serve()
    os._exit(0)  # skip interpreter teardown: student atexit hooks and threads get no say


if __name__ == "__main__":
    main()
