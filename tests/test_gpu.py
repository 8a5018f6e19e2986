"""GPU inventory, leases and sandbox arguments, tested with an injected inventory (no GPU needed)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from grader.errors import UsageError
from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.sandbox import gpu
from grader.sandbox.gpu import (
    GpuDevice,
    GpuTimer,
    LeaseManager,
    apply_gpu_memory_cap_in_worker,
    classify_cuda_error,
    cpu_fallback_limits,
    discover_gpus,
    gpu_memory_used_mb,
    gpu_plan,
    sandbox_gpu_args,
    select_gpus,
)
from grader.settings import GradeSettings

TWO_GPUS = [
    GpuDevice(0, "NVIDIA H100 80GB HBM3", 81_559, "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
    GpuDevice(1, "NVIDIA H100 80GB HBM3", 81_559, "GPU-bbbbbbbb-1111-1111-1111-111111111111"),
]


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# --- packing and fairness ------------------------------------------------------------------


def test_two_gpus_two_jobs_each_are_packed_0_1_0_1() -> None:
    manager = LeaseManager(TWO_GPUS, jobs_per_gpu=2)
    leases = [manager.acquire(f"worker-{n}", timeout_s=0) for n in range(4)]
    assert [(lease.device.index, lease.slot) for lease in leases if lease] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert manager.load() == {0: 2, 1: 2}


def test_lease_carries_its_share_of_the_device() -> None:
    lease = LeaseManager(TWO_GPUS, jobs_per_gpu=4).acquire("worker-0")
    assert lease is not None
    assert lease.fraction == 0.25
    assert lease.memory_cap_mb == 81_559 // 4


def test_the_least_loaded_device_gets_the_next_job() -> None:
    manager = LeaseManager(TWO_GPUS, jobs_per_gpu=3)
    first, second, third = (manager.acquire(name) for name in ("a", "b", "c"))
    assert first and second and third and third.device.index == 0
    manager.release(first)
    manager.release(third)  # device 0 now idle, device 1 still busy with b
    fourth = manager.acquire("d")
    assert fourth is not None and fourth.device.index == 0 and fourth.slot == 0


def test_a_full_manager_returns_none_after_the_timeout() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=2)
    assert manager.acquire("a") and manager.acquire("b")
    started = time.monotonic()
    assert manager.acquire("c", timeout_s=0.2) is None
    assert 0.15 <= time.monotonic() - started < 2
    assert manager.acquire("d", timeout_s=0) is None


def test_a_blocked_acquire_gets_the_slot_that_is_released() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=1)
    held = manager.acquire("a")
    assert held is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(manager.acquire("b", timeout_s=5)))
    waiter.start()
    time.sleep(0.1)
    assert got == []  # still blocked
    manager.release(held)
    waiter.join(timeout=5)
    assert len(got) == 1 and getattr(got[0], "holder", None) == "b"


def test_waiters_are_served_first_come_first_served() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=1)
    held = manager.acquire("running")
    assert held is not None
    order: list[str] = []

    def wait_for_lease(name: str) -> None:
        lease = manager.acquire(name, timeout_s=5)
        assert lease is not None
        order.append(name)
        time.sleep(0.05)
        manager.release(lease)

    threads = []
    for queued, name in enumerate(("first", "second", "third"), start=1):
        threads.append(threading.Thread(target=wait_for_lease, args=(name,)))
        threads[-1].start()
        wait_until(functools.partial(lambda count: manager.waiting == count, queued))
    manager.release(held)
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["first", "second", "third"]


def test_a_waiter_that_times_out_does_not_block_the_queue() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=1)
    held = manager.acquire("running")
    assert held is not None
    assert manager.acquire("impatient", timeout_s=0.05) is None
    manager.release(held)
    assert manager.acquire("next", timeout_s=0) is not None


def test_a_crashed_workers_leases_are_returned() -> None:
    manager = LeaseManager(TWO_GPUS, jobs_per_gpu=1)
    crashed = manager.acquire("worker-7")
    other = manager.acquire("worker-8")
    assert crashed is not None and other is not None
    assert manager.acquire("worker-9", timeout_s=0) is None
    assert manager.release_holder("worker-7") == [crashed]
    assert manager.release_holder("worker-7") == []
    replacement = manager.acquire("worker-9", timeout_s=0)
    assert replacement is not None and replacement.device == crashed.device
    assert manager.release(crashed) is False  # a late release of the stale lease changes nothing
    assert manager.load() == {0: 1, 1: 1}


def test_leased_returns_the_lease_even_when_grading_raises() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=1)
    with pytest.raises(RuntimeError), manager.leased("worker-0"):
        raise RuntimeError("grading failed")
    assert manager.load() == {0: 0}


def test_leased_raises_timeout_error_when_every_slot_stays_busy() -> None:
    manager = LeaseManager(TWO_GPUS[:1], jobs_per_gpu=1)
    assert manager.acquire("busy") is not None
    message = "no GPU slot of 1 became free within 0.01 s for worker-1"
    with pytest.raises(TimeoutError, match=message), manager.leased("worker-1", timeout_s=0.01):
        pass


def test_no_devices_means_no_lease_and_no_waiting() -> None:
    assert LeaseManager([], jobs_per_gpu=2).acquire("worker-0") is None


def test_jobs_per_gpu_must_be_positive() -> None:
    with pytest.raises(UsageError, match=r"^--jobs-per-gpu must be at least 1 \(got 0\)$"):
        LeaseManager(TWO_GPUS, jobs_per_gpu=0)


# --- --gpus ---------------------------------------------------------------------------------


def test_select_gpus_defaults_to_all_and_keeps_the_order_given() -> None:
    assert select_gpus(TWO_GPUS, None) == TWO_GPUS
    assert select_gpus(TWO_GPUS, "1, 0") == [TWO_GPUS[1], TWO_GPUS[0]]
    assert select_gpus(TWO_GPUS, "none") == []


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("0,x", "--gpus: 'x' is not a GPU index; give indices such as --gpus 0,1 (GPUs here: 0, 1)"),
        ("-1", "--gpus: '-1' is not a GPU index; give indices such as --gpus 0,1 (GPUs here: 0, 1)"),
        ("2", "--gpus: there is no GPU 2 (GPUs here: 0, 1); see `nvidia-smi -L`"),
        ("0,0", "--gpus: GPU 0 is named twice"),
        (" ", "--gpus: give GPU indices such as --gpus 0,1, or --gpus none (GPUs here: 0, 1)"),
    ],
)
def test_select_gpus_rejects_bad_lists_with_a_clear_message(requested: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        select_gpus(TWO_GPUS, requested)
    assert str(raised.value) == message


def test_select_gpus_on_a_machine_without_gpus() -> None:
    with pytest.raises(UsageError) as raised:
        select_gpus([], "0")
    assert str(raised.value) == "--gpus: there is no GPU 0 (no NVIDIA GPU is visible here); see `nvidia-smi -L`"


# --- what the sandbox sees --------------------------------------------------------------------


def fake_dev(tmp_path: Path, *names: str) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in names:
        (dev / name).touch()
    return dev


def test_sandbox_binds_only_the_leased_device_and_the_control_nodes(tmp_path: Path) -> None:
    dev = fake_dev(tmp_path, "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidia-modeset")
    manager = LeaseManager(TWO_GPUS, jobs_per_gpu=1)
    manager.acquire("worker-0")
    lease = manager.acquire("worker-1")
    assert lease is not None and lease.device.index == 1
    args, env = sandbox_gpu_args(lease, dev_dir=dev)
    assert args == [
        *("--dev-bind", str(dev / "nvidiactl"), "/dev/nvidiactl"),
        *("--dev-bind", str(dev / "nvidia-uvm"), "/dev/nvidia-uvm"),
        *("--dev-bind", str(dev / "nvidia-uvm-tools"), "/dev/nvidia-uvm-tools"),
        *("--dev-bind", str(dev / "nvidia1"), "/dev/nvidia1"),
    ]
    assert env == {
        "CUDA_VISIBLE_DEVICES": "GPU-bbbbbbbb-1111-1111-1111-111111111111",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "GRADER_GPU_MEMORY_MB": "81559",
    }


def test_sandbox_skips_nodes_that_do_not_exist(tmp_path: Path) -> None:
    dev = fake_dev(tmp_path, "nvidiactl", "nvidia0")  # no nvidia-uvm: the module is not loaded
    lease = LeaseManager(TWO_GPUS, jobs_per_gpu=2).acquire("worker-0")
    assert lease is not None
    args, _ = sandbox_gpu_args(lease, dev_dir=dev)
    assert args == [
        *("--dev-bind", str(dev / "nvidiactl"), "/dev/nvidiactl"),
        *("--dev-bind", str(dev / "nvidia0"), "/dev/nvidia0"),
    ]


def test_sandbox_uses_the_driver_minor_number_and_the_index_without_uuid(tmp_path: Path) -> None:
    dev = fake_dev(tmp_path, "nvidia0", "nvidia3")
    lease = LeaseManager([GpuDevice(0, "Tesla T4", 15_360, minor=3)], jobs_per_gpu=2).acquire("worker-0")
    assert lease is not None
    args, env = sandbox_gpu_args(lease, dev_dir=dev, memory_cap_mb=4096)
    assert args == ["--dev-bind", str(dev / "nvidia3"), "/dev/nvidia3"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["GRADER_GPU_MEMORY_MB"] == "4096"  # the assignment's cap, below the 7680 MB share


def test_an_assignment_cap_never_raises_the_share() -> None:
    lease = LeaseManager(TWO_GPUS, jobs_per_gpu=2).acquire("worker-0")
    assert lease is not None
    _, env = sandbox_gpu_args(lease, dev_dir=Path("/nonexistent"), memory_cap_mb=1_000_000)
    assert env["GRADER_GPU_MEMORY_MB"] == str(81_559 // 2)


# --- plans and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "devices", "plan"),
    [
        ("none", [], "cpu"),
        ("none", TWO_GPUS, "cpu"),
        ("optional", TWO_GPUS, "gpu"),
        ("optional", [], "cpu-fallback"),
        ("required", TWO_GPUS, "gpu"),
        ("required", [], "skip"),
    ],
)
def test_gpu_plan(policy: str, devices: list[GpuDevice], plan: str) -> None:
    assert gpu_plan(policy, devices) == plan


def test_gpu_plan_rejects_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown GPU policy 'maybe': use 'none', 'optional' or 'required'"):
        gpu_plan("maybe", TWO_GPUS)


def test_cpu_fallback_limits_scale_and_round_up() -> None:
    assert cpu_fallback_limits(300, 4) == 1200
    assert cpu_fallback_limits(10, 2.55) == 26
    assert cpu_fallback_limits(300, 1.0) == 300
    with pytest.raises(ValueError, match=r"the CPU fallback factor must be positive \(got 0\)"):
        cpu_fallback_limits(300, 0)


@pytest.mark.parametrize(
    "message",
    [
        "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)",
        "torch.OutOfMemoryError: CUDA out of memory.",
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "RuntimeError: CUDA error: out of memory",
    ],
)
def test_cuda_out_of_memory_messages_are_memory(message: str) -> None:
    assert classify_cuda_error(message) == "memory"


@pytest.mark.parametrize(
    "message", ["CUDA error: device-side assert triggered", "mat1 and mat2 shapes cannot be multiplied", ""]
)
def test_other_errors_are_not_memory(message: str) -> None:
    assert classify_cuda_error(message) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gpu_timer_sums_the_intervals_student_code_runs() -> None:
    clock = FakeClock()
    timer = GpuTimer(clock)
    with timer.running():
        clock.now += 4
    clock.now += 100  # between calls: the grader's own time is not GPU time
    timer.start()
    clock.now += 5
    assert timer.used_s == 9  # a running interval counts
    assert not timer.over_budget(10)
    assert timer.remaining_s(10) == 1
    clock.now += 2
    assert timer.over_budget(10)
    assert timer.stop() == 11
    assert timer.stop() == 11  # stopping twice adds nothing
    assert timer.remaining_s(10) == 0


def test_gpu_timer_sampling_without_nvml_is_silent() -> None:
    timer = GpuTimer()
    assert timer.sample(TWO_GPUS[0], [os.getpid()]) is None
    assert timer.utilisation_samples == []


# --- inside the worker ------------------------------------------------------------------------


def test_memory_cap_is_a_no_op_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_GPU_MEMORY_MB", "1024")
    cpu_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", cpu_torch)
    assert apply_gpu_memory_cap_in_worker() is None


def test_memory_cap_does_not_import_torch() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["GRADER_GPU_MEMORY_MB"] = "1024"
        from grader.sandbox.gpu import apply_gpu_memory_cap_in_worker
        assert apply_gpu_memory_cap_in_worker() is None
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_memory_cap_sets_the_fraction_of_the_visible_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[float, int]] = []
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        current_device=lambda: 0,
        get_device_properties=lambda device: types.SimpleNamespace(total_memory=16 * 2**30),
        set_per_process_memory_fraction=lambda fraction, device: calls.append((fraction, device)),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setenv("GRADER_GPU_MEMORY_MB", "4096")
    assert apply_gpu_memory_cap_in_worker() == 0.25
    assert calls == [(0.25, 0)]
    monkeypatch.delenv("GRADER_GPU_MEMORY_MB")
    assert apply_gpu_memory_cap_in_worker() is None
    assert calls == [(0.25, 0)]


def test_memory_cap_survives_a_broken_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=broken)))
    monkeypatch.setenv("GRADER_GPU_MEMORY_MB", "4096")
    assert apply_gpu_memory_cap_in_worker() is None


# --- discovery --------------------------------------------------------------------------------


def fake_nvml(devices: list[GpuDevice], minors: list[int]) -> types.SimpleNamespace:
    """Just enough of pynvml for discovery and sampling; names and UUIDs as bytes like old versions."""
    by_uuid = {d.uuid: d.index for d in devices}
    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: len(devices),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetHandleByUUID=lambda uuid: by_uuid[uuid],
        nvmlDeviceGetMinorNumber=lambda handle: minors[handle],
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(total=devices[handle].memory_mb * 2**20),
        nvmlDeviceGetName=lambda handle: devices[handle].name.encode(),
        nvmlDeviceGetUUID=lambda handle: devices[handle].uuid.encode(),
        nvmlDeviceGetComputeRunningProcesses=lambda handle: [
            types.SimpleNamespace(pid=4242, usedGpuMemory=3 * 2**30),
            types.SimpleNamespace(pid=99, usedGpuMemory=None),
        ],
        nvmlDeviceGetProcessUtilization=lambda handle, since_us: [
            types.SimpleNamespace(pid=4242, timeStamp=since_us + 1000, smUtil=87),
            types.SimpleNamespace(pid=1, timeStamp=since_us + 2000, smUtil=5),
        ],
    )


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """TWO_GPUS behind a fake NVML, whose device nodes are numbered 4 and 5."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(TWO_GPUS, [4, 5]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu._nvml.cache_clear()  # noqa: SLF001 - NVML is initialised once per process
    yield
    gpu._nvml.cache_clear()  # noqa: SLF001


def test_discovery_reads_nvml(nvml: None) -> None:
    assert discover_gpus() == [replace(TWO_GPUS[0], minor=4), replace(TWO_GPUS[1], minor=5)]


@pytest.mark.parametrize(("inherited", "indices"), [("1", [1]), (TWO_GPUS[0].uuid, [0]), ("", []), ("0,1", [0, 1])])
def test_discovery_honours_an_inherited_cuda_visible_devices(
    nvml: None, monkeypatch: pytest.MonkeyPatch, inherited: str, indices: list[int]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", inherited)
    assert [device.index for device in discover_gpus()] == indices


def test_nvml_usage_is_counted_for_the_boxs_processes_only(nvml: None) -> None:
    assert gpu_memory_used_mb(TWO_GPUS[1], {4242}) == 3072
    timer = GpuTimer()
    assert timer.sample(TWO_GPUS[1], {4242, 4243}) == 87
    assert timer.sample(TWO_GPUS[1], {7}) is None
    assert timer.utilisation_samples == [87]


def test_discovery_never_raises() -> None:
    devices = discover_gpus()
    assert all(isinstance(device, GpuDevice) for device in devices)


MATMUL_ON_LEASED_DEVICE = """
import json, time, torch
from grader.sandbox.gpu import apply_gpu_memory_cap_in_worker
fraction = apply_gpu_memory_cap_in_worker()
a = torch.randn(2048, 2048, device="cuda")
started, steps = time.monotonic(), 0
while time.monotonic() - started < 2.0:
    b = a @ a
    steps += 1
torch.cuda.synchronize()
props = torch.cuda.get_device_properties(b.device)
print(json.dumps({"device": str(b.device), "count": torch.cuda.device_count(), "name": props.name,
                  "steps": steps, "fraction": fraction, "finite": bool(torch.isfinite(b).all())}))
"""


@pytest.mark.gpu
def test_a_matmul_runs_on_the_leased_device() -> None:
    devices = discover_gpus()
    if not devices:
        pytest.skip("no NVIDIA GPU visible (NVML and torch found none)")
    import json

    import torch

    if torch.version.cuda is None:
        pytest.skip(f"torch {torch.__version__} is a CPU-only build; install a CUDA build to run GPU tests")
    lease = LeaseManager(devices[:1], jobs_per_gpu=2).acquire("gpu-test")
    assert lease is not None
    _, gpu_env = sandbox_gpu_args(lease)
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"} | gpu_env
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", MATMUL_ON_LEASED_DEVICE], cwd=root, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"] == "cuda:0"
    assert result["count"] == 1, "the job must see only its leased device"
    assert result["name"] == devices[0].name
    assert result["steps"] > 0 and result["finite"]
    assert result["fraction"] == pytest.approx(lease.memory_cap_mb * 2**20 / (devices[0].memory_mb * 2**20), rel=0.05)


def test_gpu_memory_is_sampled_while_a_call_runs_and_the_peak_kept():
    # Issue 20: resources.gpu_peak_mb was in the report contract but never filled. The timer
    # polls the box's GPU memory (NVML by cgroup pids on a real card; injected here) during calls.
    import time as real_time

    readings = iter([100, 900, 400, None, 300])
    timer = GpuTimer(sample_every_s=0.01)
    with timer.running(lambda: next(readings, 250)):
        real_time.sleep(0.1)
    assert timer.peak_mb == 900
    with timer.running(lambda: 1200):
        pass  # even an instant call is sampled once
    assert timer.peak_mb == 1200


def test_a_failing_memory_query_costs_a_sample_not_the_call():
    def broken() -> int:
        raise RuntimeError("NVML went away")

    timer = GpuTimer(sample_every_s=0.01)
    with timer.running(broken):
        pass
    assert timer.peak_mb is None and timer.used_s >= 0


FAKE_GPU_TORCH = """
import torch

# As if this process had used the GPU: torch's CUDA state is all the worker asks.
torch.cuda.is_initialized = lambda: True
torch.cuda.max_memory_reserved = lambda device=None: {mb} * 2**20

def double(x):
    return 2 * x
"""


def test_torchs_own_peak_fills_gpu_peak_mb_where_nvml_is_absent(make_course, tmp_path) -> None:
    # Issue 20: without NVML the report's gpu_peak_mb stayed null. A box with a GPU lease now
    # reports torch's allocator peak with every answer; here student code stands in for a torch
    # that used the GPU (no GPU on CI machines), and the box runs without a sandbox.
    course = make_course("from grader.testing import points\n\n@points(1)\ndef test_double(submission):\n"
                         "    assert submission.double(2) == 4\n")  # fmt: skip
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().replace('preload = ["numpy"]', 'preload = ["numpy", "torch"]\ngpu = "optional"', 1)
                    .replace('forbidden_imports = ["torch"]', "forbidden_imports = []"))  # fmt: skip
    assignment = load_assignment(course / "assignments" / "toy")
    device = GpuDevice(0, "NVIDIA H100 80GB HBM3", 81_559, "GPU-aaaaaaaa-0000-0000-0000-000000000000")
    reports = {}
    for mb in (300, 1200):
        path = tmp_path / f"peak{mb}.py"
        path.write_text(FAKE_GPU_TORCH.replace("{mb}", str(mb)))
        settings = GradeSettings(sandbox="none", gpu_device=device, gpu_memory_cap_mb=4096)
        reports[mb] = grade(path, assignment, settings)
    for mb, report in reports.items():
        assert report.status == "graded", report.message
        assert report.tests[0].status == "passed", report.tests[0].message
        assert report.resources.gpu_peak_mb is not None and report.resources.gpu_peak_mb >= mb
    assert reports[300].resources.gpu_peak_mb < 1200, "each submission reports its own peak"
    # The figure comes from the student's process: more than the device holds is not believed.
    path = tmp_path / "peak-forged.py"
    path.write_text(FAKE_GPU_TORCH.replace("{mb}", str(10**7)))
    forged = grade(path, assignment, GradeSettings(sandbox="none", gpu_device=device, gpu_memory_cap_mb=4096))
    assert forged.status == "graded", forged.message
    assert forged.resources.gpu_peak_mb in (None, 0), forged.resources
