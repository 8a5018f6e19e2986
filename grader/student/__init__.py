"""The student's side: checking a notebook against the visible tests on the student's own machine."""

from typing import Any


def __getattr__(name: str) -> Any:
    """Names of the old module ``grader.student`` (now ``grader.student.check``), for old imports."""
    import importlib

    module = importlib.import_module("grader.student.check")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'grader.student' has no attribute {name!r}") from None
