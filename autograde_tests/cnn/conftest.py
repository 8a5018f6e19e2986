"""Trusted helpers for the cnn hidden tests: the digits split, whose test labels never leave here."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pytest

HELD_OUT_SIZE = 450


class DigitsSplit(NamedTuple):
    """A stratified split of scikit-learn's 8x8 digits as float32 (N, 1, 8, 8) in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    # Imported here so that collecting the tests does not pay for scikit-learn.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return x, labels.astype(np.int64)


@lru_cache(maxsize=4)
def _split(seed: int) -> DigitsSplit:
    from sklearn.model_selection import train_test_split

    x, y = _all_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=HELD_OUT_SIZE, stratify=y, random_state=seed)
    arrays = [np.ascontiguousarray(a) for a in (x_train, y_train, x_test, y_test)]
    for array in arrays:
        array.flags.writeable = False  # cached for every submission this grading process grades
    return DigitsSplit(*arrays)


@pytest.fixture
def digits_split(grading_seed: int) -> DigitsSplit:
    """1347 training and 450 held-out digits, split by the grading seed (calibration varies it)."""
    return _split(grading_seed)
