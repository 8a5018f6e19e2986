"""The bubblewrap command line: what one box sees (binds, masks, environment) and nothing more."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from grader.errors import SandboxUnavailable
from grader.grading.spec import Limits
from grader.sandbox.gpu import GpuDevice, device_sandbox_args

# bwrap: namespaces; uid: a separate unprivileged user (containers, issue 16); none: no isolation.
SandboxMode = Literal["bwrap", "uid", "none"]
GRADER_PACKAGE_DIR = Path(__file__).resolve().parent.parent
SANDBOX_LIB = "/opt/grader"
SANDBOX_UID = 65534
WORKER_BOOT = f"import sys; sys.path.insert(0, {SANDBOX_LIB!r}); from grader.inside.worker import main; main()"
# Data files of packages that would hand the student the hidden labels (digits, iris...).
MASKED_PACKAGE_DIRS = ("sklearn/datasets/data", "sklearn/datasets/images", "sklearn/datasets/descr")


@dataclass
class BoxSettings:
    """How one box is built: the mode, the limits and what it may see."""

    mode: SandboxMode
    limits: Limits
    threads: int = 1
    secret_dirs: tuple[Path, ...] = field(default=(), metadata={"description": "Must never be visible."})
    data_dir: Path | None = field(default=None, metadata={"description": "Mounted read-only at /data."})
    gpu_device: GpuDevice | None = field(default=None, metadata={"description": "The only GPU the box sees."})
    gpu_memory_cap_mb: int | None = field(default=None, metadata={"description": "GPU memory cap."})

    def gpu_view(self) -> tuple[list[str], dict[str, str]]:
        """Device binds and environment for the leased GPU; nothing without one."""
        if self.gpu_device is None:
            return [], {}
        return device_sandbox_args(self.gpu_device, self.gpu_memory_cap_mb or self.gpu_device.memory_mb)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def python_roots() -> list[Path]:
    """Folders the worker's interpreter and its packages live in, symlinks resolved."""
    import site

    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    for entry in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        path = Path(entry).resolve()
        if path.is_dir() and ("site-packages" in path.parts or "dist-packages" in path.parts):
            roots.add(path)
    # Keep only the outermost folders; nested binds are redundant.
    return sorted(r for r in roots if not any(o != r and o in r.parents for o in roots))


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", name, name]
    return args


def _refuse_secret_overlap(mounted: Path, secret_dirs: tuple[Path, ...]) -> None:
    """Never mount a folder that holds (or is inside) hidden tests or solutions."""
    mounted = mounted.resolve()
    for secret in secret_dirs:
        secret = secret.resolve()
        if secret == mounted or mounted in secret.parents or secret in mounted.parents:
            raise SandboxUnavailable(
                f"{mounted} would be visible in the sandbox and overlaps {secret}, which must stay "
                "hidden; move the Python environment or data folder out of the course's secret folders"
            )


def bwrap_command(settings: BoxSettings, worker_args: list[str]) -> list[str]:
    """The full bubblewrap command line for one worker."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`, "
            "or pass --sandbox none to grade without isolation (unsafe for untrusted code)"
        )
    roots = python_roots()
    for root in roots:
        _refuse_secret_overlap(root, settings.secret_dirs)
    args = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        # The worker is the box's PID 1: no bwrap init inside that student code could read or
        # trace (issue 11: /proc/1/environ showed the grader's environment).
        "--as-pid-1",
        "--hostname", "sandbox", "--clearenv",
    ]  # fmt: skip
    gpu_args, gpu_env = settings.gpu_view()
    for name, value in {**worker_env(settings.threads), **gpu_env}.items():
        args += ["--setenv", name, value]
    args += _system_binds()
    # The scratch tmpfs goes first: a Python environment that lives under /tmp (a CI checkout's
    # .venv) is then bound on top of it instead of being hidden by it.
    args += ["--size", str(settings.limits.scratch_mb * 2**20), "--tmpfs", "/tmp"]
    for root in roots:
        args += ["--ro-bind", str(root), str(root)]
        for masked in MASKED_PACKAGE_DIRS:
            if (root / masked).is_dir():
                args += ["--tmpfs", str(root / masked)]
    # Only what runs inside: the package's __init__ and grader/inside (issue 12). The rest of the
    # grader (hidden-test plumbing, exports) is none of the box's business.
    args += ["--ro-bind", str(GRADER_PACKAGE_DIR / "__init__.py"), f"{SANDBOX_LIB}/grader/__init__.py"]
    args += ["--ro-bind", str(GRADER_PACKAGE_DIR / "inside"), f"{SANDBOX_LIB}/grader/inside"]
    if settings.data_dir is not None:
        _refuse_secret_overlap(settings.data_dir, settings.secret_dirs)
        args += ["--ro-bind", str(settings.data_dir), "/data"]
    args += ["--proc", "/proc", "--dev", "/dev", *gpu_args]  # GPU nodes after the fresh /dev
    args += ["--chdir", "/tmp"]
    return [*args, "--", sys.executable, "-I", "-B", "-c", WORKER_BOOT, *worker_args]


def mounted_sources(settings: BoxSettings) -> list[Path]:
    """Host paths the box binds besides the system folders: what its host uid must be able to read."""
    sources = [*python_roots(), GRADER_PACKAGE_DIR / "__init__.py", GRADER_PACKAGE_DIR / "inside"]
    sources.append(Path(sys.executable))
    if settings.data_dir is not None:
        sources.append(settings.data_dir)
    return sources


def worker_env(threads: int) -> dict[str, str]:
    """The whole environment the worker sees: no secrets, thread pools sized to its share."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
    }
    # Some CPUs need these for a correct OpenBLAS; they carry no secret.
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env
