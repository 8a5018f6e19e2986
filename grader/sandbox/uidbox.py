"""The fallback sandbox for containers where bubblewrap cannot make namespaces (issue 16).

Inside Gradescope's Docker container user namespaces are often refused. There the worker still
runs apart from the tests: as a dedicated unprivileged user (``grader-student``, created by the
bundle's setup.sh), with a cleared environment, rlimits, the syscall filter the worker installs
on itself, a private 0700 scratch folder as its home and cwd, and every process of that user
killed after each run. The grader runs as root; the hidden tests, the bundle and the results
folder must be unreadable to that user, and the box refuses to start when they are not.

What it does not protect (``grader doctor`` says so): the network, world-readable files of the
machine, and a shared /tmp. It is chosen explicitly (``--sandbox uid``), never as a silent
fallback.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.errors import SandboxUnavailable
from grader.sandbox.hostuid import readable_by_others

STUDENT_USER = "grader-student"
STUDENT_UID_ENV = "GRADER_STUDENT_UID"  # overrides the user's uid (tests, images without useradd)
UNPROTECTED = "network, world-readable files of this machine, a shared /tmp"


def student_uid() -> int:
    """The unprivileged uid student code runs as in uid mode; SandboxUnavailable when there is none."""
    if os.geteuid() != 0:
        raise SandboxUnavailable("the uid sandbox switches to another user and so needs a grader running as root")
    raw = os.environ.get(STUDENT_UID_ENV, "")
    if raw:
        if not raw.isdigit() or int(raw) == 0:
            raise SandboxUnavailable(f"{STUDENT_UID_ENV}={raw!r} is not an unprivileged uid")
        return int(raw)
    try:
        return pwd.getpwnam(STUDENT_USER).pw_uid
    except KeyError:
        raise SandboxUnavailable(
            f"the uid sandbox needs the user {STUDENT_USER}: `useradd --system --no-create-home {STUDENT_USER}` "
            "(the Gradescope bundle's setup.sh does it)"
        ) from None


def check_layout(uid: int, secret_dirs: tuple[Path, ...], grader_package: Path, data_dir: Path | None = None) -> None:
    """Refuse to run when the student's user could read the tests, or could not load the worker."""
    if data_dir is not None:
        # /data is a bwrap mount; without one the probes would not find it and students would
        # lose points for it. Not supported yet: a grader error, never a zero.
        raise SandboxUnavailable(
            f"this assignment's data folder ({data_dir.name}) is mounted at /data only by bwrap; "
            "the uid sandbox cannot provide it yet: grade it where bubblewrap runs"
        )
    for secret in secret_dirs:
        if secret.exists() and readable_by_others(secret):
            raise SandboxUnavailable(
                f"{secret} is readable by other users, so student code running as uid {uid} could read it: "
                f"`chown -R root: {secret} && chmod -R go-rwx {secret}` (setup.sh does it)"
            )
    from grader.sandbox.bwrap import python_roots

    for needed in [Path(sys.executable), *python_roots()]:
        if not readable_by_others(needed):
            raise SandboxUnavailable(
                f"the Python at {needed} is not readable by other users, so the worker cannot start as uid {uid}: "
                "use a Python every user can read (setup.sh makes one in /opt/dl-grader)"
            )
    inside = grader_package / "inside"
    if not readable_by_others(inside):
        raise SandboxUnavailable(
            f"{inside} is not readable by other users, so the worker cannot start as uid {uid}: install the "
            "grader where every user can read it (setup.sh installs it into the system's site-packages)"
        )


def make_home(uid: int) -> Path:
    """A private scratch folder owned by the student's user: its HOME, TMPDIR and cwd."""
    home = Path(tempfile.mkdtemp(prefix="grader-student-"))
    os.chown(home, uid, uid)
    home.chmod(0o700)
    return home


KILL_ALL = (
    "import os, signal, sys\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    sys.exit(1)\n"
)


def kill_user_processes(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a double fork escapes a process group, not this).

    kill(-1) as that user reaches only its own processes; run by this Python, not /bin/kill
    (procps is not on every container image).
    """
    for _ in range(3):  # processes forked while the first signal was on its way
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", KILL_ALL], capture_output=True, timeout=10,
            env={"PATH": "/usr/bin:/bin"}, user=uid, group=uid, extra_groups=[],
        )  # fmt: skip
        if done.returncode != 0:  # nothing left to signal
            return


def remove_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
