"""Issue 11 in the real sandbox: the grader's environment, PID 1, the syscall filter, the host uid.

Every probe is bounded inside the submission (bytes read, files visited, call timeouts), so a
broken sandbox could not hurt the machine running these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import load_assignment
from grader.sandbox.hostuid import BOX_UID_BASE, choose_host_uid, readable_by_others
from grader.settings import GradeSettings

SECRET = "lms-token-5f0c2a9e7d41b3"

PROBE_TESTS = """
from grader.testing import points

@points(1)
def test_probe(submission, credit):
    found = submission.probe()
    assert isinstance(found, list), "probe() returned no list"
    assert found == [], "; ".join(str(item) for item in found)[:1500]
"""

# Reads every file the box can see (bounded), plus each process's environ and cmdline.
READS_EVERYTHING = f"""
import os

SECRET = {SECRET!r}.encode()

def probe():
    found, budget, visited = [], 64 * 2**20, 0
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{{pid}}/{{name}}", "rb") as f:
                    data = f.read(1 << 20)
            except OSError:
                continue
            if SECRET in data:
                found.append(f"/proc/{{pid}}/{{name}}")
    # Where a leak would most likely land first, then everything else.
    walks = [os.walk(top) for top in ("/tmp", "/opt", "/data", "/etc", "/dev/shm", "/")]
    for root, dirs, files in (entry for walk in walks for entry in walk):
        if root in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        for name in files:
            path = os.path.join(root, name)
            visited += 1
            if visited > 200000 or budget <= 0:
                return found + ["stopped: budget spent"] if found else found
            try:
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    data = f.read(min(budget, 1 << 20))
            except OSError:
                continue
            budget -= len(data)
            if SECRET in data:
                found.append(path)
    return found
"""

PID_ONE = """
import ctypes, os

def probe():
    problems = []
    with open("/proc/1/cmdline", "rb") as f:
        cmdline = f.read().replace(b"\\0", b" ").decode()
    if "bwrap" in cmdline or "{host}" in cmdline:
        problems.append("pid 1 shows the host's command line: " + cmdline[:200])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        if pid == os.getpid():
            continue
        if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
            problems.append(f"ptrace attached to pid {{pid}}")
    for path in ("/proc/1/mem", "/proc/1/environ"):
        try:
            with open(path, "rb") as f:
                f.read(16)
            if path.endswith("mem"):
                problems.append("read pid 1's memory")
        except OSError:
            pass
    return problems
"""

# Each filtered call must fail with its errno while ordinary work still runs.
FILTERED = """
import ctypes, errno, os
import numpy as np

CALLS = {
    "keyctl": (250, (0, 0, 0, 0, 0), errno.EPERM),
    "add_key": (248, (0, 0, 0, 0, 0), errno.EPERM),
    "bpf": (321, (0, 0, 0, 0, 0), errno.EPERM),
    "io_uring_setup": (425, (1, 0, 0, 0, 0), errno.EPERM),
    "userfaultfd": (323, (0, 0, 0, 0, 0), errno.EPERM),
    "perf_event_open": (298, (0, 0, 0, 0, 0), errno.EPERM),
    "ptrace": (101, (0, 0, 0, 0, 0), errno.EPERM),
    "unshare": (272, (0x10000000, 0, 0, 0, 0), errno.EPERM),
    "mount": (165, (0, 0, 0, 0, 0), errno.EPERM),
    "socket(AF_VSOCK)": (41, (40, 1, 0, 0, 0), errno.EAFNOSUPPORT),
    "socket(AF_NETLINK)": (41, (16, 3, 0, 0, 0), errno.EAFNOSUPPORT),
    "shmget": (29, (0, 4096, 0o1600, 0, 0), errno.EPERM),
    "mq_open": (240, (0, 0, 0, 0, 0), errno.EPERM),
    "kcmp": (312, (0, 0, 0, 0, 0), errno.EPERM),
    "clone(CLONE_NEWUSER)": (56, (0x10000000 | 17, 0, 0, 0, 0), errno.EPERM),
    "clone3": (435, (0, 0, 0, 0, 0), errno.ENOSYS),
}

def probe():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    problems = []
    for name, (number, args, expected) in CALLS.items():
        ctypes.set_errno(0)
        result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
        got = ctypes.get_errno()
        if result != -1 or got != expected:
            problems.append(f"{name}: returned {result}, errno {errno.errorcode.get(got, got)}")
    with open("/proc/self/status") as f:
        mode = [line.split()[1] for line in f if line.startswith("Seccomp:")]
    if mode != ["2"]:
        problems.append(f"Seccomp mode {mode}, expected 2 (filter)")
    import fcntl, socket, subprocess, threading, tempfile
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        pass
    with tempfile.TemporaryFile() as f:  # flock stays: filelock (torch.compile's caches) needs it
        fcntl.flock(f, fcntl.LOCK_EX)
    worker = threading.Thread(target=lambda: None)  # threads: clone without namespace flags
    worker.start()
    worker.join()
    if subprocess.run(["/bin/true"]).returncode != 0:  # fork and exec still work
        problems.append("could not run /bin/true")
    product = np.arange(12.0).reshape(3, 4) @ np.ones((4, 2))
    if product.sum() != 132.0:
        problems.append("numpy computed a wrong product")
    return problems
"""

TORCH_UNDER_FILTER = """
import torch

def probe():
    layer = torch.nn.Linear(4, 2)
    loss = layer(torch.ones(3, 4)).pow(2).sum()
    loss.backward()
    return [] if layer.weight.grad is not None and layer.weight.grad.shape == (2, 4) else ["no gradient"]
"""


def _grade(course: Path, tmp_path: Path, source: str, **settings: object) -> SubmissionReport:
    path = tmp_path / "probe.py"
    path.write_text(source)
    assignment = load_assignment(course / "assignments" / "toy")
    return grade(path, assignment, GradeSettings(sandbox="bwrap", **settings))  # type: ignore[arg-type]


def _assert_probe_passed(report: SubmissionReport) -> None:
    assert report.status == "graded", report.message
    (test,) = report.tests
    assert test.status == "passed", test.message


def test_the_graders_environment_is_nowhere_in_the_box(make_course, tmp_path, sandbox_mode, monkeypatch):
    monkeypatch.setenv("GRADER_TA_TOKEN", SECRET)
    course = make_course(PROBE_TESTS, call_timeout_s=60)
    _assert_probe_passed(_grade(course, tmp_path, READS_EVERYTHING))


@pytest.mark.parametrize("warm_workers", [True, False], ids=["zygote", "fresh box"])
def test_pid_1_can_be_neither_read_nor_traced(make_course, tmp_path, sandbox_mode, warm_workers):
    course = make_course(PROBE_TESTS, call_timeout_s=20)
    source = PID_ONE.replace("{host}", str(tmp_path))
    _assert_probe_passed(_grade(course, tmp_path, source, warm_workers=warm_workers))


def test_dangerous_syscalls_are_filtered_while_numpy_works(make_course, tmp_path, sandbox_mode):
    course = make_course(PROBE_TESTS, call_timeout_s=20)
    _assert_probe_passed(_grade(course, tmp_path, FILTERED))


@pytest.mark.slow
def test_torch_trains_under_the_filter(make_course, tmp_path, sandbox_mode):
    course = make_course(PROBE_TESTS, call_timeout_s=60, memory_mb=1024)
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text(spec.read_text().replace('forbidden_imports = ["torch"]', "forbidden_imports = []"))
    _assert_probe_passed(_grade(course, tmp_path, TORCH_UNDER_FILTER))


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user can read (pytest's tmp_path lies under a 0700 folder of root's)."""
    folder = Path(tempfile.mkdtemp(prefix="grader-uid-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_readable_by_others_follows_every_parent(open_folder: Path) -> None:
    inner = open_folder / "a" / "b"
    inner.mkdir(parents=True)
    (inner / "f.py").write_text("x = 1\n")
    assert readable_by_others(inner / "f.py")
    (open_folder / "a").chmod(0o700)
    assert not readable_by_others(inner / "f.py")
    (open_folder / "a").chmod(0o755)
    (inner / "f.py").chmod(0o600)
    assert not readable_by_others(inner / "f.py")


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch is only made by a grader running as root")
def test_a_root_grader_keeps_root_only_with_a_reason(open_folder: Path) -> None:
    hidden = open_folder / "hidden"
    hidden.mkdir(mode=0o700)
    mapping = choose_host_uid(shutil.which("bwrap") or "bwrap", [open_folder, hidden])
    assert mapping.host_uid == 0
    assert mapping.describe() == (
        f"box uid 65534 -> host uid 0 (root), because {hidden} is not readable by other users "
        "(make it and its parents o+rx)"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch is only made by a grader running as root")
def test_a_root_grader_maps_the_box_to_an_unprivileged_uid(open_folder: Path, bwrap_works: bool) -> None:
    assert bwrap_works
    bwrap = shutil.which("bwrap") or "bwrap"
    mapping = choose_host_uid(bwrap, [open_folder])
    assert mapping.host_uid == BOX_UID_BASE + os.getpid(), mapping.describe()
    assert "dedicated unprivileged uid" in mapping.describe()
    # The mapping is real: a box started as that uid sees itself as 65534 on top of it.
    done = subprocess.run(
        [bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--ro-bind", "/", "/", "--",
         "/bin/cat", "/proc/self/uid_map"],
        capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"},
        user=mapping.host_uid, group=mapping.host_uid, extra_groups=[],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["65534", str(mapping.host_uid), "1"]
