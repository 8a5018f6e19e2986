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

import importlib.util
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


@lru_cache(maxsize=1)
def _shipped_model() -> torch.nn.Module:
    """reference_model(shipped_weights()), built once: it is only evaluated, never changed."""
    return reference_model(shipped_weights())


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
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as float32 (1797, 1, 8, 8) in [0, 1], and int64 labels.

    Read from the package's CSV without importing scikit-learn, which costs seconds in each
    grading process for a 30 ms read (as in autograde_tests/backprop/conftest.py);
    tests/test_assignment_explainability.py checks that this is load_digits().
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed: its bundled digits are the test images")
    rows = np.loadtxt(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    images = (rows[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return _read_only(images), _read_only(rows[:, 64].astype(np.int64))


# Cases whose maps are compared tightly avoid inputs where the network is nearly non-differentiable.
KINK_MARGIN = 1e-5
# What a case is conditioned on: the image itself, or every point of an integrated-gradients path.
Conditioning = tuple[str, int] | None  # ("image", 1), ("zero", steps), ("noise", steps) or None


def kink_distance(weights: Weights, points: np.ndarray) -> float:
    """How far the points are from a kink of the network: min over every ReLU input (conv1, conv2) of
    its magnitude, and over every 2x2 pooling window with a positive maximum of the gap between its
    two largest values (exact ties, as in a blank background, break alike in any precision).

    Where this is below KINK_MARGIN, float32 rounding (about 1e-6 here) could switch a ReLU or the
    pooling's choice and change the gradient's path: the same correct method would then give a
    different map depending on its rounding, so such inputs are not used for tight comparisons.
    """
    model = _shipped_model() if weights is shipped_weights() else reference_model(weights)
    with torch.no_grad():
        p = torch.tensor(points, dtype=torch.float64)
        before_relu1 = model.conv1(p)
        before_relu2 = model.conv2(torch.relu(before_relu1))
        windows = torch.relu(before_relu2).unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)
        top = windows.topk(2, dim=-1).values
        gap = top[..., 0] - top[..., 1]
        gap = torch.where((top[..., 0] > 0) & (gap > 0), gap, torch.full_like(gap, np.inf))
        return float(min(before_relu1.abs().min(), before_relu2.abs().min(), gap.min()))


def evaluated_points(image: np.ndarray, baseline: np.ndarray, conditioning: Conditioning) -> np.ndarray:
    """The inputs at which a method evaluates the gradient for one image (1, 1, 8, 8)."""
    kind, steps = conditioning or ("image", 1)
    if kind == "image":
        return image
    start = np.zeros_like(image) if kind == "zero" else baseline
    alphas = (np.arange(1, steps + 1) / steps).reshape(-1, 1, 1, 1)
    return start + alphas * (image - start)


@lru_cache(maxsize=32)
def make_case(seed: int, purpose: int, count: int = 8, conditioning: Conditioning = None) -> Case:
    """`count` digits of distinct classes drawn by (seed, purpose); the first half explained for the
    model's own prediction, the second half for its runner-up class (so a method that explains the
    predicted class instead of the target shows); a zero baseline and a uniform-noise one.

    With `conditioning`, each digit is the first of its class (in a random order) whose evaluated
    points are at least KINK_MARGIN from a kink (see kink_distance).
    """
    rng = np.random.default_rng([seed, purpose])
    images, labels = digits()
    chosen, noise = [], []
    for digit in rng.permutation(10)[:count]:
        for index in rng.permutation(np.flatnonzero(labels == digit)):
            image = images[index : index + 1]
            baseline = rng.uniform(0.0, 1.0, size=image.shape).astype(np.float32)
            points = evaluated_points(image, baseline, conditioning)
            if conditioning is None or kink_distance(shipped_weights(), points) >= KINK_MARGIN:
                chosen.append(int(index))
                noise.append(baseline[0])
                break
        else:
            raise RuntimeError(f"no digit {digit} is {KINK_MARGIN} from a kink for {conditioning}")
    x = images[chosen]
    ranked = np.argsort(-Reference.logits(shipped_weights(), x), axis=1)
    half = count // 2
    targets = np.concatenate([ranked[:half, 0], ranked[half:, 1]]).astype(np.int64)
    return Case(*(_read_only(a) for a in (x, targets, np.zeros_like(x), np.stack(noise))))


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """The trusted reference methods."""
    return Reference


@pytest.fixture
def case(grading_seed: int) -> Callable[..., Case]:
    """make_case(purpose, count=8, conditioning=None) with this grading run's seed."""
    return lambda purpose, count=8, conditioning=None: make_case(grading_seed, purpose, count, conditioning)


@pytest.fixture
def weights() -> Weights:
    """The shipped weights."""
    return shipped_weights()


@pytest.fixture
def randomised(grading_seed: int) -> Callable[[tuple[str, ...]], Weights]:
    """randomised_weights(layers) with this grading run's seed."""
    return lambda layers: randomised_weights(grading_seed, layers)
