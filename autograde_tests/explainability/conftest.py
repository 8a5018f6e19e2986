"""Trusted side of the explainability hidden tests: the reference attributions, the test cases.

The reference methods are written here with torch autograd, in float64, on the same DigitsCNN the
probes build (this conftest runs probes.py to get the class) and the same weights: the shipped
file assignments/explainability/data/digits_cnn.pt, loaded with weights_only=True, or randomised
weights drawn here for the sanity checks. They were checked against Captum (Saliency,
IntegratedGradients with method="riemann_right", LayerGradCam) outside the project: see
assignments/explainability/NOTES.md. Nothing computed here is sent into the sandbox except the
inputs: images, targets, baselines and, for the sanity checks, randomised weights.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
WEIGHTS_PATH = HERE.parents[1] / "assignments" / "explainability" / "data" / "digits_cnn.pt"
# The class the sandbox builds, from the probes' own source: both sides build the same module.
DigitsCNN: Any = runpy.run_path(str(HERE / "probes.py"))["DigitsCNN"]

Weights = dict[str, np.ndarray]


class Case(NamedTuple):
    """Images (N, 1, 8, 8) float32, a target class per image, and baselines for integrated gradients."""

    images: np.ndarray
    targets: np.ndarray
    zero_baselines: np.ndarray
    other_baselines: np.ndarray


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False  # cached for every submission this grading process grades
    return array


@lru_cache(maxsize=1)
def shipped_weights() -> Weights:
    """The assignment's fixed weights, as float32 arrays by parameter name."""
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    return {name: _read_only(tensor.numpy().astype(np.float32)) for name, tensor in state.items()}


def randomised_weights(seed: int, layers: tuple[str, ...]) -> Weights:
    """The shipped weights with `layers` re-drawn as PyTorch initialises them (uniform, bound 1/sqrt(fan_in))."""
    rng = np.random.default_rng([seed, 7000, len(layers)])
    weights = dict(shipped_weights())
    for layer in layers:
        weight = weights[f"{layer}.weight"]
        bound = 1.0 / np.sqrt(np.prod(weight.shape[1:]))
        for name in (f"{layer}.weight", f"{layer}.bias"):
            weights[name] = rng.uniform(-bound, bound, size=weights[name].shape).astype(np.float32)
    return weights


def reference_model(weights: Weights) -> torch.nn.Module:
    """A float64 DigitsCNN in eval mode holding `weights`."""
    model = DigitsCNN().double()
    model.load_state_dict({name: torch.tensor(value, dtype=torch.float64) for name, value in weights.items()})
    model.eval()
    return model


def _target_logits(model: torch.nn.Module, x: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
    return model(x).gather(1, torch.tensor(targets, dtype=torch.int64)[:, None]).squeeze(1)


class Reference:
    """The three methods and the logits, in float64, in the trusted process."""

    @staticmethod
    def logits(weights: Weights, images: np.ndarray) -> np.ndarray:
        """The model's logits (N, 10)."""
        with torch.no_grad():
            return reference_model(weights)(torch.tensor(images, dtype=torch.float64)).numpy()

    @staticmethod
    def target_logit(weights: Weights, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """F_c(x) per image: the logit of each image's target class."""
        with torch.no_grad():
            return _target_logits(reference_model(weights), torch.tensor(images, dtype=torch.float64), targets).numpy()

    @staticmethod
    def saliency(weights: Weights, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """|dF_c/dx| (N, 1, 8, 8)."""
        x = torch.tensor(images, dtype=torch.float64, requires_grad=True)
        (gradient,) = torch.autograd.grad(_target_logits(reference_model(weights), x, targets).sum(), x)
        return gradient.abs().numpy()

    @staticmethod
    def integrated_gradients(
        weights: Weights, images: np.ndarray, targets: np.ndarray, baselines: np.ndarray, steps: int
    ) -> np.ndarray:
        """(x - x') * mean over k = 1..steps of dF_c/dx at x' + (k / steps)(x - x') (N, 1, 8, 8)."""
        model = reference_model(weights)
        x, x0 = torch.tensor(images, dtype=torch.float64), torch.tensor(baselines, dtype=torch.float64)
        total = torch.zeros_like(x)
        for k in range(1, steps + 1):
            point = (x0 + (k / steps) * (x - x0)).requires_grad_(True)
            (gradient,) = torch.autograd.grad(_target_logits(model, point, targets).sum(), point)
            total += gradient
        return ((x - x0) * total / steps).numpy()

    @staticmethod
    def grad_cam(weights: Weights, images: np.ndarray, targets: np.ndarray, layer_name: str) -> np.ndarray:
        """ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of dF_c/dA_k, A the layer's output (N, H, W)."""
        model = reference_model(weights)
        stored: dict[str, torch.Tensor] = {}
        layer = dict(model.named_modules())[layer_name]

        def keep(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
            stored["A"] = output

        handle = layer.register_forward_hook(keep)
        try:
            logits = _target_logits(model, torch.tensor(images, dtype=torch.float64), targets)
        finally:
            handle.remove()
        activations = stored["A"]
        (gradients,) = torch.autograd.grad(logits.sum(), activations)
        alpha = gradients.mean(dim=(2, 3), keepdim=True)
        return torch.relu((alpha * activations).sum(dim=1)).detach().numpy()


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    # Imported here so that collecting the tests does not pay for scikit-learn.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    return (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), labels.astype(np.int64)


@lru_cache(maxsize=16)
def make_case(seed: int, purpose: int, count: int = 8) -> Case:
    """`count` digits of distinct classes drawn by (seed, purpose); the first half explained for the
    model's own prediction, the second half for its runner-up class (so a method that explains the
    predicted class instead of the target shows); a zero baseline and a uniform-noise one."""
    rng = np.random.default_rng([seed, purpose])
    images, labels = _digits()
    classes = rng.permutation(10)[:count]
    chosen = [int(rng.choice(np.flatnonzero(labels == c))) for c in classes]
    x = images[chosen]
    ranked = np.argsort(-Reference.logits(shipped_weights(), x), axis=1)
    half = count // 2
    targets = np.concatenate([ranked[:half, 0], ranked[half:, 1]]).astype(np.int64)
    other = rng.uniform(0.0, 1.0, size=x.shape).astype(np.float32)
    return Case(*(_read_only(a) for a in (x, targets, np.zeros_like(x), other)))


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """The trusted reference methods."""
    return Reference


@pytest.fixture
def case(grading_seed: int) -> Callable[..., Case]:
    """make_case(purpose, count=8) with this grading run's seed."""
    return lambda purpose, count=8: make_case(grading_seed, purpose, count)


@pytest.fixture
def weights() -> Weights:
    """The shipped weights."""
    return shipped_weights()


@pytest.fixture
def randomised(grading_seed: int) -> Callable[[tuple[str, ...]], Weights]:
    """randomised_weights(layers) with this grading run's seed."""
    return lambda layers: randomised_weights(grading_seed, layers)
