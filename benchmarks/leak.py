"""Memory across many consecutive submissions graded by one warm worker: is there a leak?

Samples the grading process's RSS and the warm worker's (zygote's) RSS at idle every --every
submissions. Grades as a pool process does: one warm zygote and one collected test suite.
Usage: .venv/bin/python benchmarks/leak.py backprop --n 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.harness import make_submissions  # noqa: E402
from grader.grading.pipeline import grade  # noqa: E402
from grader.grading.spec import load_assignment  # noqa: E402
from grader.grading.suite import shared_suites  # noqa: E402
from grader.sandbox.zygote import shared_provider  # noqa: E402
from grader.settings import GradeSettings  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def zygote_pid() -> int | None:
    """The zygote is the grandchild of the bwrap process (bwrap -> sandbox init -> zygote)."""
    zygote = shared_provider().zygote
    if zygote is None:
        return None
    children = Path(f"/proc/{zygote.box.process.pid}/task/{zygote.box.process.pid}/children").read_text().split()
    for init in children:
        grandchildren = Path(f"/proc/{init}/task/{init}/children").read_text().split()
        if grandchildren:
            return int(grandchildren[0])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("assignment")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args()
    assignment = load_assignment(REPO / "assignments" / args.assignment)
    samples = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        paths, _ = make_submissions(args.assignment, 20, folder)
        correct = [p for p in paths if "correct" in p.name]
        suite = shared_suites().get(assignment.hidden_tests_dir)
        for i in range(args.n):
            settings = GradeSettings(sandbox="bwrap")
            report = grade(correct[i % len(correct)], assignment, settings, suites=shared_suites())
            assert report.status == "graded", report.message
            if i % args.every == 0 or i == args.n - 1:
                pid = zygote_pid()
                samples.append({"after": i + 1, "grader_rss_mb": round(rss_mb(__import__("os").getpid()), 1),
                                "zygote_rss_mb": round(rss_mb(pid), 1) if pid else None})  # fmt: skip
    first, last = samples[0], samples[-1]
    result = {
        "assignment": args.assignment, "submissions": args.n, "samples": samples,
        "grader_growth_mb": round(last["grader_rss_mb"] - first["grader_rss_mb"], 1),
        "zygote_growth_mb": None if first["zygote_rss_mb"] is None or last["zygote_rss_mb"] is None
        else round(last["zygote_rss_mb"] - first["zygote_rss_mb"], 1),
        "one_zygote_served_all": bool(shared_provider().zygote and shared_provider().zygote.children >= args.n),
        "one_suite_served_all": shared_suites().get(assignment.hidden_tests_dir) is suite,
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
