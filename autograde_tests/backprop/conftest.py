"""Trusted helpers for the backprop hidden tests: reference layers, numerical gradients, data."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

NumericalGradient = Callable[..., np.ndarray]


class Reference:
    """Trusted float64 reference implementations of the assignment's functions."""

    @staticmethod
    def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Return x.reshape(N, -1) @ w + b."""
        return x.reshape(x.shape[0], -1) @ w + b

    @staticmethod
    def linear_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (dx, dw, db) for the linear layer."""
        dx = (dout @ w.T).reshape(x.shape)
        dw = x.reshape(x.shape[0], -1).T @ dout
        return dx, dw, dout.sum(axis=0)

    @staticmethod
    def relu_forward(x: np.ndarray) -> np.ndarray:
        """Return max(x, 0) elementwise."""
        return np.maximum(x, 0.0)

    @staticmethod
    def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Return dout where x > 0, else 0."""
        return dout * (x > 0)

    @staticmethod
    def sigmoid_forward(x: np.ndarray) -> np.ndarray:
        """Return the logistic sigmoid, computed without overflow."""
        z = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))

    @classmethod
    def sigmoid_backward(cls, dout: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Return dout * s * (1 - s) with s = sigmoid(x)."""
        s = cls.sigmoid_forward(x)
        return dout * s * (1.0 - s)

    @staticmethod
    def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Return the mean cross-entropy loss and its gradient, via log-sum-exp."""
        rows = np.arange(logits.shape[0])
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        dlogits = np.exp(log_probs)
        dlogits[rows, y] -= 1.0
        return float(-log_probs[rows, y].mean()), dlogits / logits.shape[0]

    @classmethod
    def two_layer_loss(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        b2: np.ndarray,
    ) -> float:
        """Return the loss of linear -> relu -> linear -> softmax cross-entropy."""
        hidden = cls.relu_forward(cls.linear_forward(x, w1, b1))
        return cls.softmax_cross_entropy(cls.linear_forward(hidden, w2, b2), y)[0]


def _numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray | float],
    x: np.ndarray,
    dout: np.ndarray | float = 1.0,
    h: float = 1e-5,
) -> np.ndarray:
    """Return the centered-difference gradient of sum(f(x) * dout) with respect to x."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = np.sum(f(x) * dout)
        x[index] = original - h
        minus = np.sum(f(x) * dout)
        x[index] = original
        grad[index] = (plus - minus) / (2.0 * h)
    return grad


class DigitsSplit(NamedTuple):
    """A fixed stratified split of scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """Trusted reference implementations."""
    return Reference


@pytest.fixture(scope="session")
def numerical_gradient() -> NumericalGradient:
    """Centered-difference gradient: numerical_gradient(f, x, dout=1.0, h=1e-5)."""
    return _numerical_gradient


# The stratified split train_test_split(..., test_size=450, stratify=labels, random_state=0)
# made of scikit-learn's digits, stored as row indices; tests/test_assignment_backprop.py checks
# that it still is exactly that split.
SPLIT_FILE = Path(__file__).with_name("digits_split.npz")


def digits_rows() -> np.ndarray:
    """scikit-learn's bundled digits (1797 rows: 64 pixels, then the label), read from its CSV.

    Importing scikit-learn costs about 1.8 s in each grading process (issue 6), for a 30 ms read.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed: its bundled digits are the training data")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    return np.loadtxt(path, delimiter=",")


@lru_cache(maxsize=1)
def _digits_split() -> DigitsSplit:
    rows = digits_rows()
    images, labels = rows[:, :-1] / 16.0, rows[:, -1].astype(np.int64)
    with np.load(SPLIT_FILE) as split:
        train, test = split["train"], split["test"]
    arrays = [np.ascontiguousarray(a) for a in (images[train], labels[train], images[test], labels[test])]
    for array in arrays:
        array.flags.writeable = False  # shared by every submission a grading process grades
    return DigitsSplit(*arrays)


@pytest.fixture(scope="session")
def digits_split() -> DigitsSplit:
    """1347 training and 450 test digits; the test labels never leave this process.

    Loaded once per grading process (the tests are collected once and graded many times) and
    read-only, so no submission's grading can change what the next one sees.
    """
    return _digits_split()
