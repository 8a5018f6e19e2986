"""Course-provided image data sets: MNIST-style IDX files (optionally gzipped) and .npz archives.

Imported on both sides of the boundary: in the sandbox by probes that read the read-only data
directory (mounted at /data), and in the grader by hidden tests reading hidden splits.
Only the stdlib and numpy are used; nothing is unpickled.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

SANDBOX_DATA_DIR = Path("/data")
_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 1 << 30


class DatasetError(ValueError):
    """A data file is missing or malformed; the message names the file and what is wrong."""


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), plain or .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(4)
            if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] not in _IDX_DTYPES:
                raise DatasetError(f"{path.name} is not an IDX file (bad magic number)")
            dtype, ndim = np.dtype(_IDX_DTYPES[header[2]]), header[3]
            shape = struct.unpack(f">{ndim}I", stream.read(4 * ndim))
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if size > MAX_IDX_BYTES:
                raise DatasetError(f"{path.name} declares {size} bytes of data, over the 1 GiB cap")
            data = stream.read(size + 1)
    except (OSError, EOFError, struct.error) as exc:
        raise DatasetError(f"{path.name} cannot be read: {exc}") from None
    if len(data) != size:
        raise DatasetError(f"{path.name} holds {len(data)} bytes of data, its header says {size}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_npz(path: Path, keys: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from an .npz archive holding arrays named by ``keys``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DatasetError(f"{path.name} has no array {missing[0]!r} (it has {archive.files})")
            return archive[keys[0]], archive[keys[1]]
    except (OSError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path.name} is not a readable .npz archive: {exc}") from None


def load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (float32 in [0, 1], shape N×1×H×W) and int64 labels of one split.

    Looks for ``<split>.npz`` (arrays ``x``, ``y``), then MNIST's IDX names
    ``<split>-images-idx3-ubyte[.gz]`` and ``<split>-labels-idx1-ubyte[.gz]``.
    """
    npz = directory / f"{split}.npz"
    if npz.exists():
        images, labels = read_npz(npz)
    else:
        found = {}
        for kind, stem in (
            ("images", f"{split}-images-idx3-ubyte"),
            ("labels", f"{split}-labels-idx1-ubyte"),
        ):
            candidates = [directory / stem, directory / f"{stem}.gz"]
            path = next((c for c in candidates if c.exists()), None)
            if path is None:
                raise DatasetError(f"{directory} has neither {split}.npz nor {stem}[.gz]")
            found[kind] = read_idx(path)
        images, labels = found["images"], found["labels"]
    if images.ndim == 3:
        images = images[:, None, :, :]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{split} split: images of shape {images.shape} do not match labels of shape {labels.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return (images.astype(np.float32) / scale), labels.astype(np.int64)
