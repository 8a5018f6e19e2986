"""Jupyter's everyday built-ins inside the box: ``display`` and ``get_ipython()`` (issue 13).

A notebook that calls ``display(df)`` or ``get_ipython().run_line_magic("matplotlib", "inline")``
runs in Jupyter; graded, it raised NameError and everything it defined after that line was lost.
The worker is no kernel, so these are stand-ins: ``display`` prints what Jupyter would show as
plain text, and the shell object's magics get the same emulation as a ``%`` line in a cell (the
code magics run their statement once; display and kernel magics do nothing). Nothing here ever
starts a shell: ``system``, ``getoutput`` and ``!`` lines do nothing and return nothing.
"""

from __future__ import annotations

import builtins
import re
import sys
import types
from typing import Any

# Magics whose argument is ordinary Python: run once (%timeit too: its timing loop is not emulated).
CODE_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
_TIMEIT_OPTIONS = re.compile(r"^(?:\s*-[nrp]\s*\d+|\s*-[tcqo]\b)*\s*")


def display(*objects: Any, **options: Any) -> None:
    """Jupyter's ``display``: each object's plain-text form, as a notebook shows it without HTML."""
    for value in objects:
        if options.get("raw") and isinstance(value, dict):  # display({"text/plain": ...}, raw=True)
            print(value.get("text/plain", ""))
        else:
            print(repr(value))


class _Events:
    """``get_ipython().events``: callbacks are accepted and never called (there is no kernel loop)."""

    def register(self, *args: Any, **kwargs: Any) -> None:
        return None

    def unregister(self, *args: Any, **kwargs: Any) -> None:
        return None


class Shell:
    """What ``get_ipython()`` returns in the box: the common methods, each safe without a kernel."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.user_ns = namespace
        self.user_global_ns = namespace
        self.events = _Events()
        self.config: dict[str, Any] = {}
        self.kernel = None

    def __repr__(self) -> str:
        return "<the grader's stand-in for IPython's shell: magics emulated, no shell>"

    def run_line_magic(self, name: str, line: str = "", _stack_depth: int = 1) -> Any:
        """``%name line``: the code magics run ``line`` once; every other magic does nothing."""
        name = name.lstrip("%")
        if name in CODE_MAGICS and line.strip():
            statement = _TIMEIT_OPTIONS.sub("", line, count=1) if name == "timeit" else line
            exec(compile(statement.strip(), "<magic>", "exec"), self.user_ns)
        return None

    def run_cell_magic(self, name: str, line: str, cell: str) -> Any:
        """``%%name line`` over ``cell``: the code magics run the cell once; the rest are skipped."""
        name = name.lstrip("%")
        if name in CODE_MAGICS:
            if name == "timeit" and line.strip():
                self.run_line_magic("timeit", line)
            exec(compile(cell, "<magic>", "exec"), self.user_ns)
        return None

    def magic(self, line: str) -> Any:
        """The old spelling: ``get_ipython().magic("timeit f(x)")``."""
        name, _, rest = line.lstrip("%").partition(" ")
        return self.run_line_magic(name, rest)

    def system(self, command: str) -> None:
        """``!command``: never run (no shell in the box, ever)."""
        return None

    def getoutput(self, command: str, split: bool = True) -> list[str]:
        """``x = !command``: never run; an empty output."""
        return []

    def run_cell(self, raw_cell: str, store_history: bool = False, silent: bool = False, **kwargs: Any) -> None:
        exec(compile(raw_cell, "<run_cell>", "exec"), self.user_ns)

    def ev(self, expression: str) -> Any:
        return eval(expression, self.user_ns)

    def ex(self, statement: str) -> None:
        exec(statement, self.user_ns)

    def push(self, variables: dict[str, Any], interactive: bool = True) -> None:
        self.user_ns.update(variables)

    def showtraceback(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_next_input(self, *args: Any, **kwargs: Any) -> None:
        return None

    def enable_matplotlib(self, gui: str | None = None) -> tuple[str | None, str]:
        return gui, "agg"

    def __getattr__(self, name: str) -> Any:
        """Any other method a notebook calls (``register_magic_function``...) does nothing."""
        if name.startswith("__"):
            raise AttributeError(name)

        def does_nothing(*args: Any, **kwargs: Any) -> None:
            return None

        return does_nothing


def check_in_box(*args: Any, **kwargs: Any) -> None:
    """``from grader import check; check()`` in a notebook that is being checked or graded: nothing.

    The student's own check cell runs with the rest of the notebook; it must neither fail (the box
    holds no student side of the grader) nor, without a sandbox, start a check from inside a check.
    """
    return None


class _Shown:
    """``IPython.display.HTML(...)`` and friends without IPython: shown as their text, like a plain terminal."""

    def __init__(self, data: Any = None, *args: Any, **kwargs: Any) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {str(self.data)[:200]}>"


def _stand_in_ipython() -> None:
    """``from IPython.display import display, clear_output, HTML`` where IPython is not installed."""
    import importlib.util

    if "IPython" in sys.modules or importlib.util.find_spec("IPython") is not None:
        return
    package, shown = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    shown.display = display  # type: ignore[attr-defined]
    shown.clear_output = shown.update_display = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    for name in ("HTML", "Markdown", "Image", "SVG", "Latex", "Math", "JSON", "Javascript", "Audio", "Video"):
        setattr(shown, name, type(name, (_Shown,), {}))
    package.display = shown  # type: ignore[attr-defined]
    package.get_ipython = builtins.get_ipython  # type: ignore[attr-defined]
    sys.modules.update({"IPython": package, "IPython.display": shown})


def install(module: types.ModuleType) -> Shell:
    """Make the built-ins exist for the student module, as IPython's kernel does for a notebook."""
    shell = Shell(module.__dict__)
    builtins.display = display  # type: ignore[attr-defined]  # IPython puts it in builtins too
    builtins.get_ipython = lambda: shell  # type: ignore[attr-defined]
    _stand_in_ipython()
    grader = sys.modules.get("grader")
    if grader is not None:  # before grader.__getattr__ would import grader.student (issue 13)
        grader.check = check_in_box  # type: ignore[attr-defined]
    return shell
