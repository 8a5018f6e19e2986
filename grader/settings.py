"""Settings for one grading run: how to isolate, how many threads, which tests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.grading.reference_limits import ReferenceTimes
from grader.sandbox.gpu import GpuDevice


class GradeSettings(BaseModel):
    """Run-time choices that are not part of the assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sandbox: Literal["bwrap", "uid", "none"] = Field(
        "bwrap", description="Isolation for student code: bwrap, uid (a separate user, for containers) or none."
    )
    tests: Literal["hidden", "visible"] = Field(
        "hidden", description="Which tests score: hidden (grading) or visible (student self-check)."
    )
    threads: int | None = Field(
        None, ge=1, description="Threads for the worker's numpy/torch; default: the assignment's limits.threads."
    )
    seed: int | None = Field(None, description="Overrides the assignment's seed (calibration runs).")
    gpu_device: GpuDevice | None = Field(None, description="The GPU leased to this submission, if any.")
    gpu_memory_cap_mb: int | None = Field(None, description="GPU memory the submission may use (its share).")
    reference_times: ReferenceTimes | None = Field(
        None, description="The reference solution's times on this machine, for [limits.relative] (pre-flight)."
    )
    warm_workers: bool = Field(
        True, description="Fork each worker from a warm zygote (bwrap only); False: a fresh sandbox each time."
    )
