"""Disguised copies for calibration: what a student does to a copied notebook so that it looks like their own."""

from __future__ import annotations

import ast
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from grader.similarity.linearise import BUILTIN_NAMES

Cells = list[tuple[int, str]]
Edit = tuple[int, int, int, str]  # line (1-based), start byte, end byte, replacement
_WORDS = ("val", "tmp", "arr", "res", "data", "item", "thing", "my", "out", "part", "buf", "acc")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def apply_edits(source: str, edits: list[Edit]) -> str:
    lines = [line.encode() for line in source.split("\n")]
    for line, start, end, text in sorted(set(edits), key=lambda e: (e[0], e[1]), reverse=True):
        lines[line - 1] = lines[line - 1][:start] + text.encode() + lines[line - 1][end:]
    return "\n".join(line.decode() for line in lines)


def _protected(tree: ast.Module, keep: frozenset[str]) -> set[str]:
    imported = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}  # fmt: skip
    return set(keep) | BUILTIN_NAMES | imported | {"self", "cls"}


def rename_map(sources: list[str], rng: random.Random, keep: frozenset[str]) -> tuple[dict[str, str], set[str]]:
    """New names for every local, parameter, helper and own attribute of the notebook, and which are attributes.

    One map for all cells: a helper defined in one cell and called in another keeps working.
    """
    names: set[str] = set()
    attrs: set[str] = set()
    protected: set[str] = set()
    for source in sources:
        tree = ast.parse(source)
        protected |= _protected(tree, keep)
        for fn in (n for n in ast.walk(tree) if isinstance(n, _DEFS)):
            names |= {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
            names |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        names |= {n.name for n in tree.body if isinstance(n, (*_DEFS, ast.ClassDef))}
        attrs |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    renamed = sorted((names | attrs) - protected)
    return {name: f"{rng.choice(_WORDS)}_{i}" for i, name in enumerate(renamed)}, attrs - protected


def rename(source: str, mapping: dict[str, str], attrs: set[str]) -> str:
    """Every local variable, parameter, helper function and own attribute gets its new name."""
    tree = ast.parse(source)
    lines = source.split("\n")
    edits: list[Edit] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in mapping:
            edits.append((node.lineno, node.col_offset, node.end_col_offset or 0, mapping[node.id]))
        elif isinstance(node, ast.arg) and node.arg in mapping:
            edits.append((node.lineno, node.col_offset, node.col_offset + len(node.arg), mapping[node.arg]))
        elif isinstance(node, ast.Attribute) and node.attr in attrs and node.end_lineno == node.lineno:
            end = node.end_col_offset or 0
            edits.append((node.lineno, end - len(node.attr), end, mapping[node.attr]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in mapping:
            for kw in node.keywords:  # keywords of a renamed helper's call; a library's stay as they are
                if kw.arg in mapping:
                    edits.append((kw.lineno, kw.col_offset, kw.col_offset + len(kw.arg), mapping[kw.arg]))
        elif isinstance(node, (*_DEFS, ast.ClassDef)) and node.name in mapping:
            line = lines[node.lineno - 1].encode()
            start = line.index(node.name.encode(), node.col_offset)
            edits.append((node.lineno, start, start + len(node.name), mapping[node.name]))
    return apply_edits(source, edits)


def _statements(tree: ast.AST) -> list[ast.stmt]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]


def _indent(source: str, line: int) -> str:
    text = source.split("\n")[line - 1]
    return text[: len(text) - len(text.lstrip())]


def _insert_after(source: str, inserts: dict[int, list[str]]) -> str:
    lines = source.split("\n")
    for line in sorted(inserts, reverse=True):
        lines[line:line] = inserts[line]
    return "\n".join(lines)


def _in_functions(tree: ast.Module) -> list[ast.stmt]:
    """Statements directly in a function body (at any depth of blocks), in source order."""
    found: list[ast.stmt] = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, _DEFS)):
        found += [s for s in _statements(fn) if s is not fn and not isinstance(s, (*_DEFS, ast.ClassDef))]
    return sorted(set(found), key=lambda s: s.lineno)


def comments(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """Comments added, docstrings rewritten, blank lines inserted: nothing that runs changes."""
    source = _rewrite_docstrings(source)
    tree = ast.parse(source)
    inserts: dict[int, list[str]] = {}
    for stmt in _in_functions(tree):
        if rng.random() < 0.5:
            indent = _indent(source, stmt.lineno)
            inserts.setdefault(stmt.lineno - 1, []).extend(["", f"{indent}# step {rng.randint(1, 99)}: my idea here"])
    return _insert_after(source, inserts)


def _rewrite_docstrings(source: str) -> str:
    lines = source.split("\n")
    docs = []
    for fn in (n for n in ast.walk(ast.parse(source)) if isinstance(n, (*_DEFS, ast.ClassDef))):
        doc = fn.body[0] if fn.body and isinstance(fn.body[0], ast.Expr) else None
        if doc is not None and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            docs.append(doc)
    for doc in sorted(docs, key=lambda d: -d.lineno):
        lines[doc.lineno - 1 : doc.end_lineno] = [" " * doc.col_offset + '"""My own version of this."""']
    return "\n".join(lines)


def _io(stmt: ast.stmt) -> tuple[set[str], set[str]] | None:
    """Reads and writes of a plain assignment, or None for anything whose order is not safe to change."""
    if not isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) or stmt.lineno != stmt.end_lineno:
        return None
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    writes: set[str] = set()
    for target in targets:
        node: ast.expr = target
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        writes |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    reads = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(stmt, ast.AugAssign):
        reads |= writes
    return reads, writes


def _shuffle_run(run: list[ast.stmt], rng: random.Random) -> list[ast.stmt]:
    io = [_io(s) for s in run]
    placed: list[int] = []
    left = list(range(len(run)))
    while left:
        ready = []
        for j in left:
            rj, wj = io[j] or (set(), set())
            blocked = any(
                (io[i] or (set(), set()))[1] & (rj | wj) or wj & (io[i] or (set(), set()))[0] for i in left if i < j
            )
            if not blocked:
                ready.append(j)
        pick = rng.choice(ready)
        placed.append(pick)
        left.remove(pick)
    return [run[i] for i in placed]


def reorder_statements(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """Runs of independent assignments in function bodies shuffled into another valid order."""
    tree = ast.parse(source)
    lines = source.split("\n")
    for block in _blocks(tree):
        run: list[ast.stmt] = []
        for stmt in [*block, None]:
            if stmt is not None and _io(stmt) is not None and all(s.lineno != stmt.lineno for s in run):
                run.append(stmt)
                continue
            if len(run) > 1:
                order = _shuffle_run(run, rng)
                texts = [lines[s.lineno - 1] for s in order]
                for s, text in zip(run, texts, strict=True):
                    lines[s.lineno - 1] = text
            run = []
    return "\n".join(lines)


def _blocks(tree: ast.Module) -> list[list[ast.stmt]]:
    blocks = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, _DEFS)):
        for node in ast.walk(fn):
            for name in ("body", "orelse"):
                body = getattr(node, name, None)
                if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                    blocks.append(body)
    return blocks


def reorder_functions(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """Functions of a cell, and methods of each class, in reverse order."""
    count = 1 + sum(1 for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef))
    for group in range(count):
        tree = ast.parse(source)
        bodies = [tree.body] + [c.body for c in ast.walk(tree) if isinstance(c, ast.ClassDef)]
        defs = [n for n in bodies[group] if isinstance(n, _DEFS)]
        if len(defs) < 2:
            continue
        lines = source.split("\n")
        spans = [(_first_line(d), d.end_lineno or d.lineno) for d in defs]
        texts = [lines[a - 1 : b] for a, b in spans][::-1]
        for (a, b), text in reversed(list(zip(spans, texts, strict=True))):
            lines[a - 1 : b] = text  # bottom up, so the spans above stay where they are
        source = "\n".join(lines)
    return source


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def dead_code(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """Unused variables, ``if False:`` blocks, lines after a return and an uncalled helper added."""
    tree = ast.parse(source)
    inserts: dict[int, list[str]] = {}
    for n, stmt in enumerate(_in_functions(tree)):
        indent = " " * stmt.col_offset
        if isinstance(stmt, ast.Return) and stmt.end_lineno is not None:
            inserts.setdefault(stmt.end_lineno, []).append(f"{indent}leftover_{n} = {n}")
        elif n % 3 == 0 and not isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            end = stmt.end_lineno or stmt.lineno
            inserts.setdefault(end, []).extend([f"{indent}unused_{n} = [{n}, {n + 1}]", f"{indent}if False:",
                                                f"{indent}    unused_{n}.append(0)"])  # fmt: skip
    if not any(isinstance(s, _DEFS) for s in tree.body):
        return _insert_after(source, inserts)
    helper = ["", "", f"def _spare_helper_{rng.randint(1, 999)}(a, b):", "    return a * b + 1"]
    return _insert_after(source, inserts) + "\n".join(helper)


def prints(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """A debugging print after assignments in function bodies."""
    tree = ast.parse(source)
    inserts: dict[int, list[str]] = {}
    for stmt in _in_functions(tree):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and rng.random() < 0.6:
            name, indent = stmt.targets[0].id, " " * stmt.col_offset
            inserts.setdefault(stmt.end_lineno or stmt.lineno, []).append(f'{indent}print("{name} =", {name})')
    return _insert_after(source, inserts)


def _ruff() -> str | None:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


def black_format(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """black (or ruff format, which formats as black does, where black is not installed)."""
    try:
        import black  # type: ignore[import-not-found, unused-ignore]  # optional: only for calibration

        return str(black.format_str(source, mode=black.Mode(line_length=79)))
    except ImportError:
        ruff = _ruff()
        if ruff is None:
            raise FormatterMissing("neither black nor ruff is installed") from None
        cmd = [ruff, "format", "--line-length", "79", "-"]
        return subprocess.run(cmd, input=source, capture_output=True, text=True, check=True).stdout


def autopep8_format(source: str, rng: random.Random, keep: frozenset[str]) -> str:
    """autopep8 --aggressive --aggressive, which also rewrites some expressions."""
    try:
        import autopep8  # type: ignore[import-not-found, import-untyped, unused-ignore]  # optional
    except ImportError:
        raise FormatterMissing("autopep8 is not installed") from None
    return str(autopep8.fix_code(source, options={"aggressive": 2, "max_line_length": 79}))


class FormatterMissing(Exception):
    """A formatter the calibration would use is not installed here."""


Transform = Callable[[str, random.Random, frozenset[str]], str]
RENAME = "rename"  # applied by disguise with one map for the whole notebook
SINGLE: dict[str, Transform | None] = {
    RENAME: None,
    "comments": comments,
    "reorder_functions": reorder_functions,
    "reorder_statements": reorder_statements,
    "dead_code": dead_code,
    "prints": prints,
    "black": black_format,
    "autopep8": autopep8_format,
}
COMBINED = ("rename", "reorder_statements", "reorder_functions", "dead_code", "prints", "comments", "black")


def disguise(cells: Cells, given: frozenset[str], steps: tuple[str, ...], seed: int, keep: frozenset[str]) -> Cells:
    """Apply the named transformations, in order, to every cell that is not the template's own."""
    rng = random.Random(seed)
    out = list(cells)
    own = [i for i, (_, source) in enumerate(cells) if source.strip() not in given]
    for step in steps:
        transform = SINGLE[step]
        if transform is None:
            mapping, attrs = rename_map([out[i][1] for i in own], rng, keep)
        for i in own:
            index, source = out[i]
            source = rename(source, mapping, attrs) if transform is None else transform(source, rng, keep)
            ast.parse(source)  # every disguise must still be valid Python
            out[i] = (index, source)
    return out
