"""Benchmark: the grader's per-submission overhead over the floor, with 1 and 2 workers.

The floor is the same hidden tests run in one plain process against the same student code: one
pytest session, tests collected once, each submission's cells executed in-process, no sandbox,
no per-submission start-up. The grader side is the real batch path (run_batch: pool, sandbox,
gradebook). With W workers the floor is also measured as W plain processes computing at once,
which is what the machine can give in parallel. A hostile submission is graded too but left out
of the ratio, since it cannot run unsandboxed. Usage (from the repository root):

    .venv/bin/python benchmarks/harness.py backprop --n 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.batch.intake import collect  # noqa: E402
from grader.batch.runner import run_batch  # noqa: E402
from grader.grading.spec import load_assignment  # noqa: E402
from grader.grading.submission import load_submission  # noqa: E402
from grader.grading.suite import pytest_args  # noqa: E402 - the same pytest options as the real grader
from grader.grading.testing import Credit  # noqa: E402
from grader.inside.worker import Worker  # noqa: E402
from grader.settings import GradeSettings  # noqa: E402

HOSTILE = "\n\ndef _spin():\n    while True:\n        pass\n\n_spin()\n"


def _code_cell(source: str) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}


def make_submissions(assignment: str, n: int, folder: Path) -> tuple[list[Path], Path]:
    """A realistic mix: ~70% correct, ~15% partly wrong, ~10% broken, one slow, plus one hostile."""
    samples = REPO / "samples" / assignment
    kinds = ["correct"] * 14 + ["partly_wrong"] * 3 + ["broken"] * 2 + ["slow"]
    paths = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        source = (samples / f"{'correct' if kind == 'slow' else kind}.ipynb").read_text()
        notebook = json.loads(source)
        extra = f"# submission {i}\n" + ("import time\ntime.sleep(1.0)\n" if kind == "slow" else "")
        notebook["cells"].append(_code_cell(extra))
        path = folder / f"s{i:03d}_{kind}.ipynb"
        path.write_text(json.dumps(notebook))
        paths.append(path)
    hostile = folder.parent / "hostile" / "hostile.ipynb"
    hostile.parent.mkdir(exist_ok=True)
    notebook = json.loads((samples / "correct.ipynb").read_text())
    notebook["cells"].append(_code_cell(HOSTILE))
    hostile.write_text(json.dumps(notebook))
    return paths, hostile


class InProcessSession:
    """The floor's stand-in for WorkerSession: student code runs right here, no isolation."""

    def __init__(self, path: Path, preload: list[str], seed: int, probes: str | None) -> None:
        self.worker = Worker(-1, -1)
        cells = [{"index": c.index, "source": c.source} for c in load_submission(path).cells]
        self.worker.load({"cells": cells, "probes_source": probes, "preload": preload, "seed": seed})
        self.seed, self.test_faults = seed, []

    def request(self, op: str, value: Any, call_timeout_s: float | None, **fields: Any) -> Any:
        if op == "has":
            return callable(getattr(self.worker.module, fields["name"], None))
        return self.worker.call({"op": op, "value": value, **fields})


class FloorProxy:
    def __init__(self, session: InProcessSession) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self._session.request("call", [a, k], None, name=name)

    def run(self, probe: str, *args: Any, **kwargs: Any) -> Any:
        return self._session.request("probe", [args, kwargs], None, name=probe)

    def has(self, name: str) -> bool:
        return bool(self._session.request("has", None, None, name=name))


class FloorPlugin:
    """Runs every hidden test once per submission in one pytest session; student exceptions count."""

    def __init__(self, sessions: list[InProcessSession]) -> None:
        self.sessions = sessions
        self.run_s = 0.0

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "submission" in metafunc.fixturenames:
            metafunc.parametrize("submission", range(len(self.sessions)), indirect=True)

    @pytest.fixture
    def submission(self, request: pytest.FixtureRequest) -> FloorProxy:
        return FloorProxy(self.sessions[request.param])

    @pytest.fixture
    def credit(self) -> Credit:
        return Credit()

    @pytest.fixture
    def metric(self) -> Any:
        return lambda name, value: None

    @pytest.fixture
    def grading_seed(self) -> int:
        return 0

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        started = time.perf_counter()
        yield
        self.run_s = time.perf_counter() - started

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "points(n, visible=True): points")
        config.addinivalue_line("markers", "grader_limits(**limits): limits")


def floor_seconds(assignment: Any, paths: list[Path]) -> float:
    """Total floor time: executing every submission's cells plus running every test on it."""
    probes = assignment.probes_path.read_text() if assignment.probes_path.exists() else None
    for name in assignment.spec.preload:
        __import__(name)
    started = time.perf_counter()
    sessions = [InProcessSession(p, assignment.spec.preload, assignment.spec.seed, probes) for p in paths]
    load_s = time.perf_counter() - started
    plugin = FloorPlugin(sessions)
    pytest.main(pytest_args(assignment.hidden_tests_dir), plugins=[plugin])
    return load_s + plugin.run_s


def parallel_floor_seconds(assignment_name: str, paths: list[Path], processes: int) -> float:
    """Wall time of `processes` plain floors computing at once, each on its share of the submissions.

    What the machine itself gives when several processes compute at once (shared cores, caches,
    memory bandwidth): the baseline for the grader with as many workers. Each process imports
    what it needs first and says "ready"; all start together and each reports its own floor time
    (imports excluded, as in the one-process floor); the slowest one is the wall time.
    """
    import subprocess

    shares = [paths[i::processes] for i in range(processes)]
    command = [sys.executable, __file__, assignment_name, "--floor-of"]
    running = [
        subprocess.Popen([*command, *map(str, share)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for share in shares
    ]
    for process in running:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in running:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    seconds = [float(process.communicate()[0].strip().splitlines()[-1]) for process in running]
    if any(process.returncode != 0 for process in running):
        raise RuntimeError("a parallel floor process failed")
    return max(seconds)


def grader_seconds(assignment: Any, folder: Path, workers: int, out: Path) -> tuple[float, list[Any], list[float]]:
    """Wall time of the real batch path, its reports, and when each report arrived (s from start)."""
    intake = collect([folder], assignment.spec.notebook, out / "x")
    settings = GradeSettings(sandbox="bwrap")
    arrivals: list[float] = []
    started = time.perf_counter()
    summary = run_batch(
        assignment, intake, out, settings, workers=workers, force=True,
        on_report=lambda report, done, total: arrivals.append(time.perf_counter() - started),
    )  # fmt: skip
    return time.perf_counter() - started, summary.reports, arrivals


def steady_state(arrivals: list[float], workers: int, wall: float) -> tuple[float | None, float | None]:
    """Wall s per submission once every worker has finished its first one, and the start-up left.

    total wall = start-up + n x steady wall per submission: the start-up (pool processes, warm
    sandboxes, collecting the tests) is paid once per batch, the steady part per submission.
    """
    if len(arrivals) <= 2 * workers:
        return None, None
    steady = (arrivals[-1] - arrivals[workers - 1]) / (len(arrivals) - workers)
    return steady, wall - steady * len(arrivals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--floor-of", type=Path, nargs="+", help=argparse.SUPPRESS)  # a parallel floor's share
    args = parser.parse_args()
    assignment = load_assignment(REPO / "assignments" / args.assignment)
    if args.floor_of:  # one process of a parallel floor: import, say ready, wait for go
        for name in assignment.spec.preload:
            __import__(name)
        print("ready", flush=True)
        sys.stdin.readline()
        print(floor_seconds(assignment, args.floor_of), flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "subs"
        folder.mkdir()
        paths, hostile = make_submissions(args.assignment, args.n, folder)
        floor = floor_seconds(assignment, paths)
        result: dict[str, Any] = {
            "assignment": args.assignment, "n": args.n, "machine": f"{platform.node()} {platform.processor()}",
            "cores": os.cpu_count(), "python": platform.python_version(), "floor_total_s": round(floor, 3),
            "floor_per_submission_s": round(floor / args.n, 4), "runs": [],
        }  # fmt: skip
        for workers in args.workers:
            parallel_floor = parallel_floor_seconds(args.assignment, paths, workers) if workers > 1 else floor
            wall, reports, arrivals = grader_seconds(assignment, folder, workers, Path(scratch) / f"out{workers}")
            steady, startup = steady_state(arrivals, workers, wall)
            sandbox_peaks = [r.resources.peak_rss_mb for r in reports if r.resources.peak_rss_mb]
            result["runs"].append({
                "workers": workers, "total_wall_s": round(wall, 3), "per_submission_wall_s": round(wall / args.n, 4),
                "overhead_per_submission_s": round((wall * workers - floor) / args.n, 4),
                "ratio_to_floor": round(wall * workers / floor, 2),
                "steady_wall_per_submission_s": round(steady, 4) if steady is not None else None,
                "steady_overhead_per_submission_s": (
                    round(steady * workers - floor / args.n, 4) if steady is not None else None
                ),
                "startup_s": round(startup, 2) if startup is not None else None,
                "parallel_floor_wall_s": round(parallel_floor, 3),
                "overhead_over_parallel_floor_s": round((wall - parallel_floor) * workers / args.n, 4),
                "median_sandbox_peak_mb": round(statistics.median(sandbox_peaks), 1) if sandbox_peaks else None,
                "scores": sorted({r.score for r in reports if r.score is not None}),
            })  # fmt: skip
        hostile_wall, hostile_reports, _ = grader_seconds(assignment, hostile.parent, 1, Path(scratch) / "outh")
        result["hostile"] = {
            "wall_s": round(hostile_wall, 3),
            "statuses": sorted({t.status for t in hostile_reports[0].tests}),
        }
        result["peak_rss_pool_process_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    if len(result["runs"]) >= 2:
        result["scaling_1_to_2"] = round(result["runs"][0]["total_wall_s"] / result["runs"][1]["total_wall_s"], 2)
    (args.out / f"{args.assignment}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(result)
    (args.out / f"{args.assignment}.md").write_text(table)
    print(json.dumps(result, indent=2))
    print(table)


COLUMNS = (
    ("workers", "workers"), ("total wall s", "total_wall_s"), ("wall s / submission", "per_submission_wall_s"),
    ("overhead s / submission", "overhead_per_submission_s"), ("grader / floor", "ratio_to_floor"),
    ("steady wall s / submission", "steady_wall_per_submission_s"),
    ("steady overhead s / submission", "steady_overhead_per_submission_s"), ("start-up s", "startup_s"),
    ("floor in parallel, wall s", "parallel_floor_wall_s"),
    ("overhead over the parallel floor s / submission", "overhead_over_parallel_floor_s"),
    ("median sandbox peak MB", "median_sandbox_peak_mb"),
)  # fmt: skip


def markdown_table(result: dict[str, Any]) -> str:
    """One row per worker count, with the floor and the run's context in the heading line."""
    lines = [
        f"{result['assignment']}, n = {result['n']}, floor {result['floor_per_submission_s']} s / submission, "
        f"{result['cores']} cores, Python {result['python']}, scaling 1 to 2 workers: {result.get('scaling_1_to_2')}",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for run in result["runs"]:
        lines.append("| " + " | ".join(str(run.get(key)) for _, key in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
