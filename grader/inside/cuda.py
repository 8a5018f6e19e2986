"""CUDA inside the box: the allocator cap set before student code, and telling OOM from other errors.

Runs in the sandboxed worker: only the stdlib, and torch where the assignment preloaded it.
"""

from __future__ import annotations

import os
import sys

MEMORY_CAP_ENV = "GRADER_GPU_MEMORY_MB"
CUDA_OOM_MARKERS = ("cuda out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed", "out of memory")


def apply_gpu_memory_cap_in_worker() -> float | None:
    """In the sandbox, before student code: cap torch's CUDA allocator to GRADER_GPU_MEMORY_MB.

    Returns the fraction set, or None (no cap, torch not imported, no CUDA); never imports torch.
    Student code can lift this soft cap; the hard one is watched from outside (gpu_memory_used_mb).
    """
    torch = sys.modules.get("torch")
    raw = os.environ.get(MEMORY_CAP_ENV, "")
    if torch is None or not raw.isdigit():
        return None
    try:
        if not torch.cuda.is_available():
            return None
        device = torch.cuda.current_device()
        total = int(torch.cuda.get_device_properties(device).total_memory)
        fraction = min(1.0, int(raw) * 2**20 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        return fraction
    except Exception:  # noqa: BLE001 - a broken CUDA here shows up as the student's first CUDA error
        return None


def classify_cuda_error(message: str) -> str | None:
    """Return "memory" when an exception's text says CUDA ran out of memory, else None."""
    lowered = message.lower()
    return "memory" if any(marker in lowered for marker in CUDA_OOM_MARKERS) else None


def torch_gpu_peak_mb() -> int | None:
    """The most GPU memory torch's allocator has held in this process (MB), or None.

    Filled where NVML is absent (issue 20); never imports torch or starts CUDA: only a process
    that already uses the GPU answers. Reported by the student's own process, so it is a figure
    for the report, never a limit.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.max_memory_reserved()) // 2**20
    except Exception:  # noqa: BLE001 - a broken CUDA costs the figure, never the answer
        return None
