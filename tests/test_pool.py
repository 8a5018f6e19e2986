"""Grading processes: forked from a preloaded forkserver, with a way back to spawn (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

HIDDEN = """
from grader.testing import points

@points(1)
def test_double(submission):
    assert submission.double(2) == 4, "double(2) should be 4"
"""


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_forkserver_preload_survives_a_module_that_raises(tmp_path: Path) -> None:
    # multiprocessing's own preload only forgives ImportError: a ValueError at import (a torch
    # with broken CUDA libraries raises OSError) would take the forkserver and the batch down.
    (tmp_path / "raises_at_import.py").write_text("raise ValueError('broken install')\n")
    done = _python(
        "import sys, grader.batch.pool_preload\nprint('json' in sys.modules, 'raises_at_import' in sys.modules)",
        tmp_path, GRADER_POOL_PRELOAD="raises_at_import,json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_a_forkserver_with_python_threads_refuses_to_serve(tmp_path: Path) -> None:
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
    )
    done = _python("import grader.batch.pool_preload\nprint('served')", tmp_path, GRADER_POOL_PRELOAD="starts_a_thread")
    assert done.returncode == 1 and "served" not in done.stdout


def test_importing_the_preload_module_outside_the_forkserver_does_nothing(tmp_path: Path) -> None:
    # It once ended any process with threads that imported it (the test suite, after a zygote
    # had been started in it): its work is only for a process started with GRADER_POOL_PRELOAD.
    code = (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "import grader.batch.pool_preload\nprint('still here')"
    )
    environment = {k: v for k, v in os.environ.items() if k != "GRADER_POOL_PRELOAD"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**environment, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "still here", done.stderr


BROKEN_FORKSERVER_BATCH = """
import json, multiprocessing, sys
from multiprocessing import forkserver
from pathlib import Path
from grader.batch import executors
from grader.batch.executors import Job, LocalExecutor
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

def broken_context(assignment):
    # A forkserver whose preload ends the process: every pool.submit finds no one to fork.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["exits_at_import"])
    forkserver.ensure_running()
    return context

if __name__ == "__main__":
    executors.pool_context = broken_context
    course, submission = Path(sys.argv[1]), Path(sys.argv[2])
    assignment = load_assignment(course / "assignments" / "toy")
    jobs = [Job(f"s{i}", submission) for i in range(3)]
    results = LocalExecutor(2).run(jobs, assignment, GradeSettings(sandbox="bwrap"))
    print(json.dumps({job.student_id: json.loads(report)["score"] for job, report in results}))
"""


def test_a_batch_falls_back_to_spawned_processes_when_the_forkserver_is_gone(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    (tmp_path / "exits_at_import.py").write_text("import os\nos._exit(3)\n")
    submission = tmp_path / "s.py"
    submission.write_text("def double(x):\n    return 2 * x\n")
    script = tmp_path / "batch.py"
    script.write_text(BROKEN_FORKSERVER_BATCH)
    environment = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    done = subprocess.run([sys.executable, str(script), str(course), str(submission)], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"s0": 1.0, "s1": 1.0, "s2": 1.0}  # any order
