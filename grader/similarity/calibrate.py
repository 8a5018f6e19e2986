"""Calibration: disguised copies must be found, independent correct solutions must not be; prints the table."""

from __future__ import annotations

import argparse
import ast
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.similarity.compare import Settings, code_digest, compare_codes
from grader.similarity.extract import OTHER, StudentCode, Template, extract, lay_out, read_template
from grader.similarity.obfuscate import COMBINED, SINGLE, Cells, FormatterMissing, disguise
from grader.similarity.sources import code_cells

REFERENCE = "reference"
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Origin:
    """A correct solution; ``family`` groups those that are edits of one another."""

    label: str
    family: str
    cells: Cells


@dataclass(frozen=True)
class Row:
    """One line of the calibration table."""

    assignment: str
    transform: str
    copies_found: int
    copies: int
    independent_flagged: int
    independent_pairs: int
    lowest_copy: float
    highest_independent: float
    note: str = ""


def fill_template(template: Cells, solution: str) -> Cells:
    """The template with its functions and classes replaced by the solution's of the same name.

    The solution's other definitions go before the first function they replace, its imports into the
    first cell, as a student who pastes their code into the released notebook would have them.
    """
    tree = ast.parse(solution)
    given = {n.name: n for n in tree.body if isinstance(n, _DEFS)}
    imports = [
        ast.get_source_segment(solution, n) or "" for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    out: Cells = []
    used: set[str] = set()
    for index, source in template:
        lines = source.split("\n")
        nodes = [n for n in ast.parse(source).body if isinstance(n, _DEFS) and n.name in given]
        for node in sorted(nodes, key=lambda n: -n.lineno):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines[first - 1 : node.end_lineno] = _segment(solution, given[node.name]).split("\n")
            used.add(node.name)
        out.append((index, "\n".join(lines)))
    extras = [_segment(solution, n) for n in tree.body if isinstance(n, _DEFS) and n.name not in used]
    extras += [ast.get_source_segment(solution, n) or "" for n in tree.body if not isinstance(n, (*_DEFS, ast.Import,
               ast.ImportFrom, ast.Expr))]  # fmt: skip
    return _place_extras(out, [i for i in imports if i], [e for e in extras if e], used)


def _segment(source: str, node: ast.stmt) -> str:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return "\n".join(source.split("\n")[first - 1 : node.end_lineno])


def _place_extras(cells: Cells, imports: list[str], extras: list[str], used: set[str]) -> Cells:
    out = list(cells)
    if imports:
        index, source = out[0]
        out[0] = (index, source + "\n" + "\n".join(imports))
    if extras:
        target = next(
            (i for i, (_, s) in enumerate(out) if any(f"def {n}(" in s or f"class {n}(" in s for n in used)), 0
        )
        index, source = out[target]
        out[target] = (index, "\n\n\n".join(extras) + "\n\n\n" + source)
    return out


def _correct_variants(folder: Path) -> list[Path]:
    expected = folder / "expected.toml"
    if not expected.exists():
        return []
    kinds = tomllib.loads(expected.read_text())
    return [p for p in sorted(folder.glob("*.py")) + sorted(folder.glob("*.ipynb"))
            if kinds.get(p.stem, {}).get("kind") == "correct"]  # fmt: skip


def _as_cells(path: Path, template: Cells) -> Cells:
    if path.suffix == ".ipynb" or "# %%" in path.read_text():
        return code_cells(path)
    return fill_template(template, path.read_text())


def origins(repo: Path, name: str, fixtures: Path | None, template: Template, cells: Cells) -> list[Origin]:
    """The reference solution, its correct variants, samples/NAME/correct.ipynb, and the fixtures' solutions.

    The variants are the reference's author's edits of the reference (the project's convention), so they
    join its family, and so does a sample that is the reference's code; pairs within a family are not
    counted as independent.
    """
    reference = code_cells(repo / "solutions" / name / f"{name}.ipynb")
    found = [Origin(REFERENCE, REFERENCE, reference)]
    for path in _correct_variants(repo / "solutions" / name / "variants"):
        found.append(Origin(f"variants/{path.stem}", REFERENCE, _as_cells(path, cells)))
    sample = repo / "samples" / name / "correct.ipynb"
    if sample.exists():
        ref_digest = code_digest(extract(StudentCode("r", "", lay_out(reference)), template))
        sample_cells = code_cells(sample)
        digest = code_digest(extract(StudentCode("s", "", lay_out(sample_cells)), template))
        found.append(Origin("samples/correct", REFERENCE if digest == ref_digest else "samples/correct", sample_cells))
    for path in sorted(fixtures.glob("*.py")) if fixtures is not None and fixtures.is_dir() else []:
        found.append(Origin(f"fixtures/{path.stem}", f"fixtures/{path.stem}", fill_template(cells, path.read_text())))
    return found


def protected_names(template: Template) -> frozenset[str]:
    """Names a copier cannot rename without breaking the assignment's interface."""
    api = {word for word in template.identifiers if "_" in word.strip("_") or word[:1].isupper()}
    return frozenset(template.defined | api | {n.split(".")[0] for n in template.function_names})


def calibrate(repo: Path, name: str, fixtures: Path | None, settings: Settings | None = None) -> list[Row]:
    """One row per transformation: how many copies are found, how many independent pairs are flagged.

    For each correct solution S, a class is made of S, a disguised copy of S, and one solution of every
    other family; copies found counts the S whose copy is flagged, independent pairs are all pairs across
    families in those classes (each pair counted once).
    """
    settings = settings or Settings()
    cells = code_cells(repo / "assignments" / name / f"{name}.ipynb")
    template = read_template(cells, [])
    pool = origins(repo, name, fixtures, template, cells)
    codes = {o.label: extract(StudentCode(o.label, "", lay_out(o.cells)), template) for o in pool}
    rows = []
    for transform in [*SINGLE, "combined"]:
        steps = COMBINED if transform == "combined" else (transform,)
        try:
            copies = [
                disguise(o.cells, template.cell_sources, steps, seed, protected_names(template))
                for seed, o in enumerate(pool)
            ]
        except FormatterMissing as exc:
            rows.append(Row(name, transform, 0, 0, 0, 0, 0.0, 0.0, f"not run: {exc}"))
            continue
        copied = {
            o.label: extract(StudentCode(f"{o.label}~", "", lay_out(c)), template)
            for o, c in zip(pool, copies, strict=True)
        }
        rows.append(_score(name, transform, pool, codes, copied, template, settings))
    rows.append(_partial(name, pool, codes, template, settings))
    return rows


PARTIAL = "one_function_copied"


def _largest_function(code: StudentCode) -> str | None:
    named = {u: sum(len(t.texts) for t in s) for u, s in code.units.items() if u != OTHER}
    return max(named, key=lambda u: (named[u], u)) if named else None


def paste_function(source: Cells, target: Cells, unit: str) -> Cells:
    """``target`` with ``unit``'s definition (or its class) and the helpers it calls taken from ``source``."""
    name = unit.split(".")[0]
    defs = {n.name: (s, n) for _, s in source for n in ast.parse(s).body if isinstance(n, _DEFS)}
    source_text, node = defs[name]
    called = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    helpers = [_segment(defs[h][0], defs[h][1]) for h in sorted(called & set(defs)) if h != name]
    imports = [ast.get_source_segment(s, n) or "" for _, s in source for n in ast.parse(s).body
               if isinstance(n, ast.Import | ast.ImportFrom)]  # fmt: skip
    return fill_template(target, "\n".join(imports) + "\n\n\n" + "\n\n\n".join([*helpers, _segment(source_text, node)]))


def _partial(
    name: str, pool: Sequence[Origin], codes: dict[str, StudentCode], template: Template, settings: Settings
) -> Row:
    """One function (its class, for a method) copied into another family's solution, then disguised."""
    first_of = {o.family: o.label for o in reversed(pool)}
    judged = found = 0
    lowest = 1.0
    for seed, origin in enumerate(pool):
        unit = _largest_function(codes[origin.label])
        donors = [label for fam, label in first_of.items() if fam != origin.family]
        if unit is None or not donors:
            continue
        donor = next(o for o in pool if o.label == donors[seed % len(donors)])
        pasted = paste_function(origin.cells, donor.cells, unit)
        cells = disguise(
            pasted, template.cell_sources, ("rename", "comments", "prints"), seed, protected_names(template)
        )
        copy = extract(StudentCode("copy", "", lay_out(cells)), template)
        others = [codes[label] for label in donors if label != donor.label]
        comparison = compare_codes([codes[origin.label], copy, *others], template, settings)
        pair = next((p for p in comparison.pairs if {p.a, p.b} == {origin.label, "copy"}), None)
        unit_match = next((f for f in pair.functions if f.name == unit), None) if pair is not None else None
        if unit_match is None or unit_match.mass < settings.function_min_mass:
            continue  # a function this short is no evidence on its own, copied or not
        judged += 1
        found += pair is not None and pair.flagged
        lowest = min(lowest, unit_match.similarity or 0.0)
    note = f"{found}/{judged} found (of {len(pool)}: the others copy a function too short to judge)"
    return Row(name, PARTIAL, found, judged, 0, 0, lowest, 0.0, note)


def _score(
    name: str,
    transform: str,
    pool: Sequence[Origin],
    codes: dict[str, StudentCode],
    copied: dict[str, StudentCode],
    template: Template,
    settings: Settings,
) -> Row:
    family = {o.label: o.family for o in pool} | {f"{o.label}~": o.family for o in pool}
    first_of = {o.family: o.label for o in reversed(pool)}
    found, lowest = 0, 1.0
    independent: dict[tuple[str, str], tuple[float, bool]] = {}
    for origin in pool:
        others = [codes[label] for fam, label in first_of.items() if fam != origin.family]
        batch = [codes[origin.label], copied[origin.label], *others]
        pairs = {frozenset((p.a, p.b)): p for p in compare_codes(batch, template, settings).pairs}
        copy_pair = pairs.get(frozenset((origin.label, f"{origin.label}~")))
        found += copy_pair is not None and copy_pair.flagged
        lowest = min(lowest, copy_pair.similarity if copy_pair is not None else 0.0)
        for i, a in enumerate(batch):
            for b in batch[i + 1 :]:
                if family[a.id] != family[b.id]:
                    p = pairs.get(frozenset((a.id, b.id)))
                    key = (min(a.id, b.id), max(a.id, b.id))
                    seen = independent.get(key, (0.0, False))
                    now = (p.similarity, p.flagged) if p is not None else (0.0, False)
                    independent[key] = (max(seen[0], now[0]), seen[1] or now[1])
    flagged = sum(1 for _, f in independent.values() if f)
    highest = max((s for s, _ in independent.values()), default=0.0)
    return Row(name, transform, found, len(pool), flagged, len(independent), lowest, highest)


def assignments(repo: Path) -> list[str]:
    """Assignments with a released template and a reference solution."""
    found = []
    for folder in sorted((repo / "assignments").iterdir()):
        name = folder.name
        if (folder / f"{name}.ipynb").exists() and (repo / "solutions" / name / f"{name}.ipynb").exists():
            found.append(name)
    return found


def table(rows: Sequence[Row]) -> str:
    """The calibration table as Markdown."""
    head = (
        "| assignment | transformation | copies found | independent pairs flagged | lowest copy | highest independent |"
    )
    out = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        if r.transform == PARTIAL:
            out.append(f"| {r.assignment} | {r.transform} | {r.note} | | {r.lowest_copy:.0%} (the function) | |")
            continue
        if r.note:
            out.append(f"| {r.assignment} | {r.transform} | {r.note} | | | |")
            continue
        out.append(
            f"| {r.assignment} | {r.transform} | {r.copies_found}/{r.copies} | {r.independent_flagged}/"
            f"{r.independent_pairs} | {r.lowest_copy:.0%} | {r.highest_independent:.0%} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--fixtures", type=Path, default=Path("tests/fixtures/similarity"))
    parser.add_argument("assignment", nargs="*")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.assignment or assignments(args.repo):
        rows += calibrate(args.repo, name, args.fixtures / name)
    print(table(rows))
    print(re.sub(r"\s+", " ", f"{Settings()}"))


if __name__ == "__main__":
    main()
