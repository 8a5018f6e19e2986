"""Trusted helpers for the perceptron hidden tests: the reference rule and seeded data.

Every data set is drawn from the grading seed mixed with a fixed number per purpose, so one
test's data never shifts another's and `grader calibrate` sees fresh data for each seed. Inputs
are small integers and learning rates powers of two: every sum and product the perceptron forms
is then exact in float64, whatever order an implementation adds in, so a correct submission
reproduces the reference bit for bit, ties (w·x + b exactly 0) included.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pytest

FEATURES = 4
BOX = 6  # inputs are integers in [-BOX, BOX]
TRAIN_POINTS, HELD_OUT_POINTS = 80, 200


class Reference:
    """The perceptron exactly as the notebook specifies it."""

    @staticmethod
    def predict(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
        """+1 where w·x + b >= 0 (the boundary included), else -1."""
        return np.where(X @ w + b >= 0, 1, -1)

    @staticmethod
    def is_mistake(w: np.ndarray, b: float, x: np.ndarray, y: float) -> bool:
        """y (w·x + b) <= 0: a point on the boundary is a mistake whatever its label."""
        return bool(y * (x @ w + b) <= 0)

    @classmethod
    def update(cls, w: np.ndarray, b: float, x: np.ndarray, y: float, lr: float) -> tuple[np.ndarray, float]:
        """(w + lr y x, b + lr y) on a mistake, else (w, b)."""
        if cls.is_mistake(w, b, x, y):
            return w + lr * y * x, float(b + lr * y)
        return w.copy(), float(b)

    @classmethod
    def train(cls, X: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> tuple[np.ndarray, float, np.ndarray]:
        """From w = 0, b = 0, `epochs` passes over the points in the given order."""
        w, b = np.zeros(X.shape[1]), 0.0
        curve = np.zeros(epochs, dtype=np.int64)
        for epoch in range(epochs):
            for x, label in zip(X, y, strict=True):
                if cls.is_mistake(w, b, x, label):
                    curve[epoch] += 1
                    w, b = w + lr * label * x, float(b + lr * label)
        return w, b, curve


class Separable(NamedTuple):
    """Training and held-out points of one linearly separable problem, and its true separator."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    w_true: np.ndarray
    b_true: float

    def mistake_bound(self) -> float:
        """Novikoff's bound (R / gamma)^2 on the training points, the bias as a constant feature."""
        augmented = np.column_stack([self.x_train, np.ones(len(self.x_train))])
        radius = float(np.max(np.linalg.norm(augmented, axis=1)))
        separator = np.append(self.w_true, self.b_true)
        margin = float(np.min(self.y_train * (augmented @ separator))) / float(np.linalg.norm(separator))
        return (radius / margin) ** 2


def rng_for(seed: int, purpose: int) -> np.random.Generator:
    """An independent generator per (grading seed, purpose)."""
    return np.random.default_rng([seed, purpose])


def frozen(*arrays: np.ndarray) -> list[np.ndarray]:
    """Read-only copies: cached data is shared by every submission a grading process grades."""
    out = []
    for array in arrays:
        array = np.array(array)
        array.flags.writeable = False
        out.append(array)
    return out


@lru_cache(maxsize=16)
def make_separable(seed: int, purpose: int) -> Separable:
    """Integer points in [-6, 6]^4, half on each side of an integer hyperplane, at distance >= 1.

    The hyperplane passes at least 3 from the origin, so a perceptron without a bias cannot fit
    it; the margin keeps the reference's convergence within 50 epochs over 1000 seeds (NOTES.md).
    """
    rng = rng_for(seed, purpose)
    while True:
        w_true = rng.integers(-3, 4, size=FEATURES)
        centre = rng.integers(-3, 4, size=FEATURES)
        b_true = -int(w_true @ centre)
        if np.count_nonzero(w_true) >= 2 and abs(b_true) >= 3 * np.linalg.norm(w_true):
            break
    margin = float(np.linalg.norm(w_true))
    total = TRAIN_POINTS + HELD_OUT_POINTS
    candidates = rng.integers(-BOX, BOX + 1, size=(50 * total, FEATURES))
    scores = candidates @ w_true + b_true
    positive, negative = candidates[scores >= margin], candidates[scores <= -margin]
    if len(positive) < total // 2 or len(negative) < total - total // 2:  # never seen; fail loudly
        raise RuntimeError(f"make_separable({seed}, {purpose}): too few candidate points")
    points = np.concatenate([positive[: total // 2], negative[: total - total // 2]])
    points = points[rng.permutation(total)].astype(np.float64)
    labels = np.where(points @ w_true + b_true > 0, 1, -1)
    x_train, y_train, x_test, y_test, w = frozen(
        points[:TRAIN_POINTS], labels[:TRAIN_POINTS], points[TRAIN_POINTS:], labels[TRAIN_POINTS:], w_true
    )
    return Separable(x_train, y_train, x_test, y_test, w, float(b_true))


@lru_cache(maxsize=4)
def make_noisy_xor(seed: int, purpose: int, per_corner: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Integer points around the four corners (+-3, +-3), labelled -1 where x1 x2 > 0, else +1."""
    rng = rng_for(seed, purpose)
    corners = np.array([[3, 3], [-3, -3], [3, -3], [-3, 3]])
    points = np.repeat(corners, per_corner, axis=0) + rng.integers(-1, 2, size=(4 * per_corner, 2))
    order = rng.permutation(len(points))
    points = points[order].astype(np.float64)
    labels = np.where(points[:, 0] * points[:, 1] > 0, -1, 1)
    x, y = frozen(points, labels)
    return x, y


CLASSIC_XOR = tuple(frozen(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([-1, 1, 1, -1])))


@pytest.fixture(scope="session")
def classic_xor() -> tuple[np.ndarray, ...]:
    """The four points of XOR, labels -1 where x1 == x2."""
    return CLASSIC_XOR


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """The trusted reference perceptron."""
    return Reference


@pytest.fixture
def rng(grading_seed: int) -> Callable[[int], np.random.Generator]:
    """rng(purpose): a generator for this grading run's seed and the test's purpose."""
    return lambda purpose: rng_for(grading_seed, purpose)


@pytest.fixture
def separable(grading_seed: int) -> Callable[[int], Separable]:
    """separable(purpose): a linearly separable problem drawn from this grading run's seed."""
    return lambda purpose: make_separable(grading_seed, purpose)


@pytest.fixture
def noisy_xor(grading_seed: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """noisy_xor(purpose): 40 points of a non-separable XOR drawn from this grading run's seed."""
    return lambda purpose: make_noisy_xor(grading_seed, purpose)
