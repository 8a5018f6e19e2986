"""What can go wrong in student code during a call, as exceptions the test runner classifies."""

from __future__ import annotations


class SubmissionFault(Exception):
    """A call into the submission did not return a value; ``status`` is the test's status."""

    status = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StudentError(SubmissionFault):
    """The student's code raised; ``exc_type`` is the exception's class name."""

    status = "error"

    def __init__(self, message: str, exc_type: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.exc_type, self.traceback = exc_type, traceback


class CallTimeout(SubmissionFault):
    status = "timeout"


class OutOfMemory(SubmissionFault):
    status = "memory"


class WorkerCrashed(SubmissionFault):
    status = "crashed"


class InvalidValue(SubmissionFault):
    """The submission returned something that may not cross the boundary, or garbage frames."""

    status = "invalid"


class NotGraded(SubmissionFault):
    """The submission was never run: unreadable, or it uses what the assignment forbids."""

    status = "failed"


class NotRun(SubmissionFault):
    """The test could not run here (a required GPU is missing); not the student's fault."""

    status = "skipped"
