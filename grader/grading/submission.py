"""Submission loading: a notebook or .py file becomes normalised code cells, a hash and warnings."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.grading.report import cell_label, first_code_line, printable, valid_text

MAX_SUBMISSION_BYTES = 20 * 1024 * 1024
# No notebook Jupyter writes comes near this; nbformat's validator recurses on depth (issue 11).
MAX_NOTEBOOK_DEPTH = 100

# Line magics that are harmless to drop silently: they only change the display or the kernel.
_IGNORED_LINE_MAGICS = {"matplotlib", "load_ext", "autoreload", "config", "precision", "pylab"}
# Line magics whose argument is ordinary code and can simply be run.
_CODE_LINE_MAGICS = {"time", "timeit"}
# Cell magics whose body is ordinary Python and can be run as is.
_CODE_CELL_MAGICS = {"time", "timeit", "capture"}


class InvalidSubmission(Exception):
    """The file cannot be graded at all; the message is one sentence for the student."""


@dataclass(frozen=True)
class Cell:
    """One code cell of the submission, magics already rewritten."""

    index: int = field(metadata={"description": "0-based position among all notebook cells."})
    source: str = field(metadata={"description": "Python source to execute."})
    position: int | None = field(default=None, metadata={"description": "1-based position among code cells."})
    execution_count: int | None = field(default=None, metadata={"description": "In [n] of the saved notebook."})
    first_line: str = field(default="", metadata={"description": "First non-blank line as the student wrote it."})
    defines: tuple[str, ...] = field(default=(), metadata={"description": "Top-level def and class names."})

    @property
    def label(self) -> str:
        """The name a student can find: ``code cell 4 (In [5], "def f(x):")`` (issue 13)."""
        return cell_label(self.index, self.position, self.execution_count, self.first_line)


# Top-level definitions, found by a pattern and not by the parser: a cell with a SyntaxError still
# says which functions it was meant to define (issue 13: "relu_forward is defined in code cell 4").
_DEFINITION = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def defined_names(source: str) -> tuple[str, ...]:
    """Names of the functions and classes a cell's source defines at its top level, in order."""
    return tuple(dict.fromkeys(_DEFINITION.findall(source)))


def _execution_count(cell: dict[str, Any]) -> int | None:
    count = cell.get("execution_count")
    return count if type(count) is int and 0 <= count < 10**9 else None


@dataclass(frozen=True)
class Submission:
    """A loaded submission: what the worker executes and what the report identifies it by."""

    id: str
    path: Path
    sha256: str
    cells: tuple[Cell, ...]
    warnings: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return "\n\n".join(cell.source for cell in self.cells)


def _rewrite_line(line: str, cell_index: int, notes: list[str]) -> str:
    """Rewrite one IPython-only line into plain Python; never hands anything to a shell."""
    stripped = line.lstrip()
    indent = line[: len(line) - len(stripped)]
    if stripped.startswith("!") or re.match(r"^[\w.,\s]+=\s*!", stripped):
        notes.append(f"cell {cell_index}: shell command {stripped[:60]!r} was not run")
        return f"{indent}pass"
    if stripped.startswith("%") and not stripped.startswith("%%"):
        name, _, rest = stripped[1:].partition(" ")
        if name in _CODE_LINE_MAGICS and rest.strip():
            statement = _timeit_statement(rest) if name == "timeit" else rest.strip()
            return f"{indent}{statement or 'pass'}"
        if name not in _IGNORED_LINE_MAGICS:
            notes.append(f"cell {cell_index}: magic %{name} is not supported and was skipped")
        return f"{indent}pass"
    if stripped.endswith("?") and not stripped.startswith("#") and re.fullmatch(r"[\w.]+\?\??", stripped):
        notes.append(f"cell {cell_index}: help request {stripped!r} was skipped")
        return f"{indent}pass"
    return line


# %timeit's options, the ones that take a value first: -n 10 -r 3 -p 3, then the flags -t -c -q -o.
_TIMEIT_OPTIONS = re.compile(r"^(?:\s*-[nrp]\s*\d+|\s*-[tcqo]\b)*\s*")


def _timeit_statement(rest: str) -> str:
    """The statement of ``%timeit [options] statement``: run once, as in a plain kernel (issue 13)."""
    return _TIMEIT_OPTIONS.sub("", rest, count=1).strip()


def rewrite_ipython(source: str, cell_index: int, notes: list[str]) -> str:
    """Turn a notebook cell into plain Python: emulate a small allow-list, skip the rest.

    Every line stays on its line, so a line number in an error is the line the student sees.
    """
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name, _, rest = first[2:].partition(" ")
        if name in _CODE_CELL_MAGICS:
            # %%timeit's first line may hold a setup statement after the options: it runs first.
            setup = _timeit_statement(rest) if name == "timeit" else ""
            lines = [setup or "pass", *lines[1:]]
        else:
            notes.append(f"cell {cell_index}: cell magic %%{name} is not supported; the cell was skipped")
            return ""
    return "\n".join(_rewrite_line(line, cell_index, notes) for line in lines)


def _decode(raw: bytes, name: str) -> str:
    if not raw:
        raise InvalidSubmission(f"{name} is empty (0 bytes); submit the notebook you worked in")
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise InvalidSubmission(
            f"{name} is {len(raw) / 1e6:.1f} MB, over the {MAX_SUBMISSION_BYTES / 1e6:.0f} MB limit; "
            "clear the cell outputs (Edit > Clear All Outputs) and submit again"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidSubmission(
            f"{name} is not UTF-8 text (bad byte at offset {exc.start}); "
            "save it from Jupyter again instead of editing it elsewhere"
        ) from None


def _nested_deeper_than(data: Any, limit: int) -> bool:
    """Whether parsed JSON nests lists and objects more than ``limit`` deep (iterative: no recursion)."""
    stack = [iter((data,))]
    while stack:
        for child in stack[-1]:
            if type(child) is dict or type(child) is list:
                stack.append(iter(child.values() if type(child) is dict else child))
                break
        else:
            stack.pop()
            continue
        if len(stack) > limit + 1:
            return True
    return False


def _too_deep(name: str) -> InvalidSubmission:
    return InvalidSubmission(
        f"{name} is not a valid notebook: its JSON is nested more than {MAX_NOTEBOOK_DEPTH} levels deep; "
        "open it in Jupyter, save it, and submit again"
    )


def _parse_json(text: str, name: str) -> Any:
    """The notebook's JSON, or InvalidSubmission: every error the parser raises is the file's (issue 11)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(
            f"{name} is not a valid notebook: its JSON is broken at line {exc.lineno}, "
            f"column {exc.colno}; open it in Jupyter, save it, and submit again"
        ) from None
    except RecursionError:  # nested past what the parser can follow (about 1000 levels)
        raise _too_deep(name) from None
    except ValueError:  # the only other one: an integer over Python's digit limit (CVE-2020-10735)
        raise InvalidSubmission(
            f"{name} is not a valid notebook: it holds a number of more than {sys.get_int_max_str_digits()} "
            "digits; open it in Jupyter, save it, and submit again"
        ) from None
    if _nested_deeper_than(data, MAX_NOTEBOOK_DEPTH):
        raise _too_deep(name)
    return data


def _valid_source(source: str, cell_index: int, notes: list[str]) -> str:
    """JSON can spell a lone surrogate (``\\ud800``) that Python cannot compile; U+FFFD instead (issue 11)."""
    valid = valid_text(source, bytes_as_escapes=False)
    if valid != source:
        notes.append(f"cell {cell_index}: characters that are not valid Unicode (lone surrogates) became U+FFFD")
    return valid


def _notebook_cells(text: str, name: str, notes: list[str]) -> list[Cell]:
    import nbformat

    data = _parse_json(text, name)
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise InvalidSubmission(f"{name} is JSON but not a Jupyter notebook (it has no cells)")
    major = data.get("nbformat")
    if major != 4:
        raise InvalidSubmission(
            f"{name} is in notebook format {major!r}, but only format 4 is accepted; "
            "open and save it in a current Jupyter to convert it"
        )
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            notebook = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]  # nbformat is untyped
        except Exception as exc:  # nbformat raises several unrelated types for bad input
            raise InvalidSubmission(f"{name} is not a readable notebook ({type(exc).__name__})") from None
    cells: list[Cell] = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(part) for part in source)
        if not isinstance(source, str):
            raise InvalidSubmission(f"{name}: cell {index} has no readable source")
        source = _valid_source(source, index, notes)
        cells.append(
            Cell(
                index=index, source=rewrite_ipython(source, index, notes), position=len(cells) + 1,
                execution_count=_execution_count(cell), first_line=first_code_line(source),
                defines=defined_names(source),
            )
        )  # fmt: skip
    return cells


def _python_cells(text: str) -> list[Cell]:
    """A .py file is one cell, or several when it uses the '# %%' percent-format markers."""
    # No Jupyter cells here: a cell keeps its name "cell N", the N-th `# %%` section (0: the whole
    # file, or what comes before the first marker), and gets no position or In [n].
    parts = re.split(r"^# %%.*$", text, flags=re.MULTILINE)
    if len(parts) == 1:
        return [Cell(index=0, source=text, first_line=first_code_line(text), defines=defined_names(text))]
    return [
        Cell(index=i, source=part, first_line=first_code_line(part), defines=defined_names(part))
        for i, part in enumerate(parts)
        if part.strip()
    ]


def load_submission(path: Path, submission_id: str | None = None) -> Submission:
    """Load and normalise a submission; raise InvalidSubmission with one clear sentence."""
    name = printable(path.name)  # a name may hold bytes that are not UTF-8, or a newline (issue 11)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise InvalidSubmission(f"{name} is a folder, not a notebook file") from None
    except OSError as exc:
        raise InvalidSubmission(f"{name} cannot be read ({exc.strerror})") from None
    text = _decode(raw, name)
    notes: list[str] = []
    if path.suffix == ".ipynb":
        cells = _notebook_cells(text, name, notes)
    elif path.suffix == ".py":
        cells = _python_cells(text)
    else:
        raise InvalidSubmission(f"{name} is neither a notebook (.ipynb) nor a Python file (.py)")
    if not any(cell.source.strip() for cell in cells):
        raise InvalidSubmission(f"{name} contains no code")
    return Submission(
        id=submission_id or path.stem,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        cells=tuple(cells),
        warnings=tuple(notes),
    )
