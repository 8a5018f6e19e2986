"""The course data loader (IDX and .npz) and the read-only /data mount."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from grader.grading.pipeline import grade
from grader.grading.spec import load_assignment
from grader.inside.datasets import DatasetError, load_split, read_idx
from grader.settings import GradeSettings


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def mnist_like(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6).astype(np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", images, compress=True)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return folder, images, labels


def test_idx_split_loads_scaled_with_channel_axis(mnist_like):
    folder, images, labels = mnist_like
    x, y = load_split(folder, "train")
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels.astype(np.int64))


def test_npz_split_is_preferred(tmp_path):
    np.savez(tmp_path / "test.npz", x=np.ones((3, 1, 8, 8), np.float32), y=np.arange(3))
    x, y = load_split(tmp_path, "test")
    assert x.shape == (3, 1, 8, 8) and list(y) == [0, 1, 2]


def test_truncated_idx_is_a_clear_error(tmp_path):
    path = write_idx(tmp_path / "x-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="holds 13 bytes of data, its header says 16"):
        read_idx(path)


def test_missing_split_names_the_files(tmp_path):
    with pytest.raises(DatasetError, match="has neither valid.npz nor valid-images-idx3-ubyte"):
        load_split(tmp_path, "valid")


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.array([object()]), y=np.arange(1))
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_split(tmp_path, "train")


HIDDEN = """
from grader.testing import points, expect_scalar

@points(1)
def test_reads_data(submission):
    assert expect_scalar(submission.count(), "count()") == 6, "wrong count"

@points(1)
def test_data_is_read_only(submission):
    assert submission.try_write() is False, "data dir writable"
"""


def test_data_dir_is_mounted_read_only(make_course, tmp_path, mnist_like, sandbox_mode):
    folder, _, _ = mnist_like
    course = make_course(HIDDEN)
    data = course / "data" / "toy"
    data.mkdir(parents=True)
    for file in folder.iterdir():
        (data / file.name).write_bytes(file.read_bytes())
    spec = course / "assignments" / "toy" / "assignment.toml"
    spec.write_text('data_dir = "data/toy"\n' + spec.read_text())
    student = tmp_path / "student.py"
    student.write_text(
        "from pathlib import Path\n"
        "from grader.inside.datasets import load_split\n"
        "def count():\n"
        "    return len(load_split(Path('/data'), 'train')[1])\n"
        "def try_write():\n"
        "    try:\n"
        "        Path('/data/planted').write_text('x')\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
    )
    report = grade(student, load_assignment(course / "assignments" / "toy"), GradeSettings(sandbox=sandbox_mode))
    assert [t.status for t in report.tests] == ["passed", "passed"], report.tests
    assert not (data / "planted").exists()
