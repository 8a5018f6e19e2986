"""The Ray executor on Ray's own two-node test cluster: same reports, lost nodes, GPU placement."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from grader.batch.intake import collect
from grader.batch.runner import run_batch
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

# Loopback only: Ray would otherwise bind its test cluster to the machine's network address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install '.[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from grader.batch.ray_executor import RayExecutor  # noqa: E402
from tests.test_batch import CORRECT, HIDDEN, HOSTILE, WRONG, comparable  # noqa: E402

pytestmark = pytest.mark.slow
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def mixed_inbox(folder: Path, count: int = 20) -> Path:
    inbox = folder / "inbox"
    inbox.mkdir()
    sources = [CORRECT, WRONG, *HOSTILE.values()]
    for i in range(count - 1):
        (inbox / f"s{i:02d}.py").write_text(sources[i % len(sources)])
    (inbox / "garbled.ipynb").write_text("{")
    return inbox


def test_ray_batch_gives_the_same_reports_as_the_local_executor(make_course, tmp_path, sandbox_mode, cluster):
    cluster.add_node(**NODE)
    course = make_course(HIDDEN, call_timeout_s=1.0)
    assignment = load_assignment(course / "assignments" / "toy")
    intake = collect([mixed_inbox(tmp_path)], "toy.ipynb", tmp_path / "x")
    settings = GradeSettings(sandbox=sandbox_mode)
    executor = RayExecutor()
    remote = run_batch(assignment, intake, tmp_path / "ray", settings, workers=2, executor=executor)
    local = run_batch(assignment, intake, tmp_path / "local", settings, workers=2)
    assert remote.graded == local.graded == 19 and remote.invalid == local.invalid == 1
    assert {r.submission.id: comparable(r) for r in remote.reports} == {
        r.submission.id: comparable(r) for r in local.reports
    }
    assert len(set(executor.placements.values())) == 2, "both nodes should have graded something"


def test_killing_a_node_mid_batch_loses_nothing(make_course, tmp_path, sandbox_mode, cluster):
    worker = cluster.add_node(**NODE)
    course = make_course(HIDDEN)
    assignment = load_assignment(course / "assignments" / "toy")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    slow = CORRECT.replace("return x * 2", "import time\n    time.sleep(1.5)\n    return x * 2")
    for i in range(8):
        (inbox / f"s{i}.py").write_text(slow)
    intake = collect([inbox], "toy.ipynb", tmp_path / "x")
    killer = threading.Timer(3.0, lambda: cluster.remove_node(worker, allow_graceful=False))
    killer.start()
    try:
        summary = run_batch(assignment, intake, tmp_path / "out", GradeSettings(sandbox=sandbox_mode), workers=2,
                            executor=RayExecutor())  # fmt: skip
    finally:
        killer.join()
    assert sorted(r.submission.id for r in summary.reports) == [f"s{i}" for i in range(8)]
    assert summary.graded == 8, [r.message for r in summary.reports if r.status != "graded"]
    assert {r.score for r in summary.reports} == {10.0}


def test_gpu_submissions_are_placed_only_on_a_node_with_a_gpu(make_course, tmp_path, sandbox_mode, cluster):
    gpu_node = cluster.add_node(num_gpus=1, **NODE)  # declared, not real: this tests placement
    course = make_course(HIDDEN)
    spec = course / "assignments" / "toy" / "assignment.toml"
    text = spec.read_text().replace('preload = ["numpy"]', 'gpu = "optional"\npreload = ["numpy", "torch"]')
    text = text.replace('forbidden_imports = ["torch"]', "forbidden_imports = []")
    spec.write_text(text.replace("memory_mb = 512", "memory_mb = 1024"))
    assignment = load_assignment(course / "assignments" / "toy")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(4):
        (inbox / f"g{i}.py").write_text(CORRECT)
    executor = RayExecutor()
    started = time.monotonic()
    summary = run_batch(assignment, collect([inbox], "toy.ipynb", tmp_path / "x"), tmp_path / "out",
                        GradeSettings(sandbox=sandbox_mode), workers=2, executor=executor)  # fmt: skip
    assert time.monotonic() - started < 300
    assert summary.graded == 4
    assert set(executor.placements.values()) == {gpu_node.node_id}


def test_folders_of_dead_ray_workers_are_swept(tmp_path):
    # A worker killed with SIGKILL runs no atexit: its unpacked course (hidden tests included)
    # would stay in /tmp. The next task on the node removes every folder whose process is gone.
    import subprocess

    from grader.batch.ray_executor import sweep_dead_scratch

    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    (tmp_path / f"course-{dead.pid}-abc" / "autograde_tests").mkdir(parents=True)
    (tmp_path / f"task-{dead.pid}-def").mkdir()
    live = tmp_path / f"course-{os.getpid()}-ghi"
    live.mkdir()
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    assert sweep_dead_scratch(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "notes"])


def test_a_scratch_root_made_by_someone_else_is_refused(tmp_path, monkeypatch):
    import tempfile

    import pytest

    from grader.batch.ray_executor import scratch_root
    from grader.errors import SandboxFailure

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    squatted = tmp_path / f"grader-ray-{os.getuid()}"
    squatted.mkdir(mode=0o777)
    squatted.chmod(0o777)
    with pytest.raises(SandboxFailure, match="is not a private folder of this user"):
        scratch_root()
    squatted.chmod(0o700)
    assert scratch_root() == squatted
