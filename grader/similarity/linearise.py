"""A canonical AST as a flat token stream: local names, literals and commuted operands no longer tell copies apart."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grader.similarity.order import dotted

BUILTIN_NAMES = frozenset(dir(builtins))
_COMMUTATIVE = (ast.Add, ast.Mult, ast.BitOr, ast.BitAnd, ast.BitXor)
_SYMMETRIC = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)
_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {ast.Gt: ast.Lt, ast.GtE: ast.LtE}
_SKIPPED_FIELDS = frozenset({"ctx", "type_comment", "kind", "level", "is_async", "conversion"})


@dataclass(frozen=True)
class Vocabulary:
    """What a name means in one submission: an import alias, a name the template gives, or a renamable local."""

    aliases: dict[str, str] = field(default_factory=dict)
    kept: frozenset[str] = BUILTIN_NAMES
    anonymous_attrs: frozenset[str] = frozenset()


@dataclass
class Tokens:
    """Token texts and the source line each came from (1-based, in the submission's joined code)."""

    texts: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def extend(self, other: Tokens) -> None:
        self.texts += other.texts
        self.lines += other.lines


class Lineariser:
    """Pre-order walk of an AST that emits one token per node and per name, literal kind or operator."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def statements(self, body: list[ast.stmt]) -> Tokens:
        out = Tokens()
        for stmt in body:
            self._visit(stmt, getattr(stmt, "lineno", 0), out)
        return out

    def key(self, stmt: ast.stmt) -> tuple[str, ...]:
        """The statement's tokens: the same for a statement and its renamed, reformatted copy."""
        return tuple(self.statements([stmt]).texts)

    def _name(self, name: str) -> str:
        if name in self.vocabulary.aliases:
            return self.vocabulary.aliases[name]
        return name if name in self.vocabulary.kept else "V"

    def _visit(self, node: ast.AST, line: int, out: Tokens) -> None:
        line = getattr(node, "lineno", line)
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            handler(self, node, line, out)
            return
        out.texts.append(type(node).__name__)
        out.lines.append(line)
        self._children(node, line, out)

    def _children(self, node: ast.AST, line: int, out: Tokens) -> None:
        for name, value in ast.iter_fields(node):
            if name in _SKIPPED_FIELDS:
                continue
            if isinstance(value, ast.AST):
                self._visit(value, line, out)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self._visit(item, line, out)
                    elif isinstance(item, str):  # global/nonlocal names
                        self._emit(self._name(item), line, out)

    @staticmethod
    def _emit(text: str, line: int, out: Tokens) -> None:
        out.texts.append(text)
        out.lines.append(line)

    def _sub(self, node: ast.AST, line: int) -> Tokens:
        sub = Tokens()
        self._visit(node, line, sub)
        return sub

    def _name_node(self, node: ast.Name, line: int, out: Tokens) -> None:
        self._emit(self._name(node.id), line, out)

    def _attribute(self, node: ast.Attribute, line: int, out: Tokens) -> None:
        chain = dotted(node)
        if chain is not None:
            root, _, rest = chain.partition(".")
            if root in self.vocabulary.aliases:  # np.maximum and `from numpy import maximum` agree
                self._emit(f"{self.vocabulary.aliases[root]}.{rest}", line, out)
                return
        self._visit(node.value, line, out)
        attr = "A" if node.attr in self.vocabulary.anonymous_attrs else node.attr
        self._emit(f".{attr}", line, out)

    def _constant(self, node: ast.Constant, line: int, out: Tokens) -> None:
        value = node.value
        if value is None or isinstance(value, bool):
            text = repr(value)
        elif isinstance(value, (int, float, complex)):
            text = "N"  # 0 and 0.0, 1e-5 and 0.00001: a tweaked constant is no new code
        elif isinstance(value, str):
            text = "S"
        else:
            text = type(value).__name__
        self._emit(text, line, out)

    def _joined_str(self, node: ast.JoinedStr, line: int, out: Tokens) -> None:
        self._emit("S", line, out)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, line: int, out: Tokens) -> None:
        self._emit("def", line, out)
        self._emit(node.name if node.name in self.vocabulary.kept else "F", line, out)
        for decorator in node.decorator_list:
            self._visit(decorator, line, out)
        self._visit(node.args, line, out)
        for stmt in node.body:
            self._visit(stmt, line, out)
        self._emit("end", line, out)

    def _class(self, node: ast.ClassDef, line: int, out: Tokens) -> None:
        self._emit("class", line, out)
        self._emit(node.name if node.name in self.vocabulary.kept else "C", line, out)
        for child in [*node.bases, *node.keywords, *node.decorator_list, *node.body]:
            self._visit(child, line, out)
        self._emit("end", line, out)

    def _arg(self, node: ast.arg, line: int, out: Tokens) -> None:
        self._emit("arg", line, out)

    def _keyword(self, node: ast.keyword, line: int, out: Tokens) -> None:
        self._emit(f"kw:{node.arg or '**'}", line, out)
        self._visit(node.value, line, out)

    def _binop(self, node: ast.BinOp, line: int, out: Tokens) -> None:
        self._emit(f"BinOp:{type(node.op).__name__}", line, out)
        parts = [self._sub(node.left, line), self._sub(node.right, line)]
        if isinstance(node.op, _COMMUTATIVE):
            parts.sort(key=lambda part: part.texts)  # b + a @ w is a @ w + b
        for part in parts:
            out.extend(part)

    def _compare(self, node: ast.Compare, line: int, out: Tokens) -> None:
        if len(node.ops) != 1:
            self._emit("Compare", line, out)
            self._children(node, line, out)
            return
        op, left, right = type(node.ops[0]), node.left, node.comparators[0]
        parts = [self._sub(left, line), self._sub(right, line)]
        if op in _FLIPPED:  # a > b is b < a
            op, parts = _FLIPPED[op], parts[::-1]
        elif issubclass(op, _SYMMETRIC):
            parts.sort(key=lambda part: part.texts)
        self._emit(f"Compare:{op.__name__}", line, out)
        for part in parts:
            out.extend(part)


_HANDLERS: dict[type[ast.AST], Callable[[Lineariser, Any, int, Tokens], None]] = {
    ast.Name: Lineariser._name_node,
    ast.Attribute: Lineariser._attribute,
    ast.Constant: Lineariser._constant,
    ast.JoinedStr: Lineariser._joined_str,
    ast.FunctionDef: Lineariser._function,
    ast.AsyncFunctionDef: Lineariser._function,
    ast.ClassDef: Lineariser._class,
    ast.arg: Lineariser._arg,
    ast.keyword: Lineariser._keyword,
    ast.BinOp: Lineariser._binop,
    ast.Compare: Lineariser._compare,
}
