"""What a comparison found, in the words a TA reads: similar pairs and groups, never a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from grader.similarity.compare import Index, PairMatch, Settings, clusters, similar_functions
from grader.similarity.extract import StudentCode

EXPLANATION = (
    "Compared: each submission's own code, function by function, after the template's given code was "
    "taken out. Before comparing, names of variables and helpers, comments, docstrings, prints, type "
    "hints, formatting, unused code and the order of functions and of statements that do not depend on "
    "each other were normalised away, so these do not change the result. Code that many submissions "
    "write alike counts for little. A similar pair is a place to look, not a finding: two students can "
    "arrive at the same short solution independently, and the TA decides."
)


@dataclass
class SimilarityResult:
    """The outcome of ``compare_batch``: pairs ranked by similarity, groups, and what was left out."""

    function_names: list[str]
    codes: list[StudentCode]
    pairs: list[PairMatch]
    settings: Settings
    index: Index
    problems: list[str] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return sum(1 for code in self.codes if not code.archive)

    @property
    def flagged(self) -> list[PairMatch]:
        return [pair for pair in self.pairs if pair.flagged]

    @property
    def groups(self) -> list[list[str]]:
        """Submissions joined by similar pairs: A~B and B~C make one group A~B~C."""
        return clusters(self.pairs)

    def code(self, submission_id: str) -> StudentCode:
        return next(code for code in self.codes if code.id == submission_id)

    def summary_text(self) -> str:
        """A few lines for the console."""
        archives = len(self.codes) - self.compared
        head = f"similarity: {self.compared} submissions compared"
        head += f" (and {archives} from earlier years)" if archives else ""
        head += f", {len(self.flagged)} similar pairs in {len(self.groups)} groups"
        lines = [head + "; a TA decides what each one means"]
        for group in self.groups[:10]:
            best = max(p.similarity for p in self.flagged if p.a in group and p.b in group)
            lines.append(f"  {' ~ '.join(group)}  (up to {best:.0%} similar)")
        if len(self.groups) > 10:
            lines.append(f"  ... and {len(self.groups) - 10} more groups in the report")
        lines += [f"  not compared: {problem}" for problem in self.problems[:5]]
        return "\n".join(lines)

    def summary_rows(self) -> list[dict[str, str]]:
        """Rows for the batch summary's similarity section: one per similar pair, most similar first."""
        return summary_rows(self)


def _function_text(pair: PairMatch) -> str:
    parts = [f"{f.name} {f.similarity:.0%}" for f in pair.functions if f.similarity is not None and f.similarity >= 0.5]
    return ", ".join(parts)


def note_for(pair: PairMatch, settings: Settings) -> str:
    """Why a pair is listed, when its overall similarity does not say it."""
    if pair.identical:
        return "identical after normalisation"
    if pair.similarity < settings.threshold:
        alike = ", ".join(f"{f.name} ({f.similarity or 0:.0%})" for f in similar_functions(pair, settings))
        return f"one function alike: {alike}" if alike else ""
    return ""


def summary_rows(result: SimilarityResult) -> list[dict[str, str]]:
    """Rows for the batch summary: students, similarity, the functions most alike, a note."""
    groups = result.groups
    rows = []
    for pair in result.flagged:
        group = next((g for g in groups if pair.a in g), [])
        note = note_for(pair, result.settings)
        rows.append(
            {
                "students": f"{pair.a} ~ {pair.b}",
                "similarity": f"{pair.similarity:.0%}",
                "functions": _function_text(pair),
                "group": " ~ ".join(group) if len(group) > 2 else "",
                "note": note,
            }
        )
    return rows
