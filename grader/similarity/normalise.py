"""Python source to a canonical AST: no comments, docstrings, prints, dead code, annotations or accidental order."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable

from grader.similarity.order import StatementKey, canonical_order, dotted

# Calls made for what they show, not what they compute: a copy with added prints must match its original.
NOISE_CALLS = frozenset({"print", "pprint", "display", "breakpoint", "input", "help"})
NOISE_MODULES = ("logging", "warnings", "pprint", "matplotlib", "IPython", "tqdm", "time")
_TERMINAL = (ast.Return, ast.Raise, ast.Break, ast.Continue)
_BLOCK_FIELDS = ("body", "orelse", "finalbody")


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted module path, for every import anywhere in the tree (``np`` -> ``numpy``)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _is_noise_call(node: ast.expr, aliases: dict[str, str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = dotted(node.func)
    if name is None:
        return False
    root, _, rest = name.partition(".")
    resolved = aliases.get(root, root) + (f".{rest}" if rest else "")
    if name in NOISE_CALLS or root in {"logger", "log"}:
        return True
    return resolved.split(".")[0] in NOISE_MODULES


def _truth(node: ast.expr) -> bool | None:
    """The truth of a test made of constants only (``if False:``, ``if 0:``, ``while 1 == 2:``), else None."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _truth(node.operand)
        return None if inner is None else not inner
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = node.left, node.comparators[0]
        if isinstance(left, ast.Constant) and isinstance(right, ast.Constant):
            if isinstance(node.ops[0], ast.Eq):
                return bool(left.value == right.value)
            if isinstance(node.ops[0], ast.NotEq):
                return bool(left.value != right.value)
    return None


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


def _strip_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    node.returns = None
    node.type_comment = None
    args = node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None


def _drop_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[1:]
    return body


def clean_block(body: Iterable[ast.stmt], aliases: dict[str, str]) -> list[ast.stmt]:
    """Statements without docstrings, prints, asserts, imports, ``if False`` and code after a return."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.extend(_clean_stmt(stmt, aliases))
        if out and isinstance(out[-1], _TERMINAL):
            break  # what follows a return, raise, break or continue never runs
    return out


def _clean_stmt(stmt: ast.stmt, aliases: dict[str, str]) -> list[ast.stmt]:
    if isinstance(stmt, (ast.Pass, ast.Assert, ast.Import, ast.ImportFrom, ast.Delete)):
        return []
    if isinstance(stmt, ast.Expr):
        if isinstance(stmt.value, (ast.Constant, ast.Name, ast.Attribute)) or _is_noise_call(stmt.value, aliases):
            return []
        return [stmt]
    if isinstance(stmt, ast.AnnAssign):
        if stmt.value is None:
            return []
        return [ast.copy_location(ast.Assign(targets=[stmt.target], value=stmt.value), stmt)]
    if isinstance(stmt, ast.AugAssign):
        load = copy.deepcopy(stmt.target)
        for node in ast.walk(load):
            if hasattr(node, "ctx"):
                node.ctx = ast.Load()
        value = ast.copy_location(ast.BinOp(left=load, op=stmt.op, right=stmt.value), stmt)
        return [ast.copy_location(ast.Assign(targets=[stmt.target], value=value), stmt)]
    if isinstance(stmt, (ast.If, ast.While)):
        truth = _truth(stmt.test)
        if truth is not None and (isinstance(stmt, ast.If) or not truth):
            return clean_block(stmt.body if truth else stmt.orelse, aliases)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        _strip_signature(stmt)
        stmt.body = _drop_docstring(stmt.body)
    elif isinstance(stmt, ast.ClassDef):
        stmt.body = _drop_docstring(stmt.body)
    for name in _BLOCK_FIELDS:
        if isinstance(getattr(stmt, name, None), list):
            setattr(stmt, name, clean_block(getattr(stmt, name), aliases))
    if isinstance(stmt, ast.Try):
        for handler in stmt.handlers:
            handler.body = clean_block(handler.body, aliases)
    return [] if _is_empty_compound(stmt) else [stmt]


def _is_empty_compound(stmt: ast.stmt) -> bool:
    """A loop, ``if`` or ``with`` left with nothing to do (its prints and dead code are gone)."""
    if isinstance(stmt, ast.If):
        return not stmt.body and not stmt.orelse and not _has_call(stmt.test)
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
        return not stmt.body
    return False


def loaded_names(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name read anywhere in ``nodes``, nested functions included."""
    names: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                names.update(node.names)
    return names


def _stored_names(target: ast.expr) -> list[str] | None:
    """Names bound by an assignment target, or None when it stores into an attribute or item."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _stored_names(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        names: list[str] = []
        for element in target.elts:
            inner = _stored_names(element)
            if inner is None:
                return None
            names += inner
        return names
    return None


def is_unused(stmt: ast.stmt, used: set[str]) -> bool:
    """An assignment or definition whose every name is never read: dead code a copy may have added."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            names = _stored_names(target)
            if names is None or any(name in used for name in names):
                return False
        return True
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name not in used
    return False


def prune_block(body: list[ast.stmt], used: set[str], removed: list[int] | None = None) -> list[ast.stmt]:
    """Drop unused assignments and definitions, at every depth of a function body; count them in ``removed``."""
    out: list[ast.stmt] = []
    for stmt in body:
        if is_unused(stmt, used):
            if removed is not None:
                removed[0] += 1
            continue
        for name in _BLOCK_FIELDS:  # nested functions too: a dead line hides in a helper as well
            if isinstance(getattr(stmt, name, None), list):
                setattr(stmt, name, prune_block(getattr(stmt, name), used, removed))
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                handler.body = prune_block(handler.body, used, removed)
        if not _is_empty_compound(stmt):
            out.append(stmt)
        elif removed is not None:
            removed[0] += 1
    return out


def normalise_function(
    node: ast.FunctionDef | ast.AsyncFunctionDef, aliases: dict[str, str], key: StatementKey
) -> list[ast.stmt]:
    """The canonical body of one function: cleaned, pruned to a fixed point, independent statements sorted.

    Works on the parsed tree in place (each submission's tree is parsed for this and used once):
    copying it would cost more than all the rest.
    """
    _strip_signature(node)
    body = clean_block(_drop_docstring(node.body), aliases)
    for _ in range(8):  # each round can expose more dead code (a name only a dropped line read)
        removed = [0]
        body = prune_block(body, loaded_names(body), removed)
        if not removed[0]:
            break
    return canonical_order(body, key)


def normalise_statements(
    body: list[ast.stmt], aliases: dict[str, str], used: set[str], key: StatementKey
) -> list[ast.stmt]:
    """Top-level statements (not definitions): cleaned, dead assignments dropped, sorted (in place)."""
    return canonical_order(prune_block(clean_block(body, aliases), used), key)
