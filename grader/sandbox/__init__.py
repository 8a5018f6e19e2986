"""The grader's side of the box: build the bubblewrap command, limits (rlimits, cgroups), the
zygote that forks warm workers, GPU inventory and leases, and the faults a box can end in.

Imports ``grader.inside`` (for the frame format), ``grader.errors`` and the limits model of
``grader.grading.spec``; never the pytest side, batches or exports.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """Names of the old module ``grader.sandbox`` (now ``grader.sandbox.box``), for old imports."""
    import importlib

    module = importlib.import_module("grader.sandbox.box")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'grader.sandbox' has no attribute {name!r}") from None
