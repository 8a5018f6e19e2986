"""Visible tests for the explainability assignment: maps you can work out by hand, and completeness.

They call the notebook's given helpers `explain_with_weights` and `logits_with_weights`, which
build a DigitsCNN holding the weights sent here and run your methods on it; keep those helpers as
they are. No trained weights are needed: the hidden tests use those.

The hand-made network: conv1 and conv2 copy the image into their channel 0 (a 1 in the centre of
one 3x3 kernel, every other weight and bias 0), so for an image with positive pixels channel 0 of
both layers is the image itself and every other channel is 0. After the 2x2 max-pooling, the
logit of class c is sum_w fc.weight[c, w] * (largest pixel of window w), w = 4 * row + column of
the 16 windows. Hence:

* dF_c/dx is fc.weight[c, w] at the largest pixel of each window w, and 0 elsewhere;
  saliency is its absolute value;
* along the path from a baseline s * x (0 <= s < 1) to x every point is a positive multiple of x,
  with the same largest pixels, so the gradient is the same everywhere on the path and
  integrated gradients are exactly (1 - s) * x * dF_c/dx, whatever the number of steps;
* Grad-CAM on conv2 (or conv1): A_0 = x, dF_c/dA_0 = dF_c/dx, alpha_0 = sum_w fc.weight[c, w] / 64,
  and the map is ReLU(alpha_0 * x): alpha_0 * x for a class with alpha_0 > 0, zero otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, points

TARGETS = np.array([3, 7, 3])  # class 3 has alpha_0 > 0, class 7 alpha_0 < 0 (checked below)
STEPS = 16
COMPLETENESS_STEPS, COMPLETENESS_RTOL = 256, 0.25


def hand_made_weights() -> dict[str, np.ndarray]:
    """The network described in the module docstring, with random fc weights of a chosen sign."""
    rng = np.random.default_rng(11)
    weights = {
        "conv1.weight": np.zeros((8, 1, 3, 3)),
        "conv1.bias": np.zeros(8),
        "conv2.weight": np.zeros((16, 8, 3, 3)),
        "conv2.bias": np.zeros(16),
        "fc.weight": rng.normal(size=(10, 256)),
        "fc.bias": rng.normal(size=10),
    }
    weights["conv1.weight"][0, 0, 1, 1] = 1.0
    weights["conv2.weight"][0, 0, 1, 1] = 1.0
    weights["fc.weight"][3, :16] += 0.8
    weights["fc.weight"][7, :16] -= 0.8
    return {name: value.astype(np.float32) for name, value in weights.items()}


def images() -> np.ndarray:
    """Three images with distinct positive pixels, so every window has one largest pixel."""
    return np.random.default_rng(12).uniform(0.1, 1.0, size=(3, 1, 8, 8)).astype(np.float32)


def gradient_by_hand(weights: dict[str, np.ndarray], x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """dF_c/dx for the hand-made network: fc.weight[c, w] at the largest pixel of each window w."""
    gradient = np.zeros(x.shape)
    for n, target in enumerate(targets):
        for row in range(4):
            for column in range(4):
                window = x[n, 0, 2 * row : 2 * row + 2, 2 * column : 2 * column + 2]
                i, j = np.unravel_index(np.argmax(window), window.shape)
                gradient[n, 0, 2 * row + i, 2 * column + j] = weights["fc.weight"][target, 4 * row + column]
    return gradient


def explain(submission: Any, method: str, weights: Any, x: np.ndarray, targets: np.ndarray, **options: Any) -> Any:
    shape = (len(x), 8, 8) if method == "grad_cam" else x.shape
    maps = submission.explain_with_weights(method, weights, x, targets, **options)
    return expect_array(maps, f"{method}()", shape=shape)


@points(1)
def test_saliency_by_hand(submission: Any) -> None:
    """saliency = |dF_c/dx|: |fc.weight[c, w]| at the largest pixel of each window, 0 elsewhere."""
    weights, x = hand_made_weights(), images()
    got = explain(submission, "saliency", weights, x, TARGETS)
    assert_close(got, np.abs(gradient_by_hand(weights, x, TARGETS)), "saliency", rtol=1e-4, atol=1e-6)


@points(1)
def test_integrated_gradients_by_hand(submission: Any) -> None:
    """From a black image: x * dF_c/dx; from the baseline 0.5 * x: 0.5 * x * dF_c/dx; for any steps."""
    weights, x = hand_made_weights(), images()
    gradient = gradient_by_hand(weights, x, TARGETS)
    for scale in (0.0, 0.5):
        got = explain(submission, "integrated_gradients", weights, x, TARGETS, baselines=scale * x, steps=STEPS)
        assert_close(got, (1 - scale) * x * gradient, f"integrated gradients from {scale} * x", rtol=1e-4, atol=1e-6)


@points(1)
def test_grad_cam_by_hand(submission: Any) -> None:
    """On conv2 and on conv1: ReLU(alpha_0 * x), alpha_0 = spatial mean of dF_c/dx (zero for class 7)."""
    weights, x = hand_made_weights(), images()
    alpha = gradient_by_hand(weights, x, TARGETS).reshape(len(x), -1).mean(axis=1)
    assert alpha[0] > 0 and alpha[1] < 0, "the hand-made weights lost their intended signs (a bug in this test)"
    expected = np.maximum(alpha[:, None, None] * x[:, 0], 0.0)
    for layer_name in ("conv2", "conv1"):
        got = explain(submission, "grad_cam", weights, x, TARGETS, layer_name=layer_name)
        assert_close(got, expected, f"Grad-CAM on {layer_name}", rtol=1e-4, atol=1e-6)


@points(1)
def test_integrated_gradients_completeness_on_random_weights(submission: Any) -> None:
    """With random weights and 256 steps, each image's attributions sum to F_c(x) - F_c(0).

    The hidden tests check the same on the trained network, with the same tolerance: 25 % of
    |F_c(x)| + |F_c(0)|.
    """
    rng = np.random.default_rng(13)
    shapes = {"conv1": (8, 1, 3, 3), "conv2": (16, 8, 3, 3), "fc": (10, 256)}
    weights = {}
    for layer, shape in shapes.items():
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        weights[f"{layer}.weight"] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        weights[f"{layer}.bias"] = rng.uniform(-bound, bound, size=shape[0]).astype(np.float32)
    x = rng.uniform(0.0, 1.0, size=(4, 1, 8, 8)).astype(np.float32)
    targets = np.array([0, 1, 2, 3])
    zero = np.zeros_like(x)
    got = explain(submission, "integrated_gradients", weights, x, targets, baselines=zero, steps=COMPLETENESS_STEPS)
    logits = [expect_array(submission.logits_with_weights(weights, a), "logits", shape=(4, 10)) for a in (x, zero)]
    after, before = (values[np.arange(4), targets] for values in logits)
    gap = np.abs(got.reshape(4, -1).sum(axis=1) - (after - before)) / (np.abs(after) + np.abs(before))
    assert np.all(gap <= COMPLETENESS_RTOL), (
        f"the attributions do not sum to F(x) - F(0): gaps of {np.round(gap, 3).tolist()} of |F(x)| + |F(0)| "
        f"(tolerance {COMPLETENESS_RTOL}); check the factor (x - baseline) and that nothing takes an absolute value"
    )
