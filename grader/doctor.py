"""`grader doctor`: what this machine offers the sandbox, checked for real."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.cgroups import cgroup_support
from grader.errors import GraderError
from grader.faults import SubmissionFault
from grader.sandbox import Box, BoxSettings, SandboxMode, bwrap_path
from grader.spec import Limits


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def probe_sandbox(mode: SandboxMode = "bwrap") -> Check:
    """Start a real box and ask it a question; the answer or the reason it failed."""
    if mode == "bwrap" and bwrap_path() is None:
        return Check("sandbox", False, "bwrap not found: apt-get install bubblewrap")
    try:
        box = Box(BoxSettings(mode=mode, limits=Limits(memory_mb=256, processes=16)))
        try:
            box.wait_ready(timeout_s=30)
            box.request("load", {"cells": [], "preload": [], "seed": 0}, 30, "doctor limit")
        finally:
            box.close()
    except (GraderError, SubmissionFault, OSError) as exc:
        return Check("sandbox", False, str(exc))
    return Check("sandbox", True, f"{mode} box started and answered")


def run_checks() -> list[Check]:
    checks = [
        Check("python", True, f"{sys.version.split()[0]} at {Path(sys.executable)}"),
        Check("platform", True, platform.platform()),
    ]
    path = bwrap_path()
    checks.append(Check("bubblewrap", path is not None, path or "not installed (apt-get install bubblewrap)"))
    cgroups = cgroup_support()
    checks.append(Check("cgroups", cgroups.startswith("cgroup v"), cgroups))
    checks.append(probe_sandbox("bwrap") if path else Check("sandbox", False, "needs bubblewrap"))
    checks.append(Check("gpu", True, "none used: GPU policy 'none' is the only one supported so far"))
    return checks
