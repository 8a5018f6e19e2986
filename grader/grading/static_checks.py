"""Static checks on the submission's source, outside the sandbox: forbidden imports and calls.

These enforce the assignment's rules ("implement the LSTM cell yourself"), not security: code can
always reach a module by other means. Security comes from the sandbox alone.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass

from grader.grading.spec import StaticPolicy
from grader.grading.submission import Cell

# The parser's tree costs ~500 bytes of this process's memory per byte of source; notebooks are
# ~10 KB of code. Past this, the rules cannot be checked and the submission is not graded (issue 11).
MAX_CHECKED_SOURCE_BYTES = 500_000
TOO_DEEP = "code nested too deeply to be checked for forbidden names (split the long expression)"


@dataclass(frozen=True)
class Violation:
    """One use of something the assignment forbids."""

    cell_index: int
    line: int
    what: str

    def describe(self) -> str:
        where = f"cell {self.cell_index}, line {self.line}" if self.line else f"cell {self.cell_index}"
        return f"{self.what} ({where})"


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _matches_module(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def _matches_call(dotted: str, forbidden: str) -> bool:
    """'nn.LSTM' matches nn.LSTM and torch.nn.LSTM; 'nn.GRU*' matches nn.GRU and nn.GRUCell."""
    return fnmatch.fnmatchcase(dotted, forbidden) or fnmatch.fnmatchcase(dotted, "*." + forbidden)


def _check_tree(tree: ast.AST, cell: Cell, policy: StaticPolicy) -> list[Violation]:
    found: list[Violation] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for module in modules:
            for forbidden in policy.forbidden_imports:
                if _matches_module(module, forbidden):
                    found.append(Violation(cell.index, line, f"import of {forbidden}"))
            for forbidden in policy.forbidden_calls:
                if _matches_call(module, forbidden):
                    found.append(Violation(cell.index, line, f"use of {forbidden}"))
        # `from torch.nn import LSTM` is caught above; attribute chains like nn.LSTM here.
        if isinstance(node, ast.Attribute) and (dotted := _dotted(node)):
            for forbidden in policy.forbidden_calls:
                if _matches_call(dotted, forbidden):
                    found.append(Violation(cell.index, line, f"use of {forbidden}"))
    return found


def check_cells(cells: tuple[Cell, ...], policy: StaticPolicy) -> list[Violation]:
    """Every forbidden import or name use in the cells, deduplicated, in source order."""
    if not policy.forbidden_imports and not policy.forbidden_calls:
        return []
    found: list[Violation] = []
    checked_bytes = 0
    for cell in cells:
        checked_bytes += len(cell.source.encode("utf-8", "replace"))
        if checked_bytes > MAX_CHECKED_SOURCE_BYTES:
            what = f"more code than can be checked for forbidden names (over {MAX_CHECKED_SOURCE_BYTES:,} bytes)"
            found.append(Violation(cell.index, 0, what))
            break
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):  # ValueError: a null byte (Python 3.11)
            continue  # the worker's compile raises the same: reported as that cell's error
        except (RecursionError, MemoryError):
            # Not a verdict on the code: how deep the parser gets depends on this process's stack,
            # and the worker's compile may go one level further (or more, after
            # sys.setrecursionlimit in an earlier cell), so skipping would let forbidden code through.
            found.append(Violation(cell.index, 0, TOO_DEEP))
            continue
        found.extend(_check_tree(tree, cell, policy))
    unique = {(v.cell_index, v.line, v.what): v for v in found}
    return sorted(unique.values(), key=lambda v: (v.cell_index, v.line, v.what))
