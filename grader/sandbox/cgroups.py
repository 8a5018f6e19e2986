"""Per-sandbox control groups: memory (with swap) and process caps, CPU and peak accounting.

Supports cgroup v1 (what these machines have) and v2. When neither is writable the sandbox
falls back to rlimits and `grader doctor` says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_PREFIX = "dl-grader"


def _read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _read_keyed(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class CgroupUsage:
    """What the kernel measured for one box."""

    cpu_s: float
    peak_memory_mb: float
    oom_kills: int
    pids_refused: int
    current_memory_mb: float = 0.0


class BoxCgroup:
    """One box's cgroup(s); create with ``BoxCgroup.create``, join in the child, destroy after."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs

    @classmethod
    def create(cls, memory_mb: int, processes: int) -> BoxCgroup | None:
        """Make a group with the limits set, or None where cgroups cannot be used here."""
        name = f"{GROUP_PREFIX}-{uuid.uuid4().hex[:12]}"
        try:
            if (CGROUP_ROOT / "cgroup.controllers").exists():
                return cls._create_v2(name, memory_mb, processes)
            if (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "pids").is_dir():
                return cls._create_v1(name, memory_mb, processes)
        except OSError:
            return None
        return None

    @classmethod
    def _create_v1(cls, name: str, memory_mb: int, processes: int) -> BoxCgroup:
        dirs = {c: CGROUP_ROOT / c / name for c in ("memory", "pids", "cpuacct")}
        group = cls(1, {})
        for controller, path in dirs.items():
            path.mkdir()
            group.dirs[controller] = path
        limit = str(memory_mb * 1024 * 1024)
        (dirs["memory"] / "memory.limit_in_bytes").write_text(limit)
        memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # swap accounting on: cap memory plus swap at the same figure
            memsw.write_text(limit)
        (dirs["pids"] / "pids.max").write_text(str(processes))
        return group

    @classmethod
    def _create_v2(cls, name: str, memory_mb: int, processes: int) -> BoxCgroup:
        parent = CGROUP_ROOT / GROUP_PREFIX
        parent.mkdir(exist_ok=True)
        wanted = {"memory", "pids", "cpu"}
        enabled = set((CGROUP_ROOT / "cgroup.subtree_control").read_text().split())
        for controller in wanted - enabled:
            (CGROUP_ROOT / "cgroup.subtree_control").write_text(f"+{controller}")
        for controller in wanted - set((parent / "cgroup.subtree_control").read_text().split()):
            (parent / "cgroup.subtree_control").write_text(f"+{controller}")
        path = parent / name
        path.mkdir()
        (path / "memory.max").write_text(str(memory_mb * 1024 * 1024))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")
        (path / "pids.max").write_text(str(processes))
        return cls(2, {"memory": path, "pids": path, "cpuacct": path})

    def join_self(self) -> None:
        """Move the calling process into the group; called in the child before exec."""
        pid = str(os.getpid())
        for path in set(self.dirs.values()):
            (path / "cgroup.procs").write_text(pid)

    def usage(self) -> CgroupUsage:
        memory, pids, cpu = self.dirs["memory"], self.dirs["pids"], self.dirs["cpuacct"]
        if self.version == 1:
            return CgroupUsage(
                cpu_s=_read_int(cpu / "cpuacct.usage") / 1e9,
                peak_memory_mb=_read_int(memory / "memory.max_usage_in_bytes") / 2**20,
                oom_kills=_read_keyed(memory / "memory.oom_control", "oom_kill"),
                pids_refused=_read_keyed(pids / "pids.events", "max"),
                current_memory_mb=_read_int(memory / "memory.usage_in_bytes") / 2**20,
            )
        return CgroupUsage(
            cpu_s=_read_keyed(cpu / "cpu.stat", "usage_usec") / 1e6,
            peak_memory_mb=_read_int(memory / "memory.peak") / 2**20,
            oom_kills=_read_keyed(memory / "memory.events", "oom_kill"),
            pids_refused=_read_keyed(pids / "pids.events", "max"),
            current_memory_mb=_read_int(memory / "memory.current") / 2**20,
        )

    def set_memory_limit(self, memory_mb: int) -> None:
        """Raise or lower the memory cap of a running box (a zygote adds its baseline)."""
        limit = str(memory_mb * 2**20)
        memory = self.dirs["memory"]
        if self.version == 1:
            memsw = memory / "memory.memsw.limit_in_bytes"
            # v1 insists on limit <= memsw limit at every step: order the writes accordingly.
            order = ["memory.limit_in_bytes", memsw.name] if not memsw.exists() or memory_mb * 2**20 <= _read_int(
                memory / "memory.limit_in_bytes") else [memsw.name, "memory.limit_in_bytes"]  # fmt: skip
            for name in order:
                if (memory / name).exists():
                    (memory / name).write_text(limit)
        else:
            (memory / "memory.max").write_text(limit)

    def reset_peak(self) -> None:
        """Start measuring peak memory afresh (each zygote child is measured alone)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        # Older v2 kernels cannot reset memory.peak: the box's peak is reported then.
        with contextlib.suppress(OSError):
            (self.dirs["memory"] / name).write_text("0")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self) -> None:
        """SIGKILL every process left in the group (a forked child that escaped the box's tree)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def destroy(self) -> None:
        self.kill_all()
        for path in set(self.dirs.values()):
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _group_dirs() -> list[Path]:
    """Every box group on this machine, of any grader process, v1 controllers and v2 alike."""
    parents = [CGROUP_ROOT / GROUP_PREFIX] + [CGROUP_ROOT / c for c in ("memory", "pids", "cpuacct")]
    found: list[Path] = []
    for parent in parents:
        with contextlib.suppress(OSError):
            found += [path for path in parent.glob(f"{GROUP_PREFIX}-*") if path.is_dir()]
    return found


def sweep_stale_groups(min_age_s: float = 600.0, groups: list[Path] | None = None) -> int:
    """Remove empty box groups left by a grader that was killed (kill -9 skips its clean-up).

    Each one holds kernel memory and the kernel caps the number of memory cgroups, so a machine
    that grades for a whole term would fill up. A group is removed only if no process is in it
    and it is older than ``min_age_s``: a live grader's group always holds its box, except in the
    milliseconds between creating it and starting the box. Returns how many were removed.
    ``groups`` limits the sweep to those folders (tests sweep only their own).
    """
    removed = 0
    for path in _group_dirs() if groups is None else groups:
        try:
            if (path / "cgroup.procs").read_text().strip() or time.time() - path.stat().st_mtime < min_age_s:
                continue
            path.rmdir()
            removed += 1
        except OSError:
            continue  # in use after all, or already gone: leave it
    return removed


def cgroup_support() -> str:
    """One line for `grader doctor`: which cgroup version is usable, or why none is."""
    group = BoxCgroup.create(memory_mb=64, processes=4)
    if group is None:
        return "no writable cgroup (v1 or v2) here: memory is capped with RLIMIT_DATA, processes with RLIMIT_NPROC"
    group.destroy()
    return f"cgroup v{group.version}: memory (with swap) and process limits per box"
