"""Benchmark: the grader's per-submission overhead over the floor, with 1 and 2 workers.

The floor is the same hidden tests run in one plain process against the same student code: one
pytest session, tests collected once, each submission's cells executed in-process, no sandbox,
no per-submission start-up. The grader side is the real batch path (run_batch: pool, sandbox,
gradebook). With W workers the floor is also measured as W plain processes computing at once,
which is what the machine can give in parallel. A hostile submission is graded too but left out
of the ratio, since it cannot run unsandboxed. Usage (from the repository root):

    .venv/bin/python benchmarks/harness.py backprop --n 40 --repeat 5
    .venv/bin/python benchmarks/harness.py lstm --n 40 --workers 2

Every figure in the tables is the median over the rounds (--repeat); each round measures its own
floor, so a noisy minute moves floor and grader alike. Every batch starts with a cold forkserver,
as the CLI's does (it imports the grader and the preloads afresh), and the pool processes' own
timeline (GRADER_TRACE) gives each worker's first submission and each pool process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
        config.option.tbstyle = "native"  # as the grader formats a failed test (grader/grading/testing.py)
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


def cold_forkserver() -> None:
    """Stop the grading processes' forkserver (after the last batch's pool processes end), so
    that every batch starts as the CLI's does: importing the grader and the preloads afresh."""
    from multiprocessing import forkserver

    server = forkserver._forkserver  # noqa: SLF001 - a benchmark measuring cold starts
    if getattr(server, "_forkserver_pid", None) is not None:
        server._stop()  # noqa: SLF001


def grader_seconds(
    assignment: Any, folder: Path, workers: int, out: Path, trace: Path
) -> tuple[float, list[Any], list[float], dict[int, list[str]]]:
    """Wall time of the real batch path, its reports, when each report arrived (s from start),
    and the pool processes' trace events (GRADER_TRACE, set before any forkserver started)."""
    intake = collect([folder], assignment.spec.notebook, out / "x")
    settings = GradeSettings(sandbox="bwrap")
    arrivals: list[float] = []
    cold_forkserver()
    trace.write_text("")
    started = time.perf_counter()
    summary = run_batch(
        assignment, intake, out, settings, workers=workers, force=True,
        on_report=lambda report, done, total: arrivals.append(time.perf_counter() - started),
    )  # fmt: skip
    wall = time.perf_counter() - started
    cold_forkserver()  # waits for the pool processes to close their boxes and say their peak
    events: dict[int, list[str]] = {}
    for line in trace.read_text().splitlines():
        pid, _, event = line.split(" ", 2)
        events.setdefault(int(pid), []).append(event)
    return wall, summary.reports, arrivals, events


def pool_peak_rss_mb(events: dict[int, list[str]]) -> float | None:
    """The largest peak RSS a pool process reported when it closed ("peak rss 445.6 MB")."""
    peaks = [float(e.split("peak rss ")[1].split()[0]) for seen in events.values() for e in seen if "peak rss" in e]
    return max(peaks) if peaks else None


def steady_state(arrivals: list[float], workers: int, wall: float) -> tuple[float | None, float | None]:
    """Wall s per submission once every worker has finished its first one, and the start-up left.

    total wall = start-up + n x steady wall per submission: the start-up (pool processes, warm
    sandboxes, collecting the tests) is paid once per batch, the steady part per submission.
    """
    if len(arrivals) <= 2 * workers:
        return None, None
    steady = (arrivals[-1] - arrivals[workers - 1]) / (len(arrivals) - workers)
    return steady, wall - steady * len(arrivals)


def import_seconds(modules: list[str], repeat: int = 3) -> float:
    """Median wall time of a bare `python -c "import ..."` of the assignment's preloads: the unit
    the torch start-up target is stated in (issue 20)."""
    import subprocess

    if not modules:
        return 0.0
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import " + ", ".join(modules)], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def first_submission_penalty(reports: list[Any], events: dict[int, list[str]]) -> float | None:
    """Each worker's first submission (from the trace: the first job each pool process started)
    against the correct submissions no worker had first, as medians of grade()'s own wall time
    (resources.wall_s); only correct submissions count on either side, so like meets like."""
    wall = {r.submission.id: r.resources.wall_s for r in reports}
    first_ids = set()
    for seen in events.values():
        jobs = [e.split()[1] for e in seen if e.startswith("grade ") and e.endswith(" start")]
        if jobs:
            first_ids.add(jobs[0])
    firsts = [wall[i] for i in first_ids if i in wall and i.endswith("_correct")]
    later = [w for i, w in wall.items() if i.endswith("_correct") and i not in first_ids]
    if not firsts or not later:
        return None
    return statistics.median(firsts) - statistics.median(later)


def one_run(
    assignment: Any, args: argparse.Namespace, paths: list[Path], folder: Path, scratch: Path, round_: int
) -> list[dict[str, Any]]:
    """One round: the floor, then each worker count (its parallel floor, then the batch)."""
    floor = floor_seconds(assignment, paths)
    runs = []
    for workers in args.workers:
        parallel_floor = parallel_floor_seconds(args.assignment, paths, workers) if workers > 1 else floor
        trace = scratch / "trace.txt"
        wall, reports, arrivals, events = grader_seconds(
            assignment, folder, workers, scratch / f"out{workers}-{round_}", trace
        )
        steady, startup = steady_state(arrivals, workers, wall)
        sandbox_peaks = [r.resources.peak_rss_mb for r in reports if r.resources.peak_rss_mb]
        penalty = first_submission_penalty(reports, events)
        runs.append({
            "workers": workers, "floor_per_submission_s": round(floor / args.n, 4),
            "total_wall_s": round(wall, 3), "per_submission_wall_s": round(wall / args.n, 4),
            "overhead_per_submission_s": round((wall * workers - floor) / args.n, 4),
            "ratio_to_floor": round(wall * workers / floor, 2),
            "steady_wall_per_submission_s": round(steady, 4) if steady is not None else None,
            "steady_overhead_per_submission_s": (
                round(steady * workers - floor / args.n, 4) if steady is not None else None
            ),
            "startup_s": round(startup, 2) if startup is not None else None,
            "first_submission_penalty_s": round(penalty, 3) if penalty is not None else None,
            "parallel_floor_wall_s": round(parallel_floor, 3),
            "overhead_over_parallel_floor_s": round((wall - parallel_floor) * workers / args.n, 4),
            "median_sandbox_peak_mb": round(statistics.median(sandbox_peaks), 1) if sandbox_peaks else None,
            "peak_rss_pool_process_mb": pool_peak_rss_mb(events),
            "scores": sorted({r.score for r in reports if r.score is not None}),
        })  # fmt: skip
    return runs


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over the rounds of one worker count (scores: the union)."""
    merged: dict[str, Any] = {"workers": runs[0]["workers"], "rounds": len(runs)}
    for key, value in runs[0].items():
        if key in ("workers", "scores"):
            continue
        values = [run[key] for run in runs if run[key] is not None]
        if isinstance(value, int | float) or value is None:
            merged[key] = round(statistics.median(values), 4) if values else None
    merged["scores"] = sorted({score for run in runs for score in run["scores"]})
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="rounds (floor and batches); tables give medians")
    parser.add_argument("--no-hostile", action="store_true", help="skip the hostile submission's run")
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
        # Pool processes trace their start, first job and peak memory; read after each batch.
        os.environ["GRADER_TRACE"] = str(Path(scratch) / "trace.txt")
        folder = Path(scratch) / "subs"
        folder.mkdir()
        paths, hostile = make_submissions(args.assignment, args.n, folder)
        import_s = import_seconds(assignment.spec.preload)
        rounds = [one_run(assignment, args, paths, folder, Path(scratch), k) for k in range(args.repeat)]
        by_workers = [[r[i] for r in rounds] for i in range(len(args.workers))]
        result: dict[str, Any] = {
            "assignment": args.assignment, "n": args.n, "repeat": args.repeat,
            "machine": f"{platform.node()} {platform.processor()}", "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "import_preload_s": round(import_s, 3),
            "floor_per_submission_s": round(statistics.median(r[0]["floor_per_submission_s"] for r in rounds), 4),
            "runs": [median_run(runs) for runs in by_workers], "rounds": rounds,
        }  # fmt: skip
        for run in result["runs"]:
            if import_s and run.get("startup_s") is not None:
                run["startup_in_imports"] = round(run["startup_s"] / import_s, 2)
        if not args.no_hostile:
            hostile_wall, hostile_reports, _, _ = grader_seconds(
                assignment, hostile.parent, 1, Path(scratch) / "outh", Path(scratch) / "trace.txt"
            )
            result["hostile"] = {
                "wall_s": round(hostile_wall, 3),
                "statuses": sorted({t.status for t in hostile_reports[0].tests}),
            }
    if len(result["runs"]) >= 2:
        result["scaling_1_to_2"] = round(result["runs"][0]["total_wall_s"] / result["runs"][1]["total_wall_s"], 2)
    (args.out / f"{args.assignment}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(result)
    (args.out / f"{args.assignment}.md").write_text(table)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    print(table)


COLUMNS = (
    ("workers", "workers"), ("total wall s", "total_wall_s"), ("wall s / submission", "per_submission_wall_s"),
    ("overhead s / submission", "overhead_per_submission_s"), ("grader / floor", "ratio_to_floor"),
    ("steady wall s / submission", "steady_wall_per_submission_s"),
    ("steady overhead s / submission", "steady_overhead_per_submission_s"), ("start-up s", "startup_s"),
    ("start-up in imports", "startup_in_imports"), ("first-submission penalty s", "first_submission_penalty_s"),
    ("floor in parallel, wall s", "parallel_floor_wall_s"),
    ("overhead over the parallel floor s / submission", "overhead_over_parallel_floor_s"),
    ("median sandbox peak MB", "median_sandbox_peak_mb"), ("peak RSS of a pool process MB", "peak_rss_pool_process_mb"),
)  # fmt: skip


def markdown_table(result: dict[str, Any]) -> str:
    """One row per worker count, with the floor and the run's context in the heading line."""
    lines = [
        f"{result['assignment']}, n = {result['n']}, medians of {result['repeat']} rounds, floor "
        f"{result['floor_per_submission_s']} s / submission, one import of the preloads "
        f"{result['import_preload_s']} s, {result['cores']} cores, Python {result['python']}, load average "
        f"{result['load_average']}, scaling 1 to 2 workers: {result.get('scaling_1_to_2')}",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for run in result["runs"]:
        lines.append("| " + " | ".join(str(run.get(key)) for _, key in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
