"""GPUs for grading: inventory, leases of a device (or a share of one) and what a sandbox needs to see it."""

# Over ~400 lines: inventory, leases and GPU time/memory accounting share GpuDevice; a split is due
# when the next GPU feature lands.

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Literal

from grader.errors import UsageError

# What runs inside the box lives in grader.inside.cuda; re-exported for the grader's side.
from grader.inside.cuda import MEMORY_CAP_ENV, apply_gpu_memory_cap_in_worker, classify_cuda_error

__all__ = ["MEMORY_CAP_ENV", "apply_gpu_memory_cap_in_worker", "classify_cuda_error"]

GpuPolicy = Literal["none", "optional", "required"]
# "cpu": the assignment never uses a GPU; "gpu": lease one; "cpu-fallback": an optional assignment on
# a machine without GPUs, run on the CPU with its CPU limit scaled; "skip": a required GPU is absent,
# the GPU tests end as `skipped` (never a zero).
GpuPlan = Literal["cpu", "gpu", "cpu-fallback", "skip"]
# Control nodes every CUDA process opens; the per-device node /dev/nvidia<minor> is added per lease.
# /dev/nvidia-caps (MIG) and /dev/nvidia-modeset (display) are deliberately left out.
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")
TORCH_PROBE_TIMEOUT_S = 120.0
# Run in a child: prints [index, name, MiB, uuid, minor] per device. The minor number (the device
# node's) comes from the driver's /proc entry for the device's PCI address, where torch has it.
_TORCH_PROBE = """import json, re, torch
def minor(p):
    try:
        pci = f"{p.pci_domain_id:04x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"
        info = open(f"/proc/driver/nvidia/gpus/{pci}/information").read()
        return int(re.search(r"Device Minor:\\s*(\\d+)", info).group(1))
    except Exception:
        return None
props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
print(json.dumps([[i, p.name, p.total_memory >> 20, str(getattr(p, "uuid", "")), minor(p)]
                  for i, p in enumerate(props)]))"""


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU as the driver numbers it (PCI bus order, the order NVML uses)."""

    index: int
    name: str
    memory_mb: int
    uuid: str = ""
    # The device node is /dev/nvidia<minor>; NVML reports it, None means "same as index" (the torch
    # fallback cannot tell, and on almost every machine they are equal).
    minor: int | None = None

    @property
    def node_name(self) -> str:
        return f"nvidia{self.index if self.minor is None else self.minor}"


def _visible(devices: list[GpuDevice], inherited: str | None) -> list[GpuDevice]:
    """Honour a CUDA_VISIBLE_DEVICES the grader itself was started with (a Slurm allocation)."""
    if inherited is None:
        return devices
    wanted = [item.strip() for item in inherited.split(",") if item.strip()]
    return [d for d in devices if str(d.index) in wanted or (d.uuid and d.uuid in wanted)]


@functools.cache
def _nvml() -> Any:
    """pynvml, initialised once for this process; None without nvidia-ml-py or the driver's libnvidia-ml.

    NVML opens no CUDA context, so forks and spawned pool processes stay free to use CUDA.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - ImportError, NVMLError_LibraryNotFound, _DriverNotLoaded: no NVML
        return None


def _str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _discover_nvml() -> list[GpuDevice] | None:
    pynvml = _nvml()
    if pynvml is None:
        return None
    try:
        devices = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            minor: int | None = None
            with contextlib.suppress(Exception):  # not supported on every platform (WSL)
                minor = int(pynvml.nvmlDeviceGetMinorNumber(handle))
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            # Old nvidia-ml-py versions return bytes.
            name, uuid = (_str(getter(handle)) for getter in (pynvml.nvmlDeviceGetName, pynvml.nvmlDeviceGetUUID))
            devices.append(GpuDevice(index, name, int(memory.total) // 2**20, uuid, minor))
        return devices
    except Exception:  # noqa: BLE001 - a half-broken driver means no usable GPU, never a crash
        return None


def _discover_torch() -> list[GpuDevice]:
    """Devices as torch sees them, asked in a child process: torch.cuda.device_count() runs cuInit
    (unless PYTORCH_NVML_BASED_CUDA_CHECK=1), after which forked children cannot use CUDA.
    """
    if not (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()):
        return []  # no NVIDIA driver: skip the seconds a torch import costs
    env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, env=env, timeout=TORCH_PROBE_TIMEOUT_S
        )
        rows = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else []
        return [
            GpuDevice(int(i), str(name), int(mb), _torch_uuid(str(uuid)), None if minor is None else int(minor))
            for i, name, mb, uuid, minor in rows
        ]
    except (OSError, subprocess.SubprocessError, ValueError, LookupError, TypeError):
        return []


def _torch_uuid(raw: str) -> str:
    """torch prints a bare UUID; CUDA_VISIBLE_DEVICES wants NVML's spelling, GPU-<uuid>."""
    return raw if not raw or raw.startswith(("GPU-", "MIG-")) else f"GPU-{raw}"


def discover_gpus() -> list[GpuDevice]:
    """The GPUs this grader may use: NVML (nvidia-ml-py), else torch in a child process, else none.

    Never raises and never initialises CUDA in this process.
    """
    found = _discover_nvml()
    if found is not None:
        return _visible(found, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return _discover_torch()


def select_gpus(devices: Sequence[GpuDevice], requested: str | None) -> list[GpuDevice]:
    """The devices named by ``--gpus`` ("0,1"; "none" for none); all of them when it is not given."""
    if requested is None:
        return list(devices)
    if requested.strip().lower() == "none":
        return []
    by_index = {d.index: d for d in devices}
    here = f"GPUs here: {', '.join(map(str, by_index))}" if by_index else "no NVIDIA GPU is visible here"
    parts = [part.strip() for part in requested.split(",")]
    if not any(parts):
        raise UsageError(f"--gpus: give GPU indices such as --gpus 0,1, or --gpus none ({here})")
    chosen: list[GpuDevice] = []
    for part in parts:
        if not part.isdigit():
            raise UsageError(f"--gpus: {part!r} is not a GPU index; give indices such as --gpus 0,1 ({here})")
        if int(part) not in by_index:
            raise UsageError(f"--gpus: there is no GPU {part} ({here}); see `nvidia-smi -L`")
        if by_index[int(part)] in chosen:
            raise UsageError(f"--gpus: GPU {part} is named twice")
        chosen.append(by_index[int(part)])
    return chosen


@dataclass(frozen=True)
class Lease:
    """One worker's right to use ``device`` (a 1/jobs_per_gpu share of it) for one submission."""

    device: GpuDevice
    slot: int
    holder: str
    jobs_per_gpu: int
    lease_id: int

    @property
    def fraction(self) -> float:
        """Share of the device, as Ray's fractional ``num_gpus`` would express it."""
        return 1 / self.jobs_per_gpu

    @property
    def memory_cap_mb(self) -> int:
        return self.device.memory_mb // self.jobs_per_gpu


class LeaseManager:
    """Hands out ``jobs_per_gpu`` slots per device to workers of one batch (thread-safe, one process).

    Packing: the least-loaded device first, ties to the lowest index, so two GPUs with two slots
    each are filled 0, 1, 0, 1. Waiters are served first come, first served.
    """

    def __init__(self, devices: Sequence[GpuDevice], jobs_per_gpu: int = 1) -> None:
        if jobs_per_gpu < 1:
            raise UsageError(f"--jobs-per-gpu must be at least 1 (got {jobs_per_gpu})")
        self.devices, self.jobs_per_gpu = list(devices), jobs_per_gpu
        self._free = {d.index: list(range(jobs_per_gpu)) for d in self.devices}
        self._held: dict[int, Lease] = {}
        self._queue: deque[int] = deque()
        self._tickets, self._ids = count(), count(1)
        self._cond = threading.Condition()

    @property
    def capacity(self) -> int:
        return len(self.devices) * self.jobs_per_gpu

    def _pick(self) -> GpuDevice | None:
        open_devices = [d for d in self.devices if self._free[d.index]]
        return min(open_devices, key=lambda d: (self.jobs_per_gpu - len(self._free[d.index]), d.index), default=None)

    def acquire(self, holder: str, timeout_s: float | None = None) -> Lease | None:
        """Wait for a slot; None when ``timeout_s`` passes first or there is no device at all."""
        if not self.devices:
            return None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            try:
                while self._queue[0] != ticket or (device := self._pick()) is None:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                slot = self._free[device.index].pop(0)
                lease = Lease(device, slot, holder, self.jobs_per_gpu, next(self._ids))
                self._held[lease.lease_id] = lease
                return lease
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may take a slot that is still free

    def release(self, lease: Lease) -> bool:
        """Return a lease; False when it was already returned (release is idempotent)."""
        with self._cond:
            if self._held.pop(lease.lease_id, None) is None:
                return False
            self._free[lease.device.index] = sorted([*self._free[lease.device.index], lease.slot])
            self._cond.notify_all()
            return True

    def release_holder(self, holder: str) -> list[Lease]:
        """Return every lease of a worker that died without releasing them."""
        with self._cond:
            mine = [lease for lease in self._held.values() if lease.holder == holder]
        return [lease for lease in mine if self.release(lease)]

    @contextlib.contextmanager
    def leased(self, holder: str, timeout_s: float | None = None) -> Iterator[Lease]:
        """``with manager.leased(job_id) as lease:``; raises TimeoutError when no slot frees up."""
        lease = self.acquire(holder, timeout_s)
        if lease is None:
            raise TimeoutError(f"no GPU slot of {self.capacity} became free within {timeout_s} s for {holder}")
        try:
            yield lease
        finally:
            self.release(lease)

    @property
    def waiting(self) -> int:
        """Workers blocked in acquire(), for a progress line."""
        with self._cond:
            return len(self._queue)

    def load(self) -> dict[int, int]:
        """Leases held per device index."""
        with self._cond:
            return {d.index: self.jobs_per_gpu - len(self._free[d.index]) for d in self.devices}


def sandbox_gpu_args(
    lease: Lease, dev_dir: Path = Path("/dev"), memory_cap_mb: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """Bubblewrap arguments (to follow ``--dev /dev``) and environment that show a box its leased device only."""
    cap = lease.memory_cap_mb if memory_cap_mb is None else min(memory_cap_mb, lease.memory_cap_mb)
    return device_sandbox_args(lease.device, cap, dev_dir)


def device_sandbox_args(
    device: GpuDevice, cap_mb: int, dev_dir: Path = Path("/dev")
) -> tuple[list[str], dict[str, str]]:
    """The same for a device and memory cap already decided (what a box's settings carry).

    Only the control nodes and the device's node are bound, each if it exists under ``dev_dir``.
    The driver's libraries (libcuda, libnvidia-ml) are under /usr, which the sandbox already binds
    read-only; torch's CUDA runtime is in site-packages.
    """
    args: list[str] = []
    for name in (*CONTROL_NODES, device.node_name):
        if (dev_dir / name).exists():
            args += ["--dev-bind", str(dev_dir / name), f"/dev/{name}"]
    env = {
        # A UUID cannot be renumbered by CUDA's device order; the index needs PCI_BUS_ID to match NVML.
        "CUDA_VISIBLE_DEVICES": device.uuid or str(device.index),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        # The worker asks torch for deterministic algorithms; cuBLAS is deterministic only with this.
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        MEMORY_CAP_ENV: str(cap_mb),
    }
    return args, env


def gpu_plan(policy: str, devices: Collection[GpuDevice]) -> GpuPlan:
    """How a submission runs: none -> cpu; optional -> gpu or cpu-fallback; required -> gpu or skip."""
    if policy == "none":
        return "cpu"
    if policy == "optional":
        return "gpu" if devices else "cpu-fallback"
    if policy == "required":
        return "gpu" if devices else "skip"
    raise ValueError(f"unknown GPU policy {policy!r}: use 'none', 'optional' or 'required'")


def cpu_fallback_limits(cpu_s: int, factor: float) -> int:
    """CPU seconds for an optional-GPU assignment graded without a GPU: ``cpu_s * factor``, rounded up."""
    if not factor > 0:
        raise ValueError(f"the CPU fallback factor must be positive (got {factor})")
    return math.ceil(cpu_s * factor)


def _nvml_query(device: GpuDevice, query: str, *args: Any) -> Any:
    """``pynvml.<query>(handle, *args)`` for ``device``; None where NVML is missing or cannot say."""
    pynvml = _nvml()
    try:
        by_uuid = pynvml.nvmlDeviceGetHandleByUUID
        handle = by_uuid(device.uuid) if device.uuid else pynvml.nvmlDeviceGetHandleByIndex(device.index)
        return getattr(pynvml, query)(handle, *args)
    except Exception:  # noqa: BLE001 - no NVML (pynvml is None), unknown device, unsupported, no sample yet
        return None


def gpu_memory_used_mb(device: GpuDevice, pids: Collection[int]) -> int | None:
    """GPU memory held by these host pids (a box's cgroup members), from NVML; None without NVML."""
    processes = _nvml_query(device, "nvmlDeviceGetComputeRunningProcesses")
    if processes is None:
        return None
    return sum(int(p.usedGpuMemory or 0) for p in processes if p.pid in pids) // 2**20


class GpuTimer:
    """GPU seconds: wall time while a lease is held and student code runs, summed over calls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sample_every_s: float = 0.25) -> None:
        self._clock = clock
        self._total_s = 0.0
        self._since: float | None = None
        self._last_sample_us = 0
        self.utilisation_samples: list[int] = []
        self.sample_every_s = sample_every_s
        self.peak_mb: int | None = None  # GPU memory the box held at most, sampled during calls

    def start(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def stop(self) -> float:
        """End the running interval; return the seconds used so far."""
        if self._since is not None:
            self._total_s += self._clock() - self._since
            self._since = None
        return self._total_s

    @property
    def used_s(self) -> float:
        return self._total_s + (0.0 if self._since is None else self._clock() - self._since)

    def remaining_s(self, budget_s: float) -> float:
        return max(0.0, budget_s - self.used_s)

    def over_budget(self, budget_s: float) -> bool:
        return self.used_s > budget_s

    @contextlib.contextmanager
    def running(self, memory_mb: Callable[[], int | None] | None = None) -> Iterator[None]:
        """Count the call's wall time; with ``memory_mb``, sample the box's GPU memory meanwhile.

        The peak is what NVML saw the box's processes hold (``gpu_memory_used_mb``), polled every
        ``sample_every_s`` and once at the end; allocations shorter than that can be missed.
        """
        self.start()
        done = threading.Event()
        sampler = None
        if memory_mb is not None:
            sampler = threading.Thread(target=self._sample_memory, args=(memory_mb, done), daemon=True)
            sampler.start()
        try:
            yield
        finally:
            self.stop()
            done.set()
            if sampler is not None:
                sampler.join()

    def _sample_memory(self, memory_mb: Callable[[], int | None], done: threading.Event) -> None:
        while True:
            with contextlib.suppress(Exception):  # a failed NVML query costs a sample, never the call
                used = memory_mb()
                if used is not None:
                    self.peak_mb = used if self.peak_mb is None else max(self.peak_mb, used)
            if done.wait(self.sample_every_s):
                return

    def sample(self, device: GpuDevice, pids: Collection[int]) -> int | None:
        """Record the SM utilisation (%) of ``pids`` since the last sample; None where NVML cannot say."""
        samples = _nvml_query(device, "nvmlDeviceGetProcessUtilization", self._last_sample_us) or []
        mine = [s for s in samples if s.pid in pids]
        if not mine:
            return None
        self._last_sample_us = max(int(s.timeStamp) for s in mine)
        self.utilisation_samples.append(max(int(s.smUtil) for s in mine))
        return self.utilisation_samples[-1]
