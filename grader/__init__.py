"""Sandboxed autograder for deep-learning notebooks.

Kept import-light on purpose: the sandboxed worker imports ``grader.worker`` and must not pay
for pydantic or pytest. The public API is loaded lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "grade": "grader.api",
    "GradeSettings": "grader.settings",
    "SubmissionReport": "grader.report",
    "AssignmentSpec": "grader.spec",
    "load_assignment": "grader.spec",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'grader' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
