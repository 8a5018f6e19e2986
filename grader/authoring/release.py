"""Authoring: student templates made from solution notebooks, and the student bundle that works on its own."""

from __future__ import annotations

import copy
import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import nbformat

from grader import __version__
from grader.errors import UsageError
from grader.grading.spec import Assignment

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_BEGIN_LINE = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
_END_LINE = re.compile(r"^\s*### END SOLUTION\s*$")


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace each BEGIN..END SOLUTION block by `raise NotImplementedError`, indented alike."""
    out: list[str] = []
    indent: str | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        begin = _BEGIN_LINE.match(line)
        if indent is None:
            if begin:
                indent = begin.group(1)
                out.append(f"{indent}raise NotImplementedError")
            elif _END_LINE.match(line):
                raise UsageError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            else:
                out.append(line)
        elif begin:
            raise UsageError(f"{where}, line {number}: {BEGIN} inside another solution block")
        elif _END_LINE.match(line):
            indent = None
    if indent is not None:
        raise UsageError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_template(solution: Any, name: str = "solution") -> Any:
    """The student notebook: answers stripped, outputs and execution counts cleared."""
    template = copy.deepcopy(solution)
    for index, cell in enumerate(template.cells):
        if cell.cell_type != "code":
            continue
        cell.source = strip_solution(cell.source, f"{name}, cell {index}")
        cell.outputs = []
        cell.execution_count = None
    return template


def template_text(solution_path: Path) -> str:
    """The template exactly as `grader release` writes it."""
    solution = nbformat.read(solution_path, as_version=4)  # type: ignore[no-untyped-call]  # untyped
    template = make_template(solution, solution_path.name)
    return str(nbformat.writes(template)) + "\n"  # type: ignore[no-untyped-call]  # untyped


# Fields of assignment.toml that stay with the course staff: the grading seed (knowing it helps
# no honest student) and the data folder's location on the grading machine.
PRIVATE_SPEC_FIELDS = ("seed", "data_dir", "name")


def public_spec_text(assignment: Assignment) -> str:
    """assignment.toml as students get it: title, notebook, limits and rules, no private fields."""
    import tomllib

    data = tomllib.loads((assignment.assignment_dir / "assignment.toml").read_text())
    lines = []
    for key, value in data.items():
        if key in PRIVATE_SPEC_FIELDS or isinstance(value, dict):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict) and key not in PRIVATE_SPEC_FIELDS:
            lines.append(f"\n[{key}]")
            lines += [f"{inner} = {_toml_value(item)}" for inner, item in value.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):  # [limits.relative]'s entries: inline tables
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def release(assignment: Assignment, out_dir: Path) -> Path:
    """Write the student bundle: all a student needs to work and check, nothing of the grading (issue 13).

    ``<out>/<name>/``: the template notebook, tests/ (the visible tests), the public assignment.toml,
    release.json (what the template defines, for the check's load report), README.md (install, check,
    what the check does and does not tell) and the checker itself as a wheel.
    """
    solution = assignment.solutions_dir / assignment.spec.notebook
    if not solution.exists():
        raise UsageError(f"no solution notebook {solution}; the template is made from it")
    target = out_dir / assignment.name
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} is not empty; release into an empty folder")
    (target / "tests").mkdir(parents=True, exist_ok=True)
    template = template_text(solution)
    (target / assignment.spec.notebook).write_text(template)
    (target / "assignment.toml").write_text(public_spec_text(assignment))
    for test_file in sorted(assignment.visible_tests_dir.glob("*.py")):
        shutil.copy2(test_file, target / "tests" / test_file.name)
    data = assignment.data_dir
    if data is not None and data.resolve().is_relative_to(assignment.assignment_dir.resolve()):
        # Public data (fixed model weights) lives beside the spec; students need it to work.
        # Data elsewhere (hidden splits, labels) never leaves the course.
        shutil.copytree(data, target / "data")
    wheel = build_wheel(target)
    functions = _template_functions(target / assignment.spec.notebook)
    bundle = {
        "assignment": assignment.name, "title": assignment.spec.title, "notebook": assignment.spec.notebook,
        "functions": functions, "grader_version": __version__, "wheel": wheel.name,
    }  # fmt: skip
    (target / "release.json").write_text(json.dumps(bundle, indent=2) + "\n")
    visible = sorted(p.name for p in (target / "tests").glob("test_*.py"))
    (target / "README.md").write_text(student_readme(assignment, wheel.name, functions, bool(visible)))
    return target


def _template_functions(template: Path) -> list[str]:
    from grader.grading.submission import load_submission

    return [name for cell in load_submission(template).cells for name in cell.defines]


# ------------------------------------------------------------------ the student's README

_README = """# {title}

This folder is all you need for the assignment:

- `{notebook}`: the notebook to fill in (each `raise NotImplementedError` is yours to replace);
- `tests/`: the practice checks, small examples you can verify by hand;
- `assignment.toml`: the rules and limits your notebook is graded under;
- `{wheel}`: the checker.

## Install the checker (once)

```bash
pip install {wheel}
```

Run it in this folder, in the Python environment your Jupyter uses (or in a notebook cell:
`%pip install {wheel}`). It needs Python 3.11 or newer; your notebook's own packages
({preload}) come from the course's setup, as for any other notebook.

## Check your notebook

```bash
grader check {notebook}
```

or, in a cell of the notebook (save the notebook first: the check reads the file as saved, which is
what you submit, and it tells you when the kernel ran code the file does not hold):

```python
from grader import check; check()
check("{example}")    # only the checks about one function
```

`grader check --details` (`-v`) prints every message whole; `-k {example}` runs only the checks whose
names contain `{example}`.

## What the check tells you, and what it does not

{practice}
- Every cell that raised, was stopped or did not run, named as Jupyter shows it: its position among the
  code cells, `In [n]` if you saved the notebook after running it, and its first line.
{time_limits}
- Whether the notebook uses what the assignment forbids ({forbidden}); if it does, every test
  scores 0.
- **It is not your grade.** The grade comes from hidden tests that try more cases (other shapes, large
  and small values, training). Passing every practice check does not mean full marks; failing one
  means that something is wrong.
- Your code runs on your own machine: in a sandbox (bubblewrap) on Linux where it is installed, otherwise
  as a plain subprocess, and a note says so. On Windows, use WSL.
"""
_PRACTICE = (
    "- Each practice check in `tests/` (open them to see the inputs), passed or what is wrong; a function\n"
    "  you have not written yet fails as `not implemented yet`."
)
_NO_PRACTICE = (
    "- This assignment has no practice checks: the check loads your notebook and says which functions it\n"
    "  defines and which the template asks for that it lacks."
)


def student_readme(assignment: Assignment, wheel: str, functions: list[str], practice: bool) -> str:
    """The bundle's README.md: install (one command), check (one command), what the check says."""
    spec = assignment.spec
    forbidden = spec.static.forbidden_imports + spec.static.forbidden_calls
    return _README.format(
        title=spec.title, notebook=spec.notebook, wheel=wheel, preload=", ".join(spec.preload) or "none",
        example=functions[0] if functions else "my_function", practice=_PRACTICE if practice else _NO_PRACTICE,
        time_limits=_time_limits(assignment), forbidden=", ".join(forbidden) or "nothing here",
    )  # fmt: skip


def _time_limits(assignment: Assignment) -> str:
    """What the README says of the load's time limits, as the check and the grading apply them."""
    limits = assignment.spec.limits
    relative = limits.relative.load if limits.relative is not None else None
    graded = ""
    if relative is not None:  # graded under limits measured on the grading machine (issue 20)
        graded = (
            f" (when graded: {relative.factor:g}x the reference solution's time, {relative.min_s:g} to "
            f"{relative.max_s:g} s)"
        )
    slow = (
        'keep slow demos (training for minutes) at the end, or under `if __name__ == "__main__":`, which runs '
        "in Jupyter and not when checked or graded."
    )
    if limits.cell_timeout_s is None:
        text = (
            f"When the notebook loads, all cells together may run for {limits.load_timeout_s:g} s{graded}; a cell "
            f"still running then is stopped and the cells after it do not run: {slow}"
        )
    else:
        text = (
            f"When the notebook loads, each cell may run for {limits.cell_timeout_s:g} s and all cells together "
            f"for {limits.load_timeout_s:g} s{graded}; a cell that takes longer is stopped and the cells after it "
            f"still run. Even so, {slow}"
        )
    return textwrap.fill(text, width=100, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)


# ------------------------------------------------------------------ the checker as a wheel

# What `grader check` and `check()` need; the grader's own extras (torch, scikit-learn, matplotlib,
# nbconvert) are for grading and exports. The notebook's own packages come from the course's setup.
STUDENT_REQUIREMENTS = ("pytest", "numpy", "nbformat", "click", "pydantic", "rich", "jinja2")
_FALLBACK_REQUIREMENTS = ["pytest<10,>=8", "numpy>=1.26", "nbformat>=5.9", "click>=8.1", "pydantic>=2.6",
                          "rich>=13", "jinja2>=3.1"]  # fmt: skip
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # one fixed time: the same sources make the same wheel


def _requirements() -> list[str]:
    from importlib import metadata

    try:
        declared = metadata.requires("dl-grader") or []
    except metadata.PackageNotFoundError:
        return list(_FALLBACK_REQUIREMENTS)
    wanted = [r for r in declared if "extra ==" not in r and re.split(r"[<>=!~;\[ ]", r)[0] in STUDENT_REQUIREMENTS]
    return wanted or list(_FALLBACK_REQUIREMENTS)


def _wheel_sources() -> list[tuple[str, Path]]:
    """The grader package's Python files and the `grader` command's module, as installed here."""
    import importlib.util

    package = Path(__file__).resolve().parent.parent
    files = [
        (f"grader/{path.relative_to(package).as_posix()}", path)
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    cli = importlib.util.find_spec("cli")
    if cli is None or cli.origin is None:
        raise UsageError("the grader's command module (cli.py) is not installed here; reinstall the grader")
    return [*files, ("cli.py", Path(cli.origin))]


def build_wheel(folder: Path) -> Path:
    """A pure-Python wheel of this grader (the exact version the course grades with), into ``folder``."""
    import base64
    import hashlib
    import zipfile

    dist = f"dl_grader-{__version__}"
    info = f"{dist}.dist-info"
    metadata = [
        "Metadata-Version: 2.1", "Name: dl-grader", f"Version: {__version__}",
        "Summary: The course's notebook checker: grader check and check() in Jupyter",
        "Requires-Python: >=3.11", *(f"Requires-Dist: {r}" for r in _requirements()),
    ]  # fmt: skip
    members = [(name, path.read_bytes()) for name, path in _wheel_sources()]
    members += [
        (f"{info}/METADATA", ("\n".join(metadata) + "\n").encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: grader release\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\ngrader = cli:main\n"),
        (f"{info}/top_level.txt", b"cli\ngrader\n"),
    ]
    record = []
    for name, data in members:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    members.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in members:
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return path
