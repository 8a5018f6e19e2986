"""Gradescope's container layout, overridable by environment variables so the flow runs anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "GRADESCOPE_ROOT"  # /autograder on Gradescope; a temporary folder in tests
PYTHON_ENV = "GRADESCOPE_GRADER_VENV"  # where setup.sh installs the grader
DEFAULT_ROOT = Path("/autograder")
DEFAULT_VENV = Path("/opt/dl-grader")


@dataclass(frozen=True)
class Layout:
    """Gradescope's documented folders: source (the bundle), submission, results."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        return cls(Path(os.environ.get(ROOT_ENV, str(DEFAULT_ROOT))))

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def submission(self) -> Path:
        return self.root / "submission"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def course(self) -> Path:
        return self.source / "course"

    @property
    def results_json(self) -> Path:
        return self.results / "results.json"

    @property
    def staff_report(self) -> Path:
        return self.results / "staff_report.json"
