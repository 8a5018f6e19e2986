"""Running inside Gradescope (issue 16): the bundle, and run_autograder's flow in a simulated layout.

The container is simulated by a temporary root with Gradescope's folders (source, submission,
results), the bundle unpacked into source/ with setup.sh's permissions applied (root-only), and
`grader gradescope-run` pointed at it. Both sandbox modes run for real: bubblewrap, and the uid
sandbox (a separate unprivileged uid; the test runs as root, so the switch is real).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from grader.gradescope.bundle import build_bundle
from grader.gradescope.layout import Layout
from grader.gradescope.run import run_gradescope
from grader.grading.spec import load_assignment
from grader.sandbox.hostuid import readable_by_others
from grader.sandbox.uidbox import STUDENT_UID_ENV
from tests.conftest import write_notebook

STUDENT_UID = 1_999_000_123  # no account; only used as a numeric uid
SECRET = "gradescope-api-key-8c1d77"

HIDDEN = """
from grader.testing import points, expect_scalar

@points(5)
def test_add(submission):
    assert expect_scalar(submission.add(2, 3), "add") == 5, "add(2, 3) is wrong"

@points(5, visible=False)
def test_add_hidden(submission):
    assert expect_scalar(submission.add(40, 2), "add") == 42, "add is wrong on the hidden case 40 + 2"

@points(1)
def test_attack(submission):
    found = submission.attack()
    assert isinstance(found, list), "attack() returned no list"
    assert found == [], "; ".join(str(f) for f in found)[:500]
"""

HONEST = "def add(a, b):\n    return a + b\n\ndef attack():\n    return []\n"
WRONG = "def add(a, b):\n    return a - b\n\ndef attack():\n    return []\n"

# Tries the three things the issue names; returns what it managed.
HOSTILE = (
    "import os, glob, json\n\n"
    "def add(a, b):\n    return a + b\n\n"
    "def attack():\n"
    "    found = []\n"
    "    root = os.environ.get('GRADESCOPE_ROOT_GUESS', '/autograder')\n"
    "    for guess in [root, '/autograder']:\n"
    "        for path in glob.glob(guess + '/source/**/*.py', recursive=True):\n"
    "            try:\n"
    "                found.append('read ' + path + ': ' + open(path).read(40))\n"
    "            except OSError:\n"
    "                pass\n"
    "        try:\n"
    "            with open(guess + '/results/results.json', 'w') as f:\n"
    "                json.dump({'score': 1000}, f)\n"
    "            found.append('wrote results.json')\n"
    "        except OSError:\n"
    "            pass\n"
    "    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
    "        try:\n"
    "            if SECRET.encode() in open(f'/proc/{pid}/environ', 'rb').read():\n"
    "                found.append('environ of ' + pid)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return found\n"
)


@pytest.fixture
def gradescope_root() -> Iterator[Path]:
    """Gradescope's /autograder, in a folder every user can reach (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="gradescope-root-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def _course(make_course) -> Path:
    course = make_course(HIDDEN, call_timeout_s=20)
    write_notebook(course / "solutions" / "toy" / "toy.ipynb", HONEST)
    return course


def _install(bundle: Path, root: Path) -> Layout:
    """What Gradescope does with the zip, and the permissions setup.sh gives the source folder."""
    layout = Layout(root)
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(layout.source)
    subprocess.run(["chmod", "-R", "go-rwx", str(layout.source)], check=True)
    layout.submission.mkdir()
    layout.submission.chmod(0o755)
    return layout


def _bundle(course: Path, tmp_path: Path) -> Path:
    return build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "autograder.zip")


def _submit(layout: Layout, source: str) -> None:
    for old in layout.submission.iterdir():
        old.unlink()
    write_notebook(layout.submission / "toy.ipynb", source.replace("SECRET", repr(SECRET)))


def test_the_bundle_holds_what_gradescope_needs_and_no_solution(make_course, tmp_path):
    course = _course(make_course)
    bundle = build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "autograder.zip")
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        texts = {name: archive.read(name) for name in names}
    assert {"setup.sh", "run_autograder", "grader-src/pyproject.toml", "grader-src/cli.py"} <= set(names)
    assert "course/autograde_tests/toy/test_toy.py" in names
    assert "course/assignments/toy/assignment.toml" in names
    assert "grader-src/grader/inside/worker.py" in names
    assert not [n for n in names if "solutions" in n or "SECRET_SOLUTION" in n]
    assert not [n for n, data in texts.items() if b"the answer is 42" in data]
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    for script in ("setup.sh", "run_autograder"):  # setup.sh needs apt and a fresh image: its syntax here
        (tmp_path / script).write_bytes(texts[script])
        assert subprocess.run(["bash", "-n", str(tmp_path / script)]).returncode == 0
    setup = texts["setup.sh"].decode()
    assert "useradd --system" in setup and 'chmod -R go-rwx "$source_dir"' in setup
    assert "torch" not in setup  # the toy assignment preloads numpy only


def test_the_cli_writes_the_bundle(make_course, tmp_path):
    course = _course(make_course)
    result = CliRunner().invoke(
        cli.main, ["gradescope", "toy", "--course", str(course), "--out", str(tmp_path / "a.zip")]
    )
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / "a.zip")


def _require_readable_python() -> None:
    """The uid sandbox runs the grader's Python as another user: it must be readable by others.

    scripts/setup builds .venv from /usr/bin/python3 for this; a checkout inside a private folder
    (a 0700 home) cannot offer it, and the uid mode then refuses to start (tested below).
    """
    if not readable_by_others(Path(sys.executable)):
        pytest.skip(f"{sys.executable} is not readable by other users, so no uid sandbox can run it here")


@pytest.mark.parametrize("mode", ["bwrap", "uid"])
def test_run_autograder_grades_honest_wrong_and_hostile_submissions(
    mode, make_course, tmp_path, gradescope_root, sandbox_mode, monkeypatch
):
    if mode == "uid":
        _require_readable_python()
        monkeypatch.setenv(STUDENT_UID_ENV, str(STUDENT_UID))
    monkeypatch.setenv("GRADER_TA_TOKEN", SECRET)
    course = _course(make_course)
    layout = _install(
        build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "a.zip"), gradescope_root
    )

    scores = {}
    for name, source in {"honest": HONEST, "wrong": WRONG, "hostile": HOSTILE}.items():
        _submit(layout, source.replace("GRADESCOPE_ROOT_GUESS", str(gradescope_root)))
        run = run_gradescope(layout, "toy", [mode])
        assert run is not None and run.sandbox == mode
        results = json.loads(layout.results_json.read_text())
        assert results == run.results, "results.json is exactly what the grader wrote"
        attack = next(t for t in run.report.tests if t.name == "test_attack")
        assert attack.status == "passed", f"{name}: {attack.message}"
        scores[name] = results["score"]
        hidden = next(t for t in results["tests"] if t["name"] == "test_add_hidden")
        assert "40 + 2" not in json.dumps(results), "a hidden test's message reached results.json"
        assert hidden["max_score"] == 5
        assert results["stdout_visibility"] == "hidden"
    assert scores == {"honest": 11, "wrong": 1, "hostile": 11}
    assert not os.stat(layout.results).st_mode & 0o077


def test_no_working_sandbox_writes_no_results(make_course, tmp_path, gradescope_root, monkeypatch):
    # A grader failure is never a student's zero: without a sandbox, no results.json at all, so
    # Gradescope shows the autograder as failed and staff rerun it.
    monkeypatch.setenv(STUDENT_UID_ENV, "0")  # not an unprivileged uid: the uid mode refuses
    course = _course(make_course)
    layout = _install(
        build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "a.zip"), gradescope_root
    )
    _submit(layout, HONEST)
    result = CliRunner().invoke(cli.main, ["gradescope-run", "toy", "--root", str(gradescope_root), "--sandbox", "uid"])
    assert result.exit_code == 4, result.output
    assert "not the student's fault" in result.output and "is not an unprivileged uid" in result.output
    assert not layout.results_json.exists()


def test_an_upload_without_a_notebook_is_the_students_to_fix(make_course, tmp_path, gradescope_root):
    course = _course(make_course)
    layout = _install(
        build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "a.zip"), gradescope_root
    )
    (layout.submission / "notes.txt").write_text("forgot the notebook")
    assert run_gradescope(layout, "toy", ["bwrap"]) is None
    results = json.loads(layout.results_json.read_text())
    assert results["score"] == 0.0
    assert results["output"] == "upload exactly one notebook, ideally named toy.ipynb; found: no notebook or .py file"


def test_the_uid_sandbox_refuses_hidden_tests_other_users_can_read(make_course, tmp_path, gradescope_root, monkeypatch):
    monkeypatch.setenv(STUDENT_UID_ENV, str(STUDENT_UID))
    course = _course(make_course)
    layout = _install(
        build_bundle(load_assignment(course / "assignments" / "toy"), tmp_path / "a.zip"), gradescope_root
    )
    subprocess.run(["chmod", "-R", "a+rX", str(layout.source)], check=True)  # setup.sh's chmod forgotten
    _submit(layout, HONEST)
    result = CliRunner().invoke(cli.main, ["gradescope-run", "toy", "--root", str(gradescope_root), "--sandbox", "uid"])
    assert result.exit_code == 4, result.output
    assert "is readable by other users, so student code running as uid" in " ".join(result.output.split())
    assert not layout.results_json.exists()


def test_a_submission_that_links_to_the_hidden_tests_is_not_read(make_course, tmp_path, gradescope_root):
    # The grader reads the upload as root: a link must never be followed (review finding).
    course = _course(make_course)
    layout = _install(_bundle(course, tmp_path), gradescope_root)
    hidden = layout.course / "autograde_tests" / "toy" / "test_toy.py"
    (layout.submission / "toy.ipynb").symlink_to(hidden)
    assert run_gradescope(layout, "toy", ["bwrap"]) is None
    results = json.loads(layout.results_json.read_text())
    assert results["score"] == 0.0 and "found: no notebook or .py file" in results["output"]
    assert "points" not in layout.results_json.read_text()
