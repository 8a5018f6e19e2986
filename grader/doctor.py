"""`grader doctor`: what this machine offers the sandbox, checked for real."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.errors import GraderError
from grader.grading.spec import Limits
from grader.inside.seccomp import DENIED_X86_64
from grader.sandbox.box import Box, BoxSettings, SandboxMode, bwrap_path
from grader.sandbox.cgroups import cgroup_support, sweep_stale_groups
from grader.sandbox.faults import SubmissionFault


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def probe_sandbox(mode: SandboxMode = "bwrap") -> Check:
    """Start a real box and ask it a question; the answer or the reason it failed."""
    return probe_isolation(mode)[0]


def probe_isolation(mode: SandboxMode = "bwrap") -> list[Check]:
    """The sandbox check, then what the box said of its syscall filter and which uid it ran as."""
    if mode == "bwrap" and bwrap_path() is None:
        return [Check("sandbox", False, "bwrap not found: apt-get install bubblewrap")]
    try:
        box = Box(BoxSettings(mode=mode, limits=Limits(memory_mb=256, processes=16)))
        try:
            box.wait_ready(timeout_s=30)
            box.request("load", {"cells": [], "preload": [], "seed": 0}, 30, "doctor limit")
        finally:
            box.close()
    except (GraderError, SubmissionFault, OSError) as exc:
        return [Check("sandbox", False, str(exc))]
    installed = box.seccomp == "installed"
    denied = f"{len(DENIED_X86_64)} calls denied (keyrings, bpf, io_uring, ptrace, mount, ...), sockets only Unix/IP"
    return [
        Check("sandbox", True, f"{mode} box started and answered"),
        Check("syscall filter", installed, f"seccomp installed: {denied}" if installed else box.seccomp),
        Check("uid mapping", True, box.uid_mapping.describe()),
    ]


def uid_sandbox_check() -> Check:
    """Whether the container fallback (--sandbox uid) could run here, and what it leaves open."""
    from grader.sandbox import uidbox
    from grader.sandbox.bwrap import GRADER_PACKAGE_DIR

    try:
        uid = uidbox.student_uid()
        uidbox.check_layout(uid, (), GRADER_PACKAGE_DIR)
    except GraderError as exc:
        return Check("uid sandbox", True, f"not available ({exc}); only needed where bwrap cannot run")
    return Check(
        "uid sandbox", True,
        f"available as uid {uid} (--sandbox uid, for containers); it does not protect: {uidbox.UNPROTECTED}",
    )  # fmt: skip


def gpu_check() -> Check:
    """Which GPUs grading would lease, and whether the sandbox can reach CUDA on them."""
    from grader.sandbox.gpu import discover_gpus

    devices = discover_gpus()
    if not devices:
        return Check(
            "gpu", True,
            "none found: gpu = 'optional' assignments run on the CPU with scaled limits, "
            "'required' ones are listed as grader errors for a rerun on a GPU machine",
        )  # fmt: skip
    listed = ", ".join(f"{d.index}: {d.name} ({d.memory_mb} MB)" for d in devices)
    if not Path("/dev/nvidia-uvm").exists():
        return Check("gpu", False, f"{listed}; /dev/nvidia-uvm is missing: run `nvidia-modprobe -u -c=0` as root")
    return Check("gpu", True, f"{listed}; run scripts/gpu-check for a smoke test on each device")


def run_checks() -> list[Check]:
    checks = [
        Check("python", True, f"{sys.version.split()[0]} at {Path(sys.executable)}"),
        Check("platform", True, platform.platform()),
    ]
    path = bwrap_path()
    checks.append(Check("bubblewrap", path is not None, path or "not installed (apt-get install bubblewrap)"))
    cgroups = cgroup_support()
    swept = sweep_stale_groups()
    if swept:
        cgroups += f"; removed {swept} empty cgroup folders left by graders that were killed"
    checks.append(Check("cgroups", cgroups.startswith("cgroup v"), cgroups))
    checks += probe_isolation("bwrap") if path else [Check("sandbox", False, "needs bubblewrap")]
    checks.append(uid_sandbox_check())
    checks.append(gpu_check())
    return checks


def course_checks(course_dir: Path) -> list[Check]:
    """The pre-flight of every assignment in a course folder (hidden tests, reference solution)."""
    from grader.batch.preflight import run_preflight
    from grader.grading.spec import SPEC_FILE, load_assignment
    from grader.settings import GradeSettings

    checks = []
    for spec_path in sorted((course_dir / "assignments").glob(f"*/{SPEC_FILE}")):
        name = spec_path.parent.name
        try:
            result = run_preflight(load_assignment(spec_path.parent), GradeSettings())
        except GraderError as exc:
            checks.append(Check(f"course {name}", False, str(exc)))
            continue
        checks.append(Check(f"course {name}", True, result.line.removeprefix("pre-flight: ")))
    if not checks:
        checks.append(Check("course", False, f"no assignments/*/{SPEC_FILE} under {course_dir}"))
    return checks
