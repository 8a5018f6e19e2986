"""Hostile submissions against the real bubblewrap sandbox.

Every attack is bounded in the submission itself (loop counts, sizes, timeouts), so that even a
broken sandbox could not hurt the machine running these tests.
"""

from __future__ import annotations

import socket
from pathlib import Path

from grader.grading.pipeline import grade
from grader.grading.report import SubmissionReport
from grader.grading.spec import load_assignment
from grader.settings import GradeSettings

HIDDEN = """
import numpy as np
from grader.testing import points, assert_close, expect_array

@points(10)
def test_double(submission):
    assert_close(submission.double(np.arange(4.0)), np.arange(4.0) * 2, "double(x)")

@points(10)
def test_attack(submission):
    submission.attack()

@points(10)
def test_double_again(submission):
    assert_close(submission.double(np.ones(3)), np.full(3, 2.0), "double(ones)")
"""

HONEST = "def double(x):\n    return x * 2\n"


def grade_source(course: Path, tmp_path: Path, source: str, sandbox: str) -> SubmissionReport:
    path = tmp_path / "attacker.py"
    path.write_text(HONEST + source)
    return grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox))


def statuses(report: SubmissionReport) -> dict[str, str]:
    return {t.name: t.status for t in report.tests}


def assert_honest_rest(report: SubmissionReport) -> None:
    """The attack costs its own test; the honest tests around it still score."""
    assert report.status == "graded", report.message
    assert statuses(report)["test_double"] == "passed"
    assert statuses(report)["test_double_again"] == "passed"
    attack = next(t for t in report.tests if t.name == "test_attack")
    assert report.score == 20 + attack.score


def test_infinite_loop_times_out_one_test(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, call_timeout_s=1.5)
    report = grade_source(course, tmp_path, "def attack():\n    while True:\n        pass\n", sandbox_mode)
    assert_honest_rest(report)
    attack = next(t for t in report.tests if t.name == "test_attack")
    assert attack.status == "timeout"
    assert attack.message == "took longer than the time limit per call of 1.5 s and was stopped"


def test_memory_bomb_is_status_memory(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, memory_mb=256)
    bomb = (
        "import numpy as np\n"
        "def attack():\n"
        "    hoard = []\n"
        "    for _ in range(40):  # at most 4 GB even without a sandbox\n"
        "        hoard.append(np.ones(12_500_000))\n"
        "    return len(hoard)\n"
    )
    report = grade_source(course, tmp_path, bomb, sandbox_mode)
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "memory"
    assert "256 MB" in next(t.message for t in report.tests if t.name == "test_attack")


def _marker_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_bounded_fork_storm_is_capped_and_cleaned_up(make_course, tmp_path, sandbox_mode):
    hidden = HIDDEN.replace("submission.attack()", "assert submission.attack() < 16, 'no process cap'")
    course = make_course(hidden)
    storm = (
        "import os, time\n"
        "def attack():\n"
        "    children = 0\n"
        "    for _ in range(200):  # bounded even without a sandbox\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError:\n"
        "            break\n"
        "        if pid == 0:\n"
        "            os.execv('/bin/sleep', ['fork-storm-marker', '30'])\n"
        "        children += 1\n"
        "    return children\n"
    )
    report = grade_source(course, tmp_path, storm, sandbox_mode)
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "passed", report.tests[1].message  # forks up to the cap
    assert _marker_processes("fork-storm-marker") == [], "children outlived their sandbox"


def test_network_connect_to_host_listener_never_arrives(make_course, tmp_path, sandbox_mode):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    course = make_course(HIDDEN)
    attack = (
        "import socket\n"
        "def attack():\n"
        "    s = socket.socket()\n"
        "    s.settimeout(1)\n"
        f"    s.connect(('127.0.0.1', {port}))\n"
    )
    try:
        report = grade_source(course, tmp_path, attack, sandbox_mode)
        try:
            connection, _ = listener.accept()
            connection.close()
            arrived = True
        except TimeoutError:
            arrived = False
    finally:
        listener.close()
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "error"
    assert not arrived, "a connection from the sandbox reached the host"


def test_hidden_tests_and_solutions_are_invisible(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    targets = [
        course / "autograde_tests" / "toy" / "test_toy.py",
        course / "solutions" / "toy" / "SECRET_SOLUTION.txt",
        Path("autograde_tests/toy/test_toy.py"),
        Path("../autograde_tests/toy/test_toy.py"),
        Path("solutions/toy/SECRET_SOLUTION.txt"),
        Path("/opt/grader/autograde_tests"),
    ]
    attack = (
        "import os\n"
        f"TARGETS = {[str(t) for t in targets]!r}\n"
        "def attack():\n"
        "    found = [t for t in TARGETS if os.path.exists(t)]\n"
        "    seen = 0\n"
        "    for root, dirs, files in os.walk('/'):\n"
        "        dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]\n"
        "        seen += 1\n"
        "        if seen > 20000:  # bounded walk\n"
        "            break\n"
        "        found += [os.path.join(root, f) for f in files\n"
        "                  if f in ('test_toy.py', 'SECRET_SOLUTION.txt')]\n"
        "    if found:\n"
        "        raise RuntimeError('FOUND ' + repr(found))\n"
    )
    report = grade_source(course, tmp_path, attack, sandbox_mode)
    assert_honest_rest(report)
    attack_result = next(t for t in report.tests if t.name == "test_attack")
    assert attack_result.status == "passed", attack_result.message


def test_os_exit_mid_test_crashes_that_test_only(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    report = grade_source(course, tmp_path, "import os\ndef attack():\n    os._exit(0)\n", sandbox_mode)
    assert_honest_rest(report)
    attack = next(t for t in report.tests if t.name == "test_attack")
    assert attack.status == "crashed"
    assert "os._exit" in attack.message


def test_sys_exit_and_keyboard_interrupt_at_import_are_cell_errors(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    path = tmp_path / "exits.py"
    path.write_text(
        "# %%\nimport sys\nsys.exit(0)\n"
        "# %%\nraise KeyboardInterrupt\n"
        "# %%\ndef double(x):\n    return x * 2\n"
        "# %%\ndef attack():\n    return None\n"
    )
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert report.status == "graded"
    assert report.score == 30
    assert [c.ok for c in report.cells] == [False, False, True, True]
    assert report.cells[0].message.startswith("SystemExit")
    assert report.cells[1].message.startswith("KeyboardInterrupt")


def test_object_with_eq_always_true_is_invalid(make_course, tmp_path, sandbox_mode):
    hidden = HIDDEN.replace("submission.attack()", "assert submission.attack() == 42, 'wrong'")
    course = make_course(hidden)
    attack = "class Liar:\n    def __eq__(self, other):\n        return True\n\ndef attack():\n    return Liar()\n"
    report = grade_source(course, tmp_path, attack, sandbox_mode)
    assert_honest_rest(report)
    result = next(t for t in report.tests if t.name == "test_attack")
    assert result.status == "invalid"
    assert "type submission.Liar cannot be returned" in result.message


def test_numpy_subclass_is_invalid(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    attack = (
        "import numpy as np\n"
        "class Lying(np.ndarray):\n"
        "    def __eq__(self, other):\n"
        "        return np.ones(1, bool)\n"
        "def double(x):\n"
        "    return (x * 2).view(Lying)\n"
        "def attack():\n"
        "    return None\n"
    )
    path = tmp_path / "subclass.py"
    path.write_text(attack)
    report = grade(path, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert report.status == "graded"
    assert statuses(report)["test_double"] == "invalid"
    assert "submission.Lying" in report.tests[0].message
    assert report.score == 10


def test_two_gigabyte_stdout_flood_is_cut(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN, call_timeout_s=30)
    flood = (
        "import os, sys\n"
        "CHUNK = 'x' * (1 << 20)\n"
        "def attack():\n"
        "    for _ in range(1024):  # 1 GiB through print\n"
        "        print(CHUNK)\n"
        "    data = CHUNK.encode()\n"
        "    for _ in range(1024):  # 1 GiB straight to the file descriptor\n"
        "        os.write(1, data)\n"
    )
    report = grade_source(course, tmp_path, flood, sandbox_mode)
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "passed"
    assert len(report.output) <= 20_000
    assert any("output was cut at the limit of 10000 bytes" in w for w in report.warnings)


def test_writes_outside_scratch_change_nothing(make_course, tmp_path, sandbox_mode):
    course = make_course(HIDDEN)
    victims = [
        course / "autograde_tests" / "toy" / "test_toy.py",
        course / "planted.txt",
        tmp_path / "planted.txt",
        Path("/usr/planted-by-student.txt"),
        Path("/opt/grader/grader/planted.py"),
    ]
    before = (course / "autograde_tests" / "toy" / "test_toy.py").read_bytes()
    attack = (
        f"VICTIMS = {[str(v) for v in victims]!r}\n"
        "def attack():\n"
        "    written = []\n"
        "    for path in VICTIMS:\n"
        "        try:\n"
        "            with open(path, 'w') as f:\n"
        "                f.write('pwned')\n"
        "            written.append(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    with open('/tmp/scratch-ok.txt', 'w') as f:  # the scratch dir is writable\n"
        "        f.write('fine')\n"
        "    return written\n"
    )
    report = grade_source(course, tmp_path, attack, sandbox_mode)
    assert_honest_rest(report)
    assert (course / "autograde_tests" / "toy" / "test_toy.py").read_bytes() == before
    for victim in victims[1:]:
        assert not victim.exists(), f"{victim} was written from inside the sandbox"


def test_environment_holds_no_secrets(make_course, tmp_path, sandbox_mode, monkeypatch):
    monkeypatch.setenv("GRADER_TEST_SECRET", "hunter2")
    hidden = HIDDEN.replace(
        "submission.attack()",
        "env = submission.attack()\n    assert 'GRADER_TEST_SECRET' not in env, 'secret leaked'\n"
        "    assert env['USER'] == 'student', 'wrong user'",
    )
    course = make_course(hidden)
    report = grade_source(course, tmp_path, "import os\ndef attack():\n    return dict(os.environ)\n", sandbox_mode)
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "passed"


def test_scratch_is_private_to_each_submission(make_course, tmp_path, sandbox_mode):
    hidden = HIDDEN.replace("submission.attack()", "assert submission.attack() is False, 'scratch leaked'")
    course = make_course(hidden)
    attack = (
        "import os\n"
        "def attack():\n"
        "    seen = os.path.exists('/tmp/left-behind.txt')\n"
        "    with open('/tmp/left-behind.txt', 'w') as f:\n"
        "        f.write('from an earlier student')\n"
        "    return seen\n"
    )
    first = grade_source(course, tmp_path, attack, sandbox_mode)
    second = grade_source(course, tmp_path, attack, sandbox_mode)
    assert first.score == second.score == 30


def test_sandbox_runs_as_unprivileged_user_without_capabilities(make_course, tmp_path, sandbox_mode):
    hidden = HIDDEN.replace(
        "submission.attack()",
        "uid, caps = submission.attack()\n    assert uid != 0, 'root'\n    assert caps == '0000000000000000', caps",
    )
    course = make_course(hidden)
    attack = (
        "import os\n"
        "def attack():\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    caps = [line.split()[1] for line in status if line.startswith('CapEff')][0]\n"
        "    return os.getuid(), caps\n"
    )
    report = grade_source(course, tmp_path, attack, sandbox_mode)
    assert_honest_rest(report)
    assert statuses(report)["test_attack"] == "passed", report.tests[1].message
