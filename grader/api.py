"""The public core: ``grade(submission, assignment, settings) -> SubmissionReport``.

Stable import path; the implementation lives in ``grader.grading.pipeline``.
"""

from grader.grading.pipeline import grade

__all__ = ["grade"]
