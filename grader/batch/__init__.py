"""Grading a class: intake of files, folders and LMS archives, executors (process pool, Ray),
the resumable gradebook, the TA's console and the exports.

Wraps ``grader.grading.pipeline.grade``; nothing in ``grader.grading`` or ``grader.sandbox``
imports from here.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """Names of the old module ``grader.batch`` (now ``grader.batch.runner``), for old imports."""
    import importlib

    module = importlib.import_module("grader.batch.runner")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'grader.batch' has no attribute {name!r}") from None
