"""Wall time of one batch with the local executor and with a 2-node local Ray cluster, same run.

Usage (from the repository root): .venv/bin/python benchmarks/ray_vs_local.py backprop --n 40
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep the local test cluster on loopback
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from benchmarks.harness import make_submissions  # noqa: E402
from grader.batch.intake import collect  # noqa: E402
from grader.batch.ray_executor import RayExecutor  # noqa: E402
from grader.batch.runner import run_batch  # noqa: E402
from grader.grading.spec import load_assignment  # noqa: E402
from grader.settings import GradeSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("assignment")
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    assignment = load_assignment(REPO / "assignments" / args.assignment)
    settings = GradeSettings(sandbox="bwrap")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "subs"
        folder.mkdir()
        make_submissions(args.assignment, args.n, folder)
        intake = collect([folder], assignment.spec.notebook, Path(scratch) / "x")
        started = time.perf_counter()
        local = run_batch(assignment, intake, Path(scratch) / "local", settings, workers=2)
        local_s = time.perf_counter() - started
        node = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
        cluster = Cluster(initialize_head=True, head_node_args=node)
        cluster.add_node(**node)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        try:
            started = time.perf_counter()
            remote = run_batch(assignment, intake, Path(scratch) / "ray", settings, workers=2, executor=RayExecutor())
            ray_s = time.perf_counter() - started
        finally:
            ray.shutdown()
            cluster.shutdown()
    same = {r.submission.id: r.score for r in local.reports} == {r.submission.id: r.score for r in remote.reports}
    result = {
        "assignment": args.assignment, "n": args.n, "local_2_workers_s": round(local_s, 2),
        "ray_2_nodes_s": round(ray_s, 2), "ray_overhead_per_submission_s": round((ray_s - local_s) / args.n, 3),
        "same_scores": same,
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
