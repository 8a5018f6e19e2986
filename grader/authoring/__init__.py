"""Course authoring: the student release (template from the solution), ``verify`` for a course's
CI, and ``calibrate`` (thresholds from the reference over seeds). Uses ``grader.grading``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """Names of the old module ``grader.authoring`` (now ``grader.authoring.release``), for old imports."""
    import importlib

    module = importlib.import_module("grader.authoring.release")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'grader.authoring' has no attribute {name!r}") from None
