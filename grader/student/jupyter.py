"""The practice checks from a notebook cell: ``from grader import check; check()`` (issue 13).

It checks the notebook **as saved on disk**: that file is what the student submits, and it is
what `grader check` reads. The kernel may have run code the file does not hold (a cell edited
and run but not saved): the kernel's own input history says so, and the result says it first.
The check runs in a sandbox (or a plain subprocess where there is none), never in the kernel,
and never runs hidden tests. The result shows as an HTML table in Jupyter and as text elsewhere;
both are made from the student view only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.grading.student_view import ALL_PASS, PRACTICE_NOTE, sanitize_text, student_text
from grader.student.check import NO_SANDBOX_NOTE, CheckResult, choose_sandbox, find_assignment_for, run_check

_sandbox_choice: dict[str, str] = {}  # probing bubblewrap starts a box: once per kernel is enough

# Autoescaped like the feedback pages (every string may come from student code); inline styles only,
# since a notebook's output area has no stylesheet of ours.
_TEMPLATE = """<div class="grader-check" style="font-family: system-ui, sans-serif; font-size: 13px">
{% for note in notes %}<p style="color: #b26a00; margin: .2em 0">{{ note }}</p>{% endfor %}
{% if error %}<p style="color: #c62828"><b>check failed:</b> {{ error }}</p>{% endif %}
{% if v %}<p style="margin: .3em 0"><b>{{ v.assignment }}: practice checks
{%- if v.tests %}: {{ v.tests | selectattr("status", "equalto", "passed") | list | length }} of {{ v.tests | length }}
 pass{% endif %}</b> <small>({{ '%.1f' % v.wall_s }} s)</small><br><small>{{ practice_note }}</small></p>
{% if v.message %}<p style="color: #b26a00">{{ v.message }}</p>{% endif %}
{% if v.tests and v.status == "graded" %}<table style="border-collapse: collapse">
<tr><th style="text-align: left; padding: 2px 8px">check</th><th style="text-align: left; padding: 2px 8px">status</th>
<th style="text-align: left; padding: 2px 8px">message</th></tr>
{% for t in v.tests %}<tr style="border-top: 1px solid #ddd"><td style="padding: 2px 8px"><code>{{ t.name }}</code></td>
<td style="padding: 2px 8px; color: {{ '#1a7f37' if t.status == 'passed' else '#c62828' }}">{{ t.status }}</td>
<td style="padding: 2px 8px; white-space: pre-wrap; text-align: left">{{ t.message }}</td></tr>{% endfor %}
</table>{% endif %}
{% if v.failing_cells %}<p style="margin: .5em 0 .2em">Cells that did not run to their end:</p><ul>
{% for c in v.failing_cells %}<li><b>{{ c.label or ('cell %d' % c.index) }}</b>:
<span style="white-space: pre-wrap">{{ c.message }}</span></li>{% endfor %}</ul>{% endif %}
{% for w in v.warnings %}<p style="color: #b26a00; margin: .2em 0">warning: {{ w }}</p>{% endfor %}
{% if v.status == "graded" and v.tests and v.tests | rejectattr("status", "equalto", "passed") | list | length == 0 %}
<p style="color: #1a7f37">{{ all_pass }}</p>{% endif %}
{% endif %}</div>
"""


def _html() -> Any:
    from jinja2 import Environment

    return Environment(autoescape=True).from_string(_TEMPLATE)


class CheckDisplay:
    """A check's result as Jupyter shows it (``_repr_html_``) and as text (``repr``, ``print``)."""

    def __init__(self, result: CheckResult | None, notes: list[str], error: str = "") -> None:
        self.result, self.notes, self.error = result, notes, error

    @property
    def passed(self) -> int:
        return 0 if self.result is None else sum(t.status == "passed" for t in self.result.view.tests)

    @property
    def total(self) -> int:
        return 0 if self.result is None else len(self.result.view.tests)

    def __repr__(self) -> str:
        from rich.console import Console

        from grader.batch.console import print_student_view

        buffer = io.StringIO()
        # force_jupyter=False: in a kernel rich would display each line itself instead of writing the string
        console = Console(file=buffer, width=100, color_system=None, highlight=False, force_jupyter=False)
        for note in self.notes:
            console.print(sanitize_text(note, keep_newlines=False), markup=False)
        if self.error:
            console.print(f"check failed: {sanitize_text(self.error)}", markup=False)
        if self.result is not None:
            print_student_view(console, self.result.view, details=True, notes=self.result.notes)
        return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        view = self.result.view if self.result is not None else None
        extra = self.result.notes if self.result is not None else []
        words = {"practice_note": PRACTICE_NOTE, "all_pass": ALL_PASS}
        notes = [student_text(note) for note in [*self.notes, *extra]]
        return str(_html().render(v=view, notes=notes, error=student_text(self.error), **words))


def check(function: str | None = None, notebook: str | Path | None = None, *, sandbox: str = "auto") -> CheckDisplay:
    """Run the practice checks of this notebook as saved, or only those about ``function``.

    Args:
        function: a function's name (``check("linear_backward")``): the practice checks whose names
            mention it; any pytest ``-k`` expression works too.
        notebook: the notebook file; found by itself in Jupyter, VS Code and the assignment folder.
        sandbox: ``auto`` (bubblewrap where it works), ``bwrap`` or ``none``.
    """
    notes: list[str] = []
    try:
        path = _notebook_path(notebook)
        notes += stale_notes(path)
        assignment = find_assignment_for(path, None, None)
        mode = _sandbox_choice.get(sandbox) or _sandbox_choice.setdefault(sandbox, choose_sandbox(sandbox))
        if mode == "none" and sandbox == "auto":
            notes.append(NO_SANDBOX_NOTE)
        return CheckDisplay(run_check(path, assignment, mode, function), notes)
    except GraderError as exc:
        return CheckDisplay(None, notes, str(exc))


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _notebook_path(notebook: str | Path | None) -> Path:
    """The notebook this kernel belongs to: given, or as Jupyter or VS Code says, or the assignment's."""
    from grader.errors import UsageError
    from grader.grading.spec import SPEC_FILE, load_spec

    if notebook is not None:
        path = Path(notebook).expanduser()
        if not path.is_file():
            raise UsageError(f"{path} is not a file: give the notebook's path, check(notebook='backprop.ipynb')")
        return path.resolve()
    shell = _shell()
    candidates = [os.environ.get("JPY_SESSION_NAME", "")]  # jupyter_server 2.x: the notebook's path
    if shell is not None:
        candidates.append(str(shell.user_ns.get("__vsc_ipynb_file__", "")))  # VS Code
    for candidate in candidates:
        # an absolute path, or one relative to the server's root: then the kernel runs in its folder
        for path in (Path(candidate), Path.cwd() / Path(candidate).name):
            if candidate.endswith(".ipynb") and path.is_file():
                return path.resolve()
    if (Path.cwd() / SPEC_FILE).is_file():
        path = Path.cwd() / load_spec(Path.cwd() / SPEC_FILE).notebook
        if path.is_file():
            return path.resolve()
    raise UsageError("cannot tell which notebook to check: pass it, check(notebook='backprop.ipynb')")


def stale_notes(path: Path) -> list[str]:
    """What the kernel ran that the saved file does not hold, from the kernel's input history."""
    shell = _shell()
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if not isinstance(history, list) or len(history) < 2:
        return []
    try:
        import nbformat

        saved_notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # untyped
    except Exception:  # noqa: BLE001 - an unreadable file is the check's own report to give
        return []
    saved = {str(cell.source).strip() for cell in saved_notebook.cells if cell.cell_type == "code"}
    ran = [str(source).strip() for source in history[1:-1]]  # the last one is this very check
    unsaved = [source for source in ran if source and source not in saved]
    if not unsaved:
        return []
    first = unsaved[-1].splitlines()[0][:60]
    return [
        f"the saved {path.name} is not what this kernel ran: {len(unsaved)} of the cells you ran are not in the "
        f'file as saved (the latest begins "{first}"). The check reads the file, which is what you submit: '
        "save the notebook (Ctrl-S) and check again."
    ]
