"""Entry points: compare a graded batch (and earlier years), or code already in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.grading.spec import Assignment
from grader.similarity.compare import Settings, compare_codes
from grader.similarity.extract import StudentCode, Template, extract, lay_out, read_template
from grader.similarity.result import SimilarityResult
from grader.similarity.sources import archive_files, archive_label, batch_files, loaded, scratch_dir

Cells = list[tuple[int, str]]


@dataclass(frozen=True)
class Entry:
    """One submission's code cells, by id; ``archive`` names the earlier year it comes from, if any."""

    id: str
    cells: Cells
    label: str = ""
    archive: str = ""


def template_from_source(template_source: str | None, function_names: Sequence[str], name: str = "t.ipynb") -> Template:
    """The template as the comparison needs it, from the text of the released notebook (or .py)."""
    if template_source is None:
        return Template(function_names=tuple(function_names))
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (name if name.endswith((".ipynb", ".py")) else "template.ipynb")
        path.write_text(template_source)
        from grader.similarity.sources import code_cells

        return read_template(code_cells(path), function_names)


def compare_entries(
    entries: Sequence[Entry], template: Template, settings: Settings | None = None, problems: Sequence[str] = ()
) -> SimilarityResult:
    """Compare code already loaded; the core that ``compare_batch`` wraps."""
    settings = settings or Settings()
    codes: list[StudentCode] = []
    notes = list(problems)
    for entry in entries:
        code = StudentCode(entry.id, entry.label, lay_out(entry.cells), archive=entry.archive)
        try:
            extract(code, template)
        except RecursionError:  # untrusted code can nest deeper than a recursive walk may go
            notes.append(f"{entry.id}: not compared: its code is nested too deeply to analyse")
            continue
        notes += [f"{entry.id}: {note}" for note in code.notes]
        codes.append(code)
    comparison = compare_codes(codes, template, settings)
    return SimilarityResult(
        function_names=list(template.function_names),
        codes=codes,
        pairs=comparison.pairs[: max(settings.max_pairs, sum(p.flagged for p in comparison.pairs))],
        settings=settings,
        index=comparison.index,
        problems=notes,
    )


def compare_batch(
    out_dir: Path,
    template_source: str | None,
    function_names: list[str],
    against: Sequence[Path] = (),
    settings: Settings | None = None,
) -> SimilarityResult:
    """Compare every submission of a graded batch with the others, and with earlier years' archives.

    Args:
        out_dir: the batch's OUT folder (reports ``<id>.json``, ``gradebook.sqlite``).
        template_source: text of the released template notebook; its given code is not compared.
            None compares whole submissions.
        function_names: the functions students write (``relu_forward``, ``LSTMCell.forward``); empty:
            the template's functions that raise NotImplementedError.
        against: earlier years: graded OUT folders, folders of submissions or .zip archives.
    """
    template = template_from_source(template_source, function_names)
    found, problems = batch_files(out_dir)
    entries = [Entry(item.id, cells, item.label) for item, cells in loaded(found, problems)]
    with scratch_dir() as scratch:
        for number, archive in enumerate(against):
            files, archive_problems = archive_files(archive, Path(scratch) / str(number))
            problems += archive_problems
            entries += [Entry(i.id, cells, i.label, archive_label(archive)) for i, cells in loaded(files, problems)]
    return compare_entries(entries, template, settings, problems)


def compare_graded_batch(
    out_dir: Path, assignment: Assignment, against: Sequence[Path] = (), function_names: Sequence[str] = ()
) -> SimilarityResult:
    """compare_batch with the assignment's released template as the given code (what a batch runs)."""
    template = assignment.assignment_dir / assignment.spec.notebook
    source = template.read_text(encoding="utf-8") if template.is_file() else None
    return compare_batch(out_dir, source, list(function_names), against)
