"""Error types that separate a bad input or environment from a bug, each with exit code."""

from __future__ import annotations


class GraderError(Exception):
    """Base for every error the grader reports to a person instead of a traceback."""

    exit_code = 3


class UsageError(GraderError):
    """The person asked for something that cannot be done: bad path, bad assignment.toml."""

    exit_code = 2


class SpecError(UsageError):
    """assignment.toml is missing or invalid; the message names the file, the field and the fix."""


class SandboxUnavailable(GraderError):
    """The sandbox cannot run on this machine; the message says why and what to do."""

    exit_code = 4


class SandboxFailure(GraderError):
    """The sandbox itself failed to start: an environment problem, never the student's fault."""
