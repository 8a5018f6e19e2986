"""Trusted helpers for the generative hidden tests: the digits split, the ring of Gaussians, and
float64 references of the losses. Held-out digits and the ring's centres never enter the sandbox
before (centres: ever) the test that scores them."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

PIXELS = 64
HELD_OUT_DIGITS = 450
RING_MODES, RING_RADIUS, RING_STD = 6, 2.0, 0.2
RING_TRAINING_POINTS = 4096


class DigitsSplit(NamedTuple):
    """scikit-learn's 8x8 digits as float32 (N, 64) in [0, 1], split by the grading seed."""

    x_train: np.ndarray
    x_test: np.ndarray


class Ring(NamedTuple):
    """Training points of a ring of Gaussians, and its centres (which stay in this process)."""

    data: np.ndarray
    centres: np.ndarray
    std: float


def rng_for(seed: int, purpose: int) -> np.random.Generator:
    """An independent generator per (grading seed, purpose): one test's data never shifts another's."""
    return np.random.default_rng([seed, purpose])


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.ascontiguousarray(a) for a in arrays]
    for array in out:
        array.flags.writeable = False  # cached for every submission this grading process grades
    return out


@lru_cache(maxsize=1)
def _digit_images() -> np.ndarray:
    """The 1797 digits from scikit-learn's bundled CSV, read without importing scikit-learn.

    Importing it costs about 1.8 s per grading process for a 30 ms read (as in backprop's tests).
    The sandbox masks this file, so the images must be passed in by the tests.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed: its bundled digits are the VAE's data")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    rows = np.loadtxt(path, delimiter=",")
    return (rows[:, :-1] / 16.0).astype(np.float32)


@lru_cache(maxsize=4)
def make_digits_split(seed: int) -> DigitsSplit:
    """A random split into 1347 training and 450 held-out digits, drawn from the grading seed."""
    images = _digit_images()
    order = rng_for(seed, 100).permutation(len(images))
    train, test = order[:-HELD_OUT_DIGITS], order[-HELD_OUT_DIGITS:]
    return DigitsSplit(*_read_only(images[train], images[test]))


def ring_centres(angle: float) -> np.ndarray:
    """The RING_MODES centres, evenly spaced on the circle of RING_RADIUS, starting at `angle`."""
    theta = angle + 2.0 * np.pi * np.arange(RING_MODES) / RING_MODES
    return RING_RADIUS * np.stack([np.cos(theta), np.sin(theta)], axis=1)


@lru_cache(maxsize=4)
def make_ring(seed: int) -> Ring:
    """4096 points of the ring, rotated by an angle drawn from the grading seed."""
    rng = rng_for(seed, 200)
    centres = ring_centres(float(rng.uniform(0.0, 2.0 * np.pi)))
    modes = rng.integers(0, RING_MODES, size=RING_TRAINING_POINTS)
    data = (centres[modes] + RING_STD * rng.normal(size=(RING_TRAINING_POINTS, 2))).astype(np.float32)
    data, centres = _read_only(data, centres)
    return Ring(data, centres, RING_STD)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) without overflow."""
    return -np.logaddexp(0.0, -x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(log_sigmoid(x))


class Reference:
    """float64 references of the losses and their gradients, in the trusted process."""

    @staticmethod
    def gaussian_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
        """KL(N(mu, exp(logvar)) || N(0, I)) per example, summed over the latent dimensions."""
        return -0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=1)

    @staticmethod
    def reconstruction(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Binary cross-entropy of sigmoid(logits) against x, summed over pixels, per example."""
        return -np.sum(x * log_sigmoid(logits) + (1.0 - x) * log_sigmoid(-logits), axis=1)

    @classmethod
    def elbo(cls, logits: np.ndarray, x: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> dict[str, float]:
        """loss, reconstruction and kl, each averaged over the batch."""
        reconstruction = float(np.mean(cls.reconstruction(logits, x)))
        kl = float(np.mean(cls.gaussian_kl(mu, logvar)))
        return {"loss": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}

    @staticmethod
    def elbo_gradients(logits: np.ndarray, x: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the batch-averaged negative ELBO by logits, mu and logvar."""
        n = logits.shape[0]
        return {
            "logits": (sigmoid(logits) - x) / n,
            "mu": mu / n,
            "logvar": 0.5 * (np.exp(logvar) - 1.0) / n,
        }

    @staticmethod
    def discriminator_loss(real: np.ndarray, fake: np.ndarray) -> float:
        """Mean BCE of real logits against 1 plus mean BCE of fake logits against 0."""
        return float(-np.mean(log_sigmoid(real)) - np.mean(log_sigmoid(-fake)))

    @staticmethod
    def discriminator_gradients(real: np.ndarray, fake: np.ndarray) -> dict[str, np.ndarray]:
        return {"real": (sigmoid(real) - 1.0) / real.size, "fake": sigmoid(fake) / fake.size}

    @staticmethod
    def generator_loss(fake: np.ndarray) -> float:
        """The non-saturating loss: mean BCE of fake logits against 1."""
        return float(-np.mean(log_sigmoid(fake)))

    @staticmethod
    def generator_gradients(fake: np.ndarray) -> np.ndarray:
        return (sigmoid(fake) - 1.0) / fake.size


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """The trusted float64 references."""
    return Reference


@pytest.fixture
def digits_split(grading_seed: int) -> DigitsSplit:
    """1347 training and 450 held-out digits, split by the grading seed (calibration varies it)."""
    return make_digits_split(grading_seed)


@pytest.fixture
def ring(grading_seed: int) -> Ring:
    """The GAN's training points and the ring's centres, rotated by the grading seed."""
    return make_ring(grading_seed)


@pytest.fixture
def random_generator(grading_seed: int) -> Callable[[int], np.random.Generator]:
    """random_generator(purpose): a numpy generator for one test's tensors, from the grading seed."""
    return lambda purpose: rng_for(grading_seed, purpose)
