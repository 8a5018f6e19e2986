"""Which host uid a box runs as: never root where the machine allows it (issue 11).

bubblewrap maps the box's uid 65534 to the uid that started it. A grader running as root (CI,
Gradescope, a TA's server) would map the student to host root: without capabilities that is
contained, but it makes every kernel bug in a reachable syscall a root bug. So a root grader
starts each box as an unused, unprivileged host uid of its own (``BOX_UID_BASE`` + the grading
process's pid: no account owns it and no two grading processes share one). That uid must be able
to read what the box mounts and to create a user namespace; where it cannot, the box keeps the
root mapping and ``grader doctor`` says why.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

BOX_UID_BASE = 1_000_000_000


@dataclass(frozen=True)
class UidMapping:
    """The host uid boxes run as, and why it is root when it is."""

    host_uid: int
    reason: str = ""

    def describe(self) -> str:
        if self.host_uid != 0:
            kind = "a dedicated unprivileged uid" if self.host_uid >= BOX_UID_BASE else "the grader's own uid"
            return f"box uid 65534 -> host uid {self.host_uid} ({kind})"
        return f"box uid 65534 -> host uid 0 (root), because {self.reason}"


def readable_by_others(path: Path) -> bool:
    """Whether a user with no relation to the owner can reach ``path`` and read it."""
    path = path.resolve()
    try:
        for folder in path.parents:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
    except OSError:
        return False
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & needed == needed


def _drop_to(uid: int) -> None:
    """In a child before exec: become ``uid`` with no supplementary groups."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


_namespaces_work: set[tuple[str, int]] = set()  # successes only: a transient failure is asked again


def _user_namespaces_work(bwrap: str, uid: int) -> str:
    """Empty when ``uid`` may create the box's namespaces, else what bwrap said."""
    if (bwrap, uid) in _namespaces_work:
        return ""
    try:
        done = subprocess.run(
            [bwrap, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"},
            user=uid, group=uid, extra_groups=[],  # no Python preexec: other threads may be running
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.strip() or f"exit code {done.returncode}"
    _namespaces_work.add((bwrap, uid))
    return ""


def choose_host_uid(bwrap: str, mounted: list[Path]) -> UidMapping:
    """The host uid for a box that mounts ``mounted`` (read-only sources it must read)."""
    euid = os.geteuid()
    if euid != 0:
        return UidMapping(euid)
    blocked = [path for path in mounted if not readable_by_others(path)]
    if blocked:
        return UidMapping(0, f"{blocked[0]} is not readable by other users (make it and its parents o+rx)")
    uid = BOX_UID_BASE + os.getpid()
    refused = _user_namespaces_work(bwrap, uid)
    if refused:
        return UidMapping(0, f"an unprivileged uid may not create user namespaces here ({refused[:200]})")
    return UidMapping(uid)


def drop_privileges(mapping: UidMapping) -> None:
    """In the box's child before exec (after joining its cgroup): become the mapping's host uid."""
    if mapping.host_uid != os.geteuid():
        _drop_to(mapping.host_uid)
