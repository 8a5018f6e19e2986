"""Assignment specs: assignment.toml read and validated into an AssignmentSpec."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader.errors import SpecError
from grader.grading.reference_limits import RelativeLimits

SPEC_FILE = "assignment.toml"


class Limits(BaseModel):
    """Resource limits for one submission; per-test overrides come from @limits."""

    model_config = ConfigDict(extra="forbid")

    call_timeout_s: float = Field(10.0, gt=0, description="Wall seconds one call into student code may take.")
    submission_timeout_s: float = Field(
        300.0, gt=0, description="Wall seconds for the whole submission, all tests together."
    )
    load_timeout_s: float = Field(
        30.0, gt=0, description="Wall seconds to run the notebook's cells (and preloads) before the first test."
    )
    cell_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Wall seconds one top-level cell may run at load; a cell past it is interrupted and recorded "
        "as timeout, and loading goes on with the next cell. Default: what is left of load_timeout_s, which "
        "stays the cap for all cells together.",
    )
    cpu_s: int = Field(300, gt=0, description="CPU seconds per worker process (RLIMIT_CPU).")
    memory_mb: int = Field(1024, ge=64, description="Memory of the whole sandbox in MiB.")
    threads: int = Field(
        1, ge=1, description="Threads for numpy/torch in the worker; 1 keeps small models fast and scores stable."
    )
    processes: int = Field(32, ge=1, description="Processes and threads the sandbox may hold at once.")
    output_bytes: int = Field(
        1_000_000, ge=0, description="Bytes of stdout+stderr kept; the rest is discarded and counted."
    )
    file_size_mb: int = Field(16, ge=1, description="Largest file the submission may write (RLIMIT_FSIZE).")
    scratch_mb: int = Field(64, ge=1, description="Size of the private writable scratch dir /tmp.")
    gpu_s: float | None = Field(
        None, gt=0, description="GPU seconds per submission: wall time of calls while a GPU is leased."
    )
    gpu_memory_mb: int | None = Field(None, ge=64, description="GPU memory cap; default: the lease's share.")
    cpu_fallback_factor: float = Field(
        1.0, ge=1, description="gpu = 'optional' without a GPU: time limits are multiplied by this factor."
    )
    relative: RelativeLimits | None = Field(
        None,
        description="[limits.relative]: call, load and submission limits as a multiple of the reference "
        "solution's time on the grading machine (measured in pre-flight); the fixed limits apply without it.",
    )


class StaticPolicy(BaseModel):
    """What the submission may not import or call, checked on the source outside the sandbox."""

    model_config = ConfigDict(extra="forbid")

    forbidden_imports: list[str] = Field(
        default_factory=list,
        description="Module names (and their submodules) the submission may not import.",
    )
    forbidden_calls: list[str] = Field(
        default_factory=list,
        description="Dotted names matched against the end of attribute chains and imports; "
        "shell-style wildcards allowed: 'nn.LSTM', 'nn.GRU*'.",
    )


class FeedbackPolicy(BaseModel):
    """What students are shown of a grading run beyond names, statuses and points (see DESIGN.md)."""

    model_config = ConfigDict(extra="forbid")

    show_student_errors: bool = Field(
        False,
        description="Show students the text of exceptions their code raised under the hidden tests (during "
        "calls and while the notebook loaded). Off: only the exception's type and the line in their code, "
        "because the text can carry the hidden inputs the code received.",
    )
    show_output: bool = Field(
        False,
        description="Show students what their code printed while it was graded. Off, because prints made "
        "during hidden-test calls can carry the hidden inputs.",
    )


class LatePolicy(BaseModel):
    """[late]: the due date and what a late submission costs (issue 15); applied at export, never at grading."""

    model_config = ConfigDict(extra="forbid")

    due: datetime = Field(
        description="Due date and time: a TOML date-time with an offset (2026-11-20T23:59:00+01:00), or a local "
        "one (2026-11-20T23:59:00) read in `timezone`."
    )
    timezone: str = Field(
        "UTC",
        description="IANA time zone (Europe/Berlin) for a local `due`, for extensions and for LMS submission "
        "times, which carry no zone.",
    )
    grace_minutes: float = Field(0, ge=0, description="Minutes after the due time (or extension) still on time.")
    penalty_percent_per_day: float = Field(
        0, ge=0, le=100, description="Percent of `penalty_basis` taken per started day late (after the grace)."
    )
    max_penalty_percent: float = Field(100, ge=0, le=100, description="Cap on the total penalty, in percent.")
    penalty_basis: Literal["max_score", "score"] = Field(
        "max_score", description="What the percentages are of: the points available, or the points earned."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _due_has_zone(self) -> LatePolicy:
        if self.due.tzinfo is None:
            self.due = self.due.replace(tzinfo=ZoneInfo(self.timezone))
        return self


class AssignmentSpec(BaseModel):
    """One assignment as declared in assignments/<name>/assignment.toml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="Folder name of the assignment; set from the path, not the file.")
    title: str = Field(description="Human title shown in reports.")
    notebook: str = Field(description="File name of the student notebook, e.g. backprop.ipynb.")
    preload: list[str] = Field(
        default_factory=lambda: ["numpy"],
        description="Modules imported in the worker before student code (paid once per worker).",
    )
    gpu: Literal["none", "optional", "required"] = Field(
        "none",
        description="none: CPU only; optional: a GPU if one is leased, else the CPU with scaled limits; "
        "required: not graded without a GPU (tests skipped, the submission listed for a rerun).",
    )
    seed: int = Field(0, description="Seed for random, numpy and torch in the worker.")
    data_dir: str | None = Field(
        None,
        description="Course-relative folder of training data mounted read-only at /data in the "
        "sandbox. Never put held-out labels there: hidden splits belong in autograde_tests/.",
    )
    limits: Limits = Field(default_factory=Limits, description="Resource limits.")
    static: StaticPolicy = Field(default_factory=StaticPolicy, description="Static source checks.")
    feedback: FeedbackPolicy = Field(
        default_factory=FeedbackPolicy, description="What students see of their code's own errors and output."
    )
    late: LatePolicy | None = Field(None, description="[late]: due date and late penalty; none: nothing is late.")


class Assignment(BaseModel):
    """A spec plus where its parts live on disk (the trusted side only)."""

    model_config = ConfigDict(frozen=True)

    spec: AssignmentSpec
    assignment_dir: Path = Field(description="assignments/<name>: template, visible tests, spec.")
    hidden_tests_dir: Path = Field(description="autograde_tests/<name>: hidden tests and probes.py.")
    solutions_dir: Path = Field(description="solutions/<name>: reference notebook(s).")
    data_dir: Path | None = Field(None, description="Resolved data_dir, mounted at /data.")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def visible_tests_dir(self) -> Path:
        return self.assignment_dir / "tests"

    @property
    def probes_path(self) -> Path:
        return self.hidden_tests_dir / "probes.py"


def _check_gpu_preload(spec: AssignmentSpec, path: Path) -> None:
    if spec.gpu != "none" and "torch" not in spec.preload:
        raise SpecError(
            f'{path}: preload: gpu = {spec.gpu!r} needs "torch" in preload, so that the GPU memory cap '
            "is applied before student code runs; add it"
        )


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path} is not a valid assignment spec:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {field}: unknown field; check its spelling against the documented fields")
        elif item["type"] == "missing":
            lines.append(f"  {field}: required field is missing; add `{field} = ...`")
        else:
            lines.append(f"  {field}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_spec(path: Path) -> AssignmentSpec:
    """Read and validate one assignment.toml; raise SpecError naming file, field and fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path} does not exist: every assignment folder needs an {SPEC_FILE}") from None
    except OSError as exc:
        raise SpecError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    if "name" in data:
        raise SpecError(f"{path}: name: do not set it; the assignment's name is its folder name")
    try:
        spec = AssignmentSpec.model_validate({**data, "name": path.parent.name})
    except ValidationError as exc:
        raise SpecError(_format_validation_error(path, exc)) from None
    _check_gpu_preload(spec, path)
    return spec


def find_course_root(assignment_dir: Path) -> Path:
    """The course root is the folder that holds assignments/."""
    return assignment_dir.resolve().parent.parent


def load_assignment(name_or_path: str | Path, course_dir: Path | None = None) -> Assignment:
    """Resolve an assignment given by name (under course_dir/assignments) or by folder path."""
    candidate = Path(name_or_path)
    course = (course_dir or Path.cwd()).resolve()
    if candidate.is_dir() and (candidate / SPEC_FILE).exists():
        assignment_dir = candidate.resolve()
    elif (course / "assignments" / str(name_or_path) / SPEC_FILE).exists():
        assignment_dir = course / "assignments" / str(name_or_path)
    else:
        known = sorted(p.parent.name for p in (course / "assignments").glob(f"*/{SPEC_FILE}"))
        hint = f"known assignments: {', '.join(known)}" if known else "no assignments found there"
        raise SpecError(
            f"assignment {str(name_or_path)!r} not found under {course / 'assignments'} ({hint}); "
            "give a name under ./assignments, a folder path, or --course DIR"
        )
    spec = load_spec(assignment_dir / SPEC_FILE)
    root = find_course_root(assignment_dir)
    hidden = root / "autograde_tests" / spec.name
    if not hidden.is_dir():
        raise SpecError(f"hidden tests for {spec.name!r} not found: expected a folder {hidden} with test_*.py files")
    data_dir = None
    if spec.data_dir is not None:
        data_dir = (root / spec.data_dir).resolve()
        if not data_dir.is_dir():
            raise SpecError(f"{assignment_dir / SPEC_FILE}: data_dir: {data_dir} is not a folder")
    return Assignment(
        spec=spec,
        assignment_dir=assignment_dir,
        hidden_tests_dir=hidden,
        solutions_dir=root / "solutions" / spec.name,
        data_dir=data_dir,
    )
