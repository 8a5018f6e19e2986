"""Our batch against nbgrader's `autograde` on the same generated notebooks, in one run (issue 20).

    .venv/bin/python benchmarks/vs_nbgrader.py --n 60 --repeat 3

A three-function numpy assignment with six tests; the mix: 60 % correct, 20 % partly wrong, 10 %
raising, 5 % an infinite loop, 5 % a 3 s sleep at import. nbgrader (pinned, in its own venv
under benchmarks/.nbgrader-venv, never a dependency of the product) grades it with a 10 s cell
timeout; ours with call_timeout_s = 10 (fixed) and with limits relative to the reference.
Runs alternate (ours fixed, ours relative, nbgrader) so that machine noise hits all three alike.
Prints and writes benchmarks/results/vs_nbgrader.{json,md}: wall time of each batch, the ratios,
and whether the three agree on every student's total.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NBGRADER_VERSION = "0.9.6"
NBGRADER_VENV = REPO / "benchmarks" / ".nbgrader-venv"
RESULTS = REPO / "benchmarks" / "results"

GIVEN = "import numpy as np\n"
CORRECT = {
    "relu": "def relu(x):\n    return np.maximum(x, 0)\n",
    "softmax": (
        "def softmax(x):\n    e = np.exp(x - x.max(axis=-1, keepdims=True))\n"
        "    return e / e.sum(axis=-1, keepdims=True)\n"
    ),
    "normalize": "def normalize(x):\n    return x / np.linalg.norm(x)\n",
}
WRONG = dict(CORRECT, normalize="def normalize(x):\n    return x / np.abs(x).max()\n")
RAISING = dict(CORRECT, relu="def relu(x):\n    raise NotImplementedError\n")
LOOPING = dict(CORRECT, softmax="def softmax(x):\n    while True:\n        pass\n")
SLOW_IMPORT = {**CORRECT, "relu": "import time\ntime.sleep(3)\n\n" + CORRECT["relu"]}
# (test name, function, argument as source, expected as source): the same six checks on both sides.
TESTS = [
    ("relu_positive", "relu", "np.arange(5.0)", "np.arange(5.0)"),
    ("relu_negative", "relu", "-np.arange(5.0)", "np.zeros(5)"),
    ("softmax_sums", "softmax", "np.arange(6.0).reshape(2, 3)", None),
    ("softmax_values", "softmax", "np.array([0.0, np.log(3.0)])", "np.array([0.25, 0.75])"),
    ("normalize_norm", "normalize", "np.array([3.0, 4.0])", "np.array([0.6, 0.8])"),
    ("normalize_unit", "normalize", "np.arange(1.0, 5.0)", None),
]


def mix(n: int) -> list[tuple[str, dict[str, str]]]:
    """Student name and answers, in the issue's proportions (rounded, at least one of each)."""
    kinds = [("wrong", WRONG, 0.2), ("raising", RAISING, 0.1), ("looping", LOOPING, 0.05), ("slow", SLOW_IMPORT, 0.05)]
    students: list[tuple[str, dict[str, str]]] = []
    for kind, answers, share in kinds:
        students += [(f"{kind}{i:03d}", answers) for i in range(max(1, round(n * share)))]
    students += [(f"correct{i:03d}", CORRECT) for i in range(n - len(students))]
    return students


def _check(function: str, argument: str, expected: str | None) -> str:
    if expected is not None:
        return f"assert np.allclose({function}({argument}), {expected}), '{function} is wrong'"
    if function == "softmax":
        return f"assert np.allclose({function}({argument}).sum(axis=-1), 1.0), 'softmax rows must sum to 1'"
    return f"assert np.isclose(np.linalg.norm({function}({argument})), 1.0), 'normalize must give norm 1'"


# ---------------------------------------------------------------- ours


def build_ours(root: Path, students: list[tuple[str, dict[str, str]]], relative: bool) -> Path:
    course = root / ("ours-relative" if relative else "ours-fixed")
    (course / "assignments" / "mix" / "tests").mkdir(parents=True)
    (course / "autograde_tests" / "mix").mkdir(parents=True)
    (course / "solutions" / "mix").mkdir(parents=True)
    spec = 'title = "Mix"\nnotebook = "mix.ipynb"\npreload = ["numpy"]\n\n[limits]\ncall_timeout_s = 10\n'
    if relative:
        spec += "\n[limits.relative]\ncall = { factor = 20, min_s = 1, max_s = 10 }\n"
    (course / "assignments" / "mix" / "assignment.toml").write_text(spec)
    tests = ["import numpy as np", "from grader.testing import points", ""]
    for name, function, argument, expected in TESTS:
        tests += ["@points(1)", f"def test_{name}(submission):", f"    {function} = submission.{function}"]
        tests += [f"    {_check(function, argument, expected)}", ""]
    (course / "autograde_tests" / "mix" / "test_mix.py").write_text("\n".join(tests))
    _write_plain(course / "solutions" / "mix" / "mix.ipynb", CORRECT)
    submissions = course / "submissions"
    submissions.mkdir()
    for student, answers in students:
        _write_plain(submissions / f"{student}.ipynb", answers)
    return course


def _write_plain(path: Path, answers: dict[str, str]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(GIVEN)] + [nbformat.v4.new_code_cell(a) for a in answers.values()]
    nbformat.write(notebook, path)


def run_ours(course: Path, workers: int) -> tuple[float, dict[str, float]]:
    out = course / f"out-{time.monotonic_ns()}"
    command = [str(REPO / ".venv" / "bin" / "grader"), "grade", "mix", str(course / "submissions"),
               "--out", str(out), "--course", str(course), "--workers", str(workers), "--no-export"]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    students = [p.stem for p in (course / "submissions").glob("*.ipynb")]
    totals = {student: json.loads((out / f"{student}.json").read_text())["score"] for student in students}
    return elapsed, totals


# ---------------------------------------------------------------- nbgrader


def ensure_nbgrader() -> Path:
    """nbgrader in its own venv (outside the product's dependencies); returns its bin folder."""
    bin_dir = NBGRADER_VENV / "bin"
    if not (bin_dir / "nbgrader").exists():
        subprocess.run([sys.executable, "-m", "venv", str(NBGRADER_VENV)], check=True)
        subprocess.run([str(bin_dir / "pip"), "install", "-q", f"nbgrader=={NBGRADER_VERSION}", "numpy"], check=True)
    return bin_dir


def _nbgrader_cell(source: str, **meta: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "solution": False, "grade": False,
                                 "locked": False, **meta}  # fmt: skip
    return cell


def _nbgrader(bin_dir: Path, course: Path, *args: str) -> None:
    """Run one nbgrader command in the course folder; its own output when it fails."""
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(bin_dir / "nbgrader"), *args], cwd=course, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build_nbgrader(root: Path, students: list[tuple[str, dict[str, str]]], bin_dir: Path) -> Path:
    course = root / "nbgrader"
    (course / "source" / "mix").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\nc.ExecutePreprocessor.timeout = 10\n"
    )
    source = nbformat.v4.new_notebook()
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source.cells = [_nbgrader_cell(GIVEN, grade_id="given", locked=True)]
    for name, answer in CORRECT.items():
        body = "### BEGIN SOLUTION\n" + answer + "### END SOLUTION\n"
        source.cells.append(_nbgrader_cell(body, grade_id=name, solution=True))
    for name, function, argument, expected in TESTS:
        source.cells.append(
            _nbgrader_cell(
                _check(function, argument, expected), grade_id=f"test_{name}", grade=True, locked=True, points=1
            )
        )
    nbformat.write(source, course / "source" / "mix" / "mix.ipynb")
    _nbgrader(bin_dir, course, "generate_assignment", "mix", "--force")
    shutil.copy(course / "gradebook.db", course / "gradebook.pristine")  # the assignment, no grades
    released = nbformat.read(course / "release" / "mix" / "mix.ipynb", as_version=4)
    for student, answers in students:
        notebook = nbformat.from_dict(json.loads(json.dumps(released)))
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        target = course / "submitted" / student / "mix"
        target.mkdir(parents=True)
        nbformat.write(notebook, target / "mix.ipynb")
    return course


def run_nbgrader(course: Path, bin_dir: Path) -> tuple[float, dict[str, float]]:
    shutil.rmtree(course / "autograded", ignore_errors=True)
    shutil.copy(course / "gradebook.pristine", course / "gradebook.db")  # every round starts alike
    started = time.monotonic()
    _nbgrader(bin_dir, course, "autograde", "mix", "--force")
    elapsed = time.monotonic() - started
    _nbgrader(bin_dir, course, "export")
    with open(course / "grades.csv", newline="") as stream:
        totals = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(stream)}
    return elapsed, totals


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    students = mix(args.n)
    bin_dir = ensure_nbgrader()
    root = Path(tempfile.mkdtemp(prefix="vs-nbgrader-"))
    courses = {"ours (fixed limits)": build_ours(root, students, relative=False),
               "ours (relative limits)": build_ours(root, students, relative=True)}  # fmt: skip
    nbgrader_course = build_nbgrader(root, students, bin_dir)
    times: dict[str, list[float]] = {name: [] for name in [*courses, "nbgrader autograde"]}
    totals: dict[str, dict[str, float]] = {}
    for round_ in range(args.repeat):
        for name, course in courses.items():
            elapsed, totals[name] = run_ours(course, args.workers)
            times[name].append(elapsed)
        elapsed, totals["nbgrader autograde"] = run_nbgrader(nbgrader_course, bin_dir)
        times["nbgrader autograde"].append(elapsed)
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    report(args, students, times, totals)


def report(args: argparse.Namespace, students: list, times: dict[str, list[float]], totals: dict) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["nbgrader autograde"]
    reference = totals["ours (fixed limits)"]
    agree = {
        name: all(abs(found.get(s, -1) - reference[s]) < 1e-9 for s in reference) for name, found in totals.items()
    }
    machine = f"{platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    result = {
        "machine": machine, "n": args.n, "repeat": args.repeat, "workers": args.workers,
        "nbgrader": NBGRADER_VERSION, "times_s": times, "median_s": medians,
        "speedup_vs_nbgrader": {name: baseline / m for name, m in medians.items()},
        "same_totals_as_ours_fixed": agree,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vs_nbgrader.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# ours vs nbgrader {NBGRADER_VERSION}: {args.n} notebooks, {args.workers} workers, {args.repeat} rounds",
             "", f"Machine: {machine}", "", "| batch | median s | all runs s | vs nbgrader | same totals |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {medians[name]:.1f} | {runs} | {baseline / medians[name]:.1f}x | {agree[name]} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "vs_nbgrader.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
