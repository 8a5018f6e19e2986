"""Sandboxed autograder for deep-learning notebooks.

Kept import-light on purpose: the sandboxed worker imports ``grader.inside.worker`` and must not
pay for pydantic or pytest. The public API is loaded lazily. ``grader/README.md`` says what each
subpackage is for and what it may import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "grade": "grader.grading.pipeline",
    "GradeSettings": "grader.settings",
    "SubmissionReport": "grader.grading.report",
    "AssignmentSpec": "grader.grading.spec",
    "load_assignment": "grader.grading.spec",
    # In a notebook cell: `from grader import check; check()` (issue 13). Lazy like the rest: the box
    # imports this file and must never pay for (or be able to reach) the student side.
    "check": "grader.student.jupyter",
}

# Module paths before the subpackages (issue 12). Course repositories and scripts may import them;
# they keep working as aliases of the module at its new place (the same module object). Four old
# modules share their name with a new subpackage (sandbox, batch, authoring, student): those
# packages hand out the old module's names themselves (``from grader.sandbox import Box``).
MOVED_MODULES = {
    "grader.worker": "grader.inside.worker",
    "grader.rpc": "grader.inside.rpc",
    "grader.datasets": "grader.inside.datasets",
    "grader.cgroups": "grader.sandbox.cgroups",
    "grader.zygote": "grader.sandbox.zygote",
    "grader.gpu": "grader.sandbox.gpu",
    "grader.faults": "grader.sandbox.faults",
    "grader.spec": "grader.grading.spec",
    "grader.submission": "grader.grading.submission",
    "grader.static_checks": "grader.grading.static_checks",
    "grader.session": "grader.grading.session",
    "grader.suite": "grader.grading.suite",
    "grader.report": "grader.grading.report",
    "grader.intake": "grader.batch.intake",
    "grader.executors": "grader.batch.executors",
    "grader.ray_executor": "grader.batch.ray_executor",
    "grader.gradebook": "grader.batch.gradebook",
    "grader.console": "grader.batch.console",
    "grader.exports": "grader.batch.exports",
    "grader.verify": "grader.authoring.verify",
    "grader.calibrate": "grader.authoring.calibrate",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module at its new place."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


sys.meta_path.insert(0, _MovedModuleFinder())


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'grader' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
