"""Similarity across a batch: which submissions' own code is alike, per function, for a TA to judge."""

from grader.similarity.api import Entry, compare_batch, compare_entries, compare_graded_batch, template_from_source
from grader.similarity.compare import Settings
from grader.similarity.report_html import write_report
from grader.similarity.result import SimilarityResult, summary_rows
from grader.similarity.sources import batch_assignment

__all__ = [
    "Entry",
    "Settings",
    "batch_assignment",
    "SimilarityResult",
    "compare_batch",
    "compare_entries",
    "compare_graded_batch",
    "summary_rows",
    "template_from_source",
    "write_report",
]
