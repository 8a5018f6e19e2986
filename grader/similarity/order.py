"""Canonical order of a block: statements that do not depend on each other are sorted, the rest keep their order."""

from __future__ import annotations

import ast
import hashlib
import heapq
from collections.abc import Callable

StatementKey = Callable[[ast.stmt], tuple[str, ...]]
EVERYTHING = "*"  # a barrier: conflicts with every other statement
EFFECT = "<effect>"  # a call made for its effect (optimizer.step()): such calls keep their order
_BARRIERS = (ast.Return, ast.Raise, ast.Break, ast.Continue, ast.Global, ast.Nonlocal, ast.Yield, ast.YieldFrom)
_BLOCK_FIELDS = ("body", "orelse", "finalbody")


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def reads_and_writes(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    """Names and attribute chains a statement reads and writes (an item store writes its container)."""
    reads: set[str] = set()
    writes: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            (reads if isinstance(node.ctx, ast.Load) else writes).add(node.id)
        elif isinstance(node, ast.Attribute):
            chain = dotted(node)
            if chain is not None and not isinstance(node.ctx, ast.Load):
                writes.add(chain)
            elif chain is not None:
                reads.add(chain)
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
            root = _root(node)
            writes.add(root if root is not None else EVERYTHING)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            writes.add(node.name)
        elif isinstance(node, _BARRIERS):
            writes.add(EVERYTHING)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            _effect(node.value, reads, writes)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.endswith("_"):
            _effect(node, reads, writes)  # torch's in-place methods: x.add_(1), nn.init.uniform_(p)
    return reads, writes


def _effect(call: ast.Call, reads: set[str], writes: set[str]) -> None:
    """A call whose result is dropped changes something: its receiver, or its first argument."""
    reads.add(EFFECT)
    writes.add(EFFECT)
    targets = [call.func.value] if isinstance(call.func, ast.Attribute) else []
    targets += call.args[:1]
    for target in targets:
        root = _root(target)
        if root is not None:
            writes.add(root)


def _overlap(first: set[str], second: set[str]) -> bool:
    if EVERYTHING in first or EVERYTHING in second:
        return bool(first) and bool(second)
    for a in first:
        for b in second:
            if a == b or a.startswith(b + ".") or b.startswith(a + "."):
                return True
    return False


def _depends(earlier: tuple[set[str], set[str]], later: tuple[set[str], set[str]]) -> bool:
    (reads_a, writes_a), (reads_b, writes_b) = earlier, later
    return _overlap(writes_a, reads_b | writes_b) or _overlap(writes_b, reads_a)


def _digest(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def canonical_order(body: list[ast.stmt], key: StatementKey) -> list[ast.stmt]:
    """Topological order of the block's dependency graph, ties broken by what each statement is.

    Two orders a programmer may choose between (the graph allows both) give the same result, because
    the tie-break looks only at statement content and at the content of what depends on it.
    """
    for stmt in body:
        for name in _BLOCK_FIELDS:
            if isinstance(getattr(stmt, name, None), list):
                setattr(stmt, name, canonical_order(getattr(stmt, name), key))
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                handler.body = canonical_order(handler.body, key)
    if len(body) < 2:
        return body
    effects = [reads_and_writes(stmt) for stmt in body]
    after: list[list[int]] = [[] for _ in body]
    before_count = [0] * len(body)
    for j in range(len(body)):
        for i in range(j):
            if _depends(effects[i], effects[j]):
                after[i].append(j)
                before_count[j] += 1
    ranks = _ranks(body, after, key)
    ready = [(ranks[i], i) for i in range(len(body)) if before_count[i] == 0]
    heapq.heapify(ready)
    ordered: list[ast.stmt] = []
    while ready:
        _, i = heapq.heappop(ready)
        ordered.append(body[i])
        for j in after[i]:
            before_count[j] -= 1
            if before_count[j] == 0:
                heapq.heappush(ready, (ranks[j], j))
    return ordered


def _ranks(body: list[ast.stmt], after: list[list[int]], key: StatementKey) -> list[tuple[tuple[str, ...], str]]:
    """Sort key per statement: its own tokens, then a digest of everything that depends on it."""
    own = [key(stmt) for stmt in body]
    downstream = [""] * len(body)
    for i in reversed(range(len(body))):
        downstream[i] = _digest(own[i], sorted(downstream[j] for j in after[i]))
    return [(own[i], downstream[i]) for i in range(len(body))]
