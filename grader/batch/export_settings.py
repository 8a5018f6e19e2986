"""What the exports need beyond the gradebook (roster, late rule, extensions...), kept in OUT.

Apart from ``grader.batch.exports`` so that `grader grade` can record them without importing the
HTML and plotting code (matplotlib: ~0.5 s) before a batch that may never export (issue 20).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from grader.batch.late import Extension, SubmissionTime
from grader.batch.roster import Roster
from grader.grading.spec import LatePolicy

SETTINGS_FILE = "export-settings.json"  # due date, roster, extensions, times: kept for a later `grader export`


class ExportSettings(BaseModel):
    """What the exports need beyond the gradebook, remembered in OUT so `grader export` sees the same."""

    model_config = ConfigDict(extra="forbid")

    late: LatePolicy | None = Field(None, description="The assignment's [late] table.")
    extensions: dict[str, Extension] = Field(default_factory=dict, description="Student id -> their extension.")
    submission_times: dict[str, SubmissionTime] = Field(default_factory=dict, description="From --submission-times.")
    roster: Roster | None = Field(None, description="From --roster.")
    template_sha256: str | None = Field(None, description="sha256 of the released template notebook.")
    title: str = Field("", description="The assignment's title: the Canvas column when none is given.")
    csv_bom: bool = Field(False, description="Start CSV files with a UTF-8 BOM (for Excel on Windows).")
    canvas_column: str = Field("", description='Canvas assignment column, e.g. "Backprop (12345)".')


def load_settings(out_dir: Path) -> ExportSettings:
    try:
        return ExportSettings.model_validate_json((out_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return ExportSettings()


def save_settings(out_dir: Path, clear: tuple[str, ...] = (), **changes: object) -> ExportSettings:
    """The remembered settings with ``changes`` (None values ignored) applied and ``clear`` reset, written back."""
    update = {k: v for k, v in changes.items() if v is not None}
    update |= {k: ExportSettings.model_fields[k].default for k in clear}
    settings = load_settings(out_dir).model_copy(update=update)
    settings = ExportSettings.model_validate(settings.model_dump())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SETTINGS_FILE).write_text(settings.model_dump_json(indent=2) + "\n")
    return settings
