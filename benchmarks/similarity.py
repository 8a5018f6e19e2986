"""Benchmark: `grader similarity` over a batch of 600 synthetic backprop submissions, timed end to end.

Each synthetic student takes every function from one of the correct solutions (the reference and the
independent ones in tests/fixtures/similarity/backprop), changes some of its lines in ways that change
the normalised code (so that fragments are shared by tens of students, as idioms are in a real class),
and disguises the rest (new names, comments, prints). Planted among them: ten disguised copies of
other students and six byte-identical notebooks. The batch is written as an OUT folder (a report
OUT/<id>.json and a notebook per student) and compared with compare_batch, as the CLI would.
Usage (from the repository root):

    .venv/bin/python benchmarks/similarity.py --students 600
"""

from __future__ import annotations

import argparse
import ast
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbformat  # noqa: E402

from grader.grading.report import Resources, SubmissionInfo, SubmissionReport  # noqa: E402
from grader.grading.report import write_report as write_json_report  # noqa: E402
from grader.similarity import compare_batch, write_report  # noqa: E402
from grader.similarity.calibrate import fill_template, protected_names  # noqa: E402
from grader.similarity.extract import read_template  # noqa: E402
from grader.similarity.obfuscate import apply_edits, disguise  # noqa: E402
from grader.similarity.sources import code_cells  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "backprop"
WRAPPERS = ("({}) * 1.0", "({}) + 0.0", "np.asarray({})", "np.array({})", "({}).copy()", "np.nan_to_num({})")


def _pool(template_cells: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    pool = [code_cells(ROOT / "solutions" / NAME / f"{NAME}.ipynb")]
    for path in sorted((ROOT / "tests" / "fixtures" / "similarity" / NAME).glob("*.py")):
        pool.append(fill_template(template_cells, path.read_text()))
    return pool


def _mutate(source: str, names: set[str], rng: random.Random) -> str:
    """Wrap some assigned or returned values: each student's functions differ in a few fragments."""
    tree = ast.parse(source)
    edits = []
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names):
        for stmt in ast.walk(fn):
            value = getattr(stmt, "value", None)
            one_line = isinstance(stmt, (ast.Assign, ast.Return)) and stmt.lineno == stmt.end_lineno
            if one_line and value is not None and rng.random() < 0.35:
                text = ast.get_source_segment(source, value) or ""
                wrapped = rng.choice(WRAPPERS).format(text)
                edits.append((value.lineno, value.col_offset, value.end_col_offset or 0, wrapped))
    return apply_edits(source, edits)


def synthetic_class(students: int, seed: int) -> dict[str, list[tuple[int, str]]]:
    """Students' cells by id: mixed solutions, mutated and disguised, with planted similar ones."""
    rng = random.Random(seed)
    template_cells = code_cells(ROOT / "assignments" / NAME / f"{NAME}.ipynb")
    template = read_template(template_cells, [])
    pool = _pool(template_cells)
    names = set(template.function_names)
    keep = protected_names(template)
    out: dict[str, list[tuple[int, str]]] = {}
    for number in range(students - 16):
        picks = [rng.choice(pool) for _ in template_cells]
        cells = [
            (index, source if source.strip() in template.cell_sources else _mutate(source, names, rng))
            for index, source in (choice[i] for i, choice in enumerate(picks))
        ]
        steps = tuple(step for step in ("rename", "comments", "prints") if rng.random() < 0.5)
        out[f"s{number:03d}"] = disguise(cells, template.cell_sources, steps, number, keep)
    originals = list(out)
    for number in range(10):
        source_id = rng.choice(originals)
        out[f"copy{number}_of_{source_id}"] = disguise(
            out[source_id],
            template.cell_sources,
            ("rename", "reorder_statements", "dead_code", "comments"),
            number,
            keep,
        )
    ring = out[rng.choice(originals)]
    for number in range(6):
        out[f"ring{number}"] = ring
    return out


def write_batch(cells_by_id: dict[str, list[tuple[int, str]]], out_dir: Path) -> None:
    """An OUT folder as `grader grade` leaves it: a notebook and a report per student."""
    template = nbformat.read(ROOT / "assignments" / NAME / f"{NAME}.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    (out_dir / "submissions").mkdir(parents=True)
    for student_id, cells in cells_by_id.items():
        sources = dict(cells)
        for index, cell in enumerate(template.cells):
            if index in sources:
                cell.source = sources[index]
        path = out_dir / "submissions" / f"{student_id}.ipynb"
        nbformat.write(template, path)  # type: ignore[no-untyped-call]
        report = SubmissionReport(
            grader_version="bench", assignment=NAME, status="graded", score=100.0, max_score=100.0, seed=0,
            submission=SubmissionInfo(id=student_id, path=str(path), sha256=None), sandbox="none",
            resources=Resources(wall_s=1.0, cpu_s=1.0, peak_rss_mb=100.0),
        )  # fmt: skip
        write_json_report(report, out_dir / f"{student_id}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cells_by_id = synthetic_class(args.students, args.seed)
    template_source = (ROOT / "assignments" / NAME / f"{NAME}.ipynb").read_text()
    with tempfile.TemporaryDirectory() as folder:
        out_dir = Path(folder) / "out"
        write_batch(cells_by_id, out_dir)
        started, cpu_started = time.perf_counter(), time.process_time()
        result = compare_batch(out_dir, template_source, [])
        compared, compared_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        started = time.perf_counter()
        write_report(result, out_dir / "similarity.html")
        reported = time.perf_counter() - started
    planted = {frozenset((p.a, p.b)) for p in result.flagged}
    copies = [i for i in cells_by_id if i.startswith("copy")]
    found = sum(frozenset((c, c.split("_of_")[1])) in planted for c in copies)
    ring = sum(1 for g in result.groups if {f"ring{i}" for i in range(6)} <= set(g))
    others = [p for p in result.flagged if not (p.a.startswith(("copy", "ring")) or p.b.startswith(("copy", "ring")))]
    print(
        f"{result.compared} submissions compared in {compared:.2f} s wall, {compared_cpu:.2f} s CPU (one process); "
        f"HTML report written in {reported:.2f} s"
    )
    print(f"planted copies found: {found}/{len(copies)}; ring of six identical found as one group: {ring == 1}")
    print(f"other similar pairs (students who drew the same solutions and changes): {len(others)}")
    print(result.summary_text().splitlines()[0])


if __name__ == "__main__":
    main()
