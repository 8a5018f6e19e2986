"""A submission's own code, split per function, with the template's given code taken out."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from grader.similarity.linearise import BUILTIN_NAMES, Lineariser, Tokens, Vocabulary
from grader.similarity.normalise import clean_block, import_aliases, normalise_function
from grader.similarity.normalise import normalise_statements as normalise_top

OTHER = "(other code)"
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class CodeCell:
    """One code cell, where it starts in the submission's joined code (1-based line)."""

    index: int
    first_line: int
    source: str


@dataclass
class StudentCode:
    """What one submission wrote: token streams per function, and which lines are the template's."""

    id: str
    label: str
    cells: list[CodeCell]
    units: dict[str, list[Tokens]] = field(default_factory=dict)
    template_lines: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    archive: str = ""
    unchanged_cells: set[int] = field(default_factory=set)

    @property
    def lines(self) -> list[str]:
        out: list[str] = []
        for cell in self.cells:
            out += [""] * (cell.first_line - 1 - len(out))
            out += cell.source.split("\n")
        return out

    @property
    def token_count(self) -> int:
        return sum(len(tokens.texts) for streams in self.units.values() for tokens in streams)


@dataclass(frozen=True)
class Template:
    """The released template, as far as comparing needs it."""

    function_names: tuple[str, ...] = ()
    statement_keys: frozenset[tuple[str, ...]] = frozenset()
    function_keys: dict[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)
    cell_sources: frozenset[str] = frozenset()
    defined: frozenset[str] = frozenset()
    identifiers: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset()
    aliases: dict[str, str] = field(default_factory=dict)
    streams: tuple[Tokens, ...] = ()


def lay_out(cells: Iterable[tuple[int, str]]) -> list[CodeCell]:
    """Cells placed one after another with a blank line between them, as the report shows them."""
    laid: list[CodeCell] = []
    line = 1
    for index, source in cells:
        laid.append(CodeCell(index, line, source))
        line += source.count("\n") + 2
    return laid


def parse_cells(cells: Sequence[CodeCell], skip: frozenset[str], notes: list[str]) -> list[list[ast.stmt]]:
    """Each cell's statements with submission-wide line numbers; unchanged template cells are skipped."""
    parsed: list[list[ast.stmt]] = []
    for cell in cells:
        if cell.source.strip() in skip or not cell.source.strip():
            parsed.append([])
            continue
        try:  # blank lines in front give submission-wide line numbers at no cost
            tree = ast.parse("\n" * (cell.first_line - 1) + cell.source)
        except (RecursionError, MemoryError):  # untrusted text can nest deeper than the parser goes
            notes.append(f"cell {cell.index} is nested too deeply to analyse; it was left out of the comparison")
        except (SyntaxError, ValueError) as exc:
            line = exc.lineno - cell.first_line + 1 if isinstance(exc, SyntaxError) and exc.lineno else 0
            where = f" (line {line})" if line > 0 else ""
            notes.append(f"cell {cell.index} is not valid Python{where}; it was left out of the comparison")
        else:
            parsed.append(tree.body)
            continue
        parsed.append([])
    return parsed


def template_function_names(trees: Iterable[ast.stmt]) -> list[str]:
    """Functions and methods the template leaves for the student: their body raises NotImplementedError."""
    names: list[str] = []

    def stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        for stmt in node.body:
            if isinstance(stmt, ast.Raise) and stmt.exc is not None:
                exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
                if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                    return True
        return False

    for stmt in trees:
        if isinstance(stmt, _DEFS) and stub(stmt):
            names.append(stmt.name)
        elif isinstance(stmt, ast.ClassDef):
            names += [f"{stmt.name}.{m.name}" for m in stmt.body if isinstance(m, _DEFS) and stub(m)]
    return names


def _identifiers(trees: Iterable[ast.AST]) -> set[str]:
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.Attribute):
                found.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(re.findall(r"[A-Za-z_]\w*", node.value))  # names the docstrings promise
    return found


def _defined(body: Iterable[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, (*_DEFS, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def read_template(cells: list[tuple[int, str]], function_names: Sequence[str]) -> Template:
    """What the template gives: its statements, its stubs' given lines, its names, its token streams."""
    notes: list[str] = []
    parsed = parse_cells(lay_out(cells), frozenset(), notes)
    body = [stmt for cell in parsed for stmt in cell]
    names = tuple(function_names) or tuple(template_function_names(body))
    aliases, _, stored, methods = _survey(ast.Module(body=body, type_ignores=[]))
    bare = Template(
        function_names=names,
        defined=frozenset(_defined(body)),
        identifiers=frozenset(_identifiers(body)),
        attributes=frozenset(stored | methods),
        aliases=aliases,
    )
    code = StudentCode("template", "template", lay_out(cells))
    keys: set[tuple[str, ...]] = set()
    function_keys: dict[str, frozenset[tuple[str, ...]]] = {}
    _Extractor(bare, code, parsed, record=(keys, function_keys)).run()
    return Template(
        function_names=names,
        statement_keys=frozenset(keys),
        function_keys=function_keys,
        cell_sources=frozenset(source.strip() for _, source in cells if source.strip()),
        defined=bare.defined,
        identifiers=bare.identifiers,
        attributes=bare.attributes,
        aliases=bare.aliases,
        streams=tuple(tokens for streams in code.units.values() for tokens in streams),
    )


def extract(code: StudentCode, template: Template) -> StudentCode:
    """Fill ``code.units`` (token streams per function) and ``code.template_lines``."""
    parsed = parse_cells(code.cells, template.cell_sources, code.notes)
    for cell, statements in zip(code.cells, parsed, strict=True):
        if not statements and cell.source.strip() in template.cell_sources:
            code.unchanged_cells.add(cell.index)
            code.template_lines.update(range(cell.first_line, cell.first_line + cell.source.count("\n") + 1))
    _Extractor(template, code, parsed).run()
    return code


def _survey(module: ast.Module) -> tuple[dict[str, str], set[str], set[str], set[str]]:
    """One walk for what naming needs: import aliases, names read, attributes stored, method names."""
    used: set[str] = set()
    stored: set[str] = set()
    methods: set[str] = set()
    imports: list[ast.stmt] = []
    for node in ast.walk(module):
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Store):
                used.add(node.id)
        elif isinstance(node, ast.Attribute):
            if not isinstance(node.ctx, ast.Load):
                stored.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            used.update(node.names)
        elif isinstance(node, ast.ClassDef):
            methods.update(m.name for m in node.body if isinstance(m, _DEFS))
    return import_aliases(ast.Module(body=imports, type_ignores=[])), used, stored, methods


class _Extractor:
    """One pass over a submission's statements, sorting each into a unit or into the template's part."""

    def __init__(
        self,
        template: Template,
        code: StudentCode,
        parsed: list[list[ast.stmt]],
        record: tuple[set[tuple[str, ...]], dict[str, frozenset[tuple[str, ...]]]] | None = None,
    ) -> None:
        self.template, self.code, self.parsed, self.record = template, code, parsed, record
        self.text = code.lines
        module = ast.Module(body=[stmt for cell in parsed for stmt in cell], type_ignores=[])
        self.aliases, self.used, stored, methods = _survey(module)
        self.aliases = template.aliases | self.aliases
        kept = BUILTIN_NAMES | template.defined | {name.split(".")[0] for name in template.function_names}
        # attributes and methods the submission defines itself: self.encoder and self.enc are one thing
        renamable = frozenset(n for n in (stored | methods) - template.attributes if not n.startswith("__"))
        self.lineariser = Lineariser(Vocabulary(self.aliases, frozenset(kept), renamable))
        self.named = set(template.function_names)

    def run(self) -> None:
        for statements in self.parsed:
            loose: list[ast.stmt] = []
            for stmt in statements:
                if isinstance(stmt, (*_DEFS, ast.ClassDef)):
                    self._other_block(loose)
                    loose = []
                    self._definition(stmt)
                else:
                    loose.append(stmt)
            self._other_block(loose)

    def _add(self, unit: str, tokens: Tokens) -> None:
        if tokens.texts:
            self.code.units.setdefault(unit, []).append(tokens)

    def _grey(self, node: ast.AST) -> None:
        first: int = getattr(node, "lineno", 0)
        last: int = getattr(node, "end_lineno", None) or first
        self.code.template_lines.update(range(first, last + 1))

    def _given(self, key: tuple[str, ...], node: ast.AST) -> bool:
        """Whether the statement is the template's own (recording it instead when reading the template)."""
        if self.record is not None:
            self.record[0].add(key)
            return False
        if key in self.template.statement_keys:
            self._grey(node)
            return True
        return False

    def _other_block(self, statements: list[ast.stmt]) -> None:
        kept = []
        for stmt in statements:
            cleaned = clean_block([stmt], self.aliases)
            if cleaned and not self._given(self.lineariser.key(cleaned[0]), stmt):
                kept.append(stmt)
            elif not cleaned and isinstance(stmt, (ast.Import, ast.ImportFrom)) and self.record is None:
                self._grey(stmt)
        body = normalise_top(kept, self.aliases, self.used | self.named, self.lineariser.key)
        self._add(OTHER, self.lineariser.statements(body))

    def _definition(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, _DEFS) and stmt.name in self.named:
            self._named_function(stmt.name, stmt)
        elif isinstance(stmt, ast.ClassDef):
            self._class(stmt)
        elif isinstance(stmt, _DEFS):
            normalised, lineariser = self._normalised_def(stmt)
            key = lineariser.key(normalised)
            if not self._given(key, stmt) and (stmt.name in self.used or stmt.name in self.template.defined):
                self._add(OTHER, lineariser.statements([normalised]))

    def _scoped(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Lineariser:
        """A lineariser for one function: its own variables are locals even where a global has their name."""
        local: set[str] = set()
        declared: set[str] = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                local.add(node.id)
            elif isinstance(node, ast.arg):
                local.add(node.arg)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                declared.update(node.names)
        local -= declared
        vocabulary = self.lineariser.vocabulary
        if not local & (vocabulary.kept | set(vocabulary.aliases)):
            return self.lineariser
        aliases = {name: path for name, path in vocabulary.aliases.items() if name not in local}
        return Lineariser(Vocabulary(aliases, vocabulary.kept - local, vocabulary.anonymous_attrs))

    def _normalised_def(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[ast.stmt, Lineariser]:
        lineariser = self._scoped(stmt)
        body = normalise_function(stmt, self.aliases, lineariser.key)
        signature = ast.FunctionDef(name=stmt.name, args=stmt.args, body=body, decorator_list=stmt.decorator_list)
        return ast.copy_location(signature, stmt), lineariser

    def _named_function(self, unit: str, stmt: ast.FunctionDef | ast.AsyncFunctionDef, replace: bool = True) -> None:
        docstring = ast.get_docstring(stmt) is not None
        if docstring:
            header_end = stmt.body[0].end_lineno or stmt.body[0].lineno
        else:
            header_end = stmt.body[0].lineno - 1 if stmt.body else (stmt.end_lineno or stmt.lineno)
        lineariser = self._scoped(stmt)
        body = normalise_function(stmt, self.aliases, lineariser.key)
        keys = [lineariser.key(s) for s in body]
        if self.record is not None:
            self.record[1][unit] = frozenset(keys)
        given = self.template.function_keys.get(unit, frozenset()) if self.record is None else frozenset()
        if unit in self.template.function_keys or self.record is not None:
            header = range(stmt.lineno, header_end + 1)  # signature and docstring, not the student's comments
            self.code.template_lines.update(n for n in header if not self.text[n - 1].lstrip().startswith("#"))
        own = []
        for s, key in zip(body, keys, strict=True):
            if key in given:
                self._grey(s)
            else:
                own.append(s)
        if replace:
            self.code.units.pop(unit, None)  # the last definition is the one that runs
        self._add(unit, lineariser.statements(own))

    def _class(self, cls: ast.ClassDef) -> None:
        if self.record is None and cls.name in self.template.defined:
            self.code.template_lines.add(cls.lineno)
        loose: list[ast.stmt] = []
        for stmt in cls.body:
            qualified = f"{cls.name}.{stmt.name}" if isinstance(stmt, (*_DEFS, ast.ClassDef)) else ""
            if isinstance(stmt, _DEFS) and (qualified in self.named or cls.name in self.named):
                self._named_function(qualified if qualified in self.named else cls.name, stmt, qualified in self.named)
            elif isinstance(stmt, _DEFS):
                normalised, lineariser = self._normalised_def(stmt)
                if not self._given(lineariser.key(normalised), stmt):
                    self._add(OTHER, lineariser.statements([normalised]))
            else:
                loose.append(stmt)
        statements = [s for s in clean_block(loose, self.aliases) if not self._given(self.lineariser.key(s), s)]
        self._add(OTHER, self.lineariser.statements(statements))
