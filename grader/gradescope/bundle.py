"""`grader gradescope NAME --out autograder.zip`: the zip Gradescope's autograder takes.

Holds the grader's source (installed by setup.sh where every user can read it), the
assignment's public and hidden files (never its solutions), setup.sh and run_autograder.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from grader.errors import UsageError
from grader.grading.spec import Assignment

GRADER_ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout or site-packages holding grader/
SKIPPED_PARTS = ("__pycache__", ".ipynb_checkpoints")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")" && pwd)
venv=${{GRADESCOPE_GRADER_VENV:-/opt/dl-grader}}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
python=python3
# The grader needs Python 3.11 or newer; Ubuntu 22.04's python3 is 3.10, and its python3.11 works.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  python=python3.11
fi
# bubblewrap where apt has it; inside Gradescope's container it may still refuse to run, and
# run_autograder then chooses the uid sandbox explicitly.
apt-get install -y -qq bubblewrap >/dev/null || echo "setup: bubblewrap not available; the uid sandbox will be used"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
{torch_line}
"$venv/bin/python" -m pip install -q "$source_dir/grader-src"
chmod -R a+rX "$venv"
# The user student code runs as in the uid sandbox; no home, no shell, no password.
id grader-student >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin grader-student
# The hidden tests and the bundle: root only, so the student's user can read none of it.
chown -R root:root "$source_dir"
chmod -R go-rwx "$source_dir"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission, as root. The sandbox is chosen here, explicitly:
# bubblewrap where it works, else the uid sandbox (a separate unprivileged user).
set -euo pipefail
root=${{GRADESCOPE_ROOT:-/autograder}}
venv=${{GRADESCOPE_GRADER_VENV:-/opt/dl-grader}}
exec "$venv/bin/grader" gradescope-run {name} --root "$root" --sandbox "${{GRADER_SANDBOX:-bwrap,uid}}"
"""


def _add_tree(archive: zipfile.ZipFile, folder: Path, arcname: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part in SKIPPED_PARTS for part in path.parts):
            archive.write(path, f"{arcname}/{path.relative_to(folder)}")


def _add_script(archive: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    archive.writestr(info, text)


def build_bundle(assignment: Assignment, out_zip: Path) -> Path:
    """Write the autograder zip for ``assignment``; returns its path."""
    if not (GRADER_ROOT / "pyproject.toml").is_file():
        raise UsageError(f"the grader's source (pyproject.toml) is not next to {GRADER_ROOT / 'grader'}")
    name = assignment.spec.name
    course_root = assignment.assignment_dir.parent.parent
    # The CPU build: PyPI's default torch for Linux pulls several GB of CUDA libraries.
    torch_index = "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
    torch = f'"$venv/bin/python" -m pip install -q --index-url "{torch_index}" "torch==2.13.0"'
    torch = torch if "torch" in assignment.spec.preload else ""
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        _add_script(archive, "setup.sh", SETUP_SH.format(torch_line=torch))
        _add_script(archive, "run_autograder", RUN_AUTOGRADER.format(name=name))
        archive.write(GRADER_ROOT / "pyproject.toml", "grader-src/pyproject.toml")
        archive.write(GRADER_ROOT / "cli.py", "grader-src/cli.py")
        archive.write(GRADER_ROOT / "README.md", "grader-src/README.md")
        _add_tree(archive, GRADER_ROOT / "grader", "grader-src/grader")
        _add_tree(archive, assignment.assignment_dir, f"course/assignments/{name}")
        _add_tree(archive, assignment.hidden_tests_dir, f"course/autograde_tests/{name}")
        if assignment.data_dir is not None and not assignment.data_dir.is_relative_to(assignment.assignment_dir):
            _add_tree(archive, assignment.data_dir, f"course/{assignment.data_dir.relative_to(course_root)}")
    return out_zip
