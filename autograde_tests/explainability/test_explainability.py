"""Hidden tests for the explainability assignment: saliency, integrated gradients, Grad-CAM.

Each method is run in the sandbox (probes.py) on the fixed DigitsCNN and compared here with the
trusted reference of conftest.py, on the same weights and inputs. Sanity checks in the spirit of
Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018): the maps must change when the
model's weights are re-drawn at random, layer by layer from the top. Tolerances and where they
come from: assignments/explainability/NOTES.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import expect_array, expect_scalar, limits, points

IMAGE_SHAPE = (1, 8, 8)
# Per image: max |yours - reference| <= MAP_RTOL * the reference map's largest magnitude (floored
# at MAP_FLOOR times the batch's largest, for maps that are almost zero). float32 rounding: <= 7e-6
# on inputs away from the network's kinks (conftest.KINK_MARGIN); another Riemann rule: >= 1e-2.
MAP_RTOL, MAP_FLOOR = 1e-3, 1e-2
# Integrated gradients: the steps of the graded comparisons, and of the completeness check.
STEPS_ZERO_BASELINE, STEPS_NOISE_BASELINE, STEPS_COMPLETENESS = 32, 20, 256
# Per call of the completeness test: 256 steps one image at a time is 2048 passes (NOTES.md).
COMPLETENESS_TIMEOUT_S = 30
# |sum of attributions - (F(x) - F(x'))| <= COMPLETENESS_RTOL * (|F(x)| + |F(x')|), per image.
COMPLETENESS_RTOL = 0.25
# Sanity checks: mean over images of || m/|m| - m'/|m'| || (unit-normalised maps; 0 if unchanged).
SANITY_MIN_DISTANCE = 0.3
CASCADE = (("fc",), ("fc", "conv2"), ("fc", "conv2", "conv1"))
SIDE_EFFECT_STEPS = 8
# Test cases by purpose (each purpose draws its own 8 digits from the grading seed).
SHAPES, SALIENCY, IG_ZERO, IG_NOISE, COMPLETENESS, CAM_CONV2, CAM_CONV1, SANITY, SIDE_EFFECTS = range(1, 10)


def require(submission: Any, *names: str) -> None:
    """Fail with a clear message when the submission does not define one of `names`."""
    missing = [name for name in names if not submission.has(name)]
    assert not missing, (
        f"the submission does not define {', '.join(missing)}: check that the cell defining it runs without an error"
    )


def expect_dict(value: Any, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A probe's dict reply with at least `keys` (it comes from the sandbox, so check it)."""
    if type(value) is not dict or not all(key in value for key in keys):
        raise AssertionError(f"{name}: the sandbox sent back a malformed reply")
    return value


def map_shape(method: str, count: int) -> tuple[int, ...]:
    return (count, 8, 8) if method == "grad_cam" else (count, *IMAGE_SHAPE)


def expect_maps(reply: Any, method: str, count: int) -> np.ndarray:
    """The maps `method` returned, checked to be a tensor (or array) of its shape, finite."""
    reply = expect_dict(reply, method, ("type", "values"))
    shape = map_shape(method, count)
    if reply["type"] not in ("Tensor", "ndarray"):
        raise AssertionError(f"{method}() should return a torch tensor of shape {shape}, not a {reply['type']}")
    maps = expect_array(reply["values"], f"the result of {method}() for {count} images", shape=shape)
    bad = int(np.sum(~np.isfinite(maps)))
    assert not bad, f"the result of {method}() for {count} images holds {bad} entries that are nan or inf"
    return maps


def explain(
    submission: Any, method: str, images: np.ndarray, targets: np.ndarray, weights: Any = None, **options: Any
) -> np.ndarray:
    """The student's maps for these images (shipped weights unless `weights`), validated."""
    reply = submission.run("explain", method, images, targets, options, weights)
    return expect_maps(reply, method, len(images))


def per_image_errors(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """max |got - expected| per image, relative to the reference map's scale (see MAP_RTOL)."""
    count = len(expected)
    got, expected = got.reshape(count, -1), expected.reshape(count, -1)
    scale = np.abs(expected).max(axis=1)
    scale = np.maximum(scale, MAP_FLOOR * max(float(scale.max()), 1e-12))
    return np.abs(got - expected).max(axis=1) / scale


def proportional(got: np.ndarray, expected: np.ndarray) -> bool:
    """Whether got is c * expected for one constant c != 1 (a normalisation or a stray factor)."""
    norm = float(np.sum(expected * expected))
    if norm == 0:
        return False
    factor = float(np.sum(got * expected)) / norm
    return abs(factor - 1) > 0.01 and bool(np.all(per_image_errors(got, factor * expected) <= MAP_RTOL))


def compare_maps(got: np.ndarray, expected: np.ndarray, what: str, metric: Any) -> None:
    """Fail unless every image's map agrees with the reference within MAP_RTOL; say how many do not."""
    errors = per_image_errors(got, expected)
    metric("largest_relative_error", float(errors.max()))  # for `grader calibrate`
    wrong = int(np.sum(errors > MAP_RTOL))
    if not wrong:
        return
    hint = ""
    if proportional(got, expected):
        hint = (
            "; they are proportional to the right maps, off by one constant factor: look for a "
            "normalisation or a missing or extra factor"
        )
    raise AssertionError(
        f"{what}: the maps of {wrong} of {len(expected)} images differ from the reference (largest "
        f"error {float(errors.max()):.2g} of the map's largest magnitude; tolerance {MAP_RTOL:g}){hint}"
    )


# ---------------------------------------------------------------- shapes


def check_shapes(submission: Any, case: Any, method: str, **options: Any) -> None:
    """`method` on a batch of 5 images and on a single image gives maps of the right shape."""
    require(submission, method)
    batch = case(SHAPES, count=5)
    for count in (5, 1):
        images, targets = batch.images[:count], batch.targets[:count]
        extra = dict(options)
        if method == "integrated_gradients":
            extra["baselines"] = batch.zero_baselines[:count]
        explain(submission, method, images, targets, **extra)


@points(3)
def test_saliency_shape(submission: Any, case: Any) -> None:
    """saliency(model, images, targets) returns (N, 1, 8, 8) finite values, for N = 5 and N = 1."""
    check_shapes(submission, case, "saliency")


@points(3)
def test_integrated_gradients_shape(submission: Any, case: Any) -> None:
    """integrated_gradients(...) returns (N, 1, 8, 8) finite values, for N = 5 and N = 1."""
    check_shapes(submission, case, "integrated_gradients", steps=4)


@points(3)
def test_grad_cam_shape(submission: Any, case: Any) -> None:
    """grad_cam(..., "conv2") returns (N, 8, 8) finite values, for N = 5 and N = 1."""
    check_shapes(submission, case, "grad_cam", layer_name="conv2")


# ---------------------------------------------------------------- saliency


@points(16)
def test_saliency_matches_reference(submission: Any, case: Any, reference: Any, weights: Any, metric: Any) -> None:
    """|dF_c/dx| for 8 digits, half explained for the predicted class and half for the runner-up."""
    require(submission, "saliency")
    data = case(SALIENCY, conditioning=("image", 1))
    got = explain(submission, "saliency", data.images, data.targets)
    assert np.all(got >= 0), (
        "saliency maps have negative entries: the saliency of a pixel is the absolute value of the "
        "gradient of the target logit with respect to it"
    )
    compare_maps(got, reference.saliency(weights, data.images, data.targets), "saliency", metric)


# ---------------------------------------------------------------- integrated gradients


def check_integrated_gradients(
    submission: Any,
    reference: Any,
    weights: Any,
    data: Any,
    baselines: np.ndarray,
    steps: int,
    what: str,
    metric: Any,
) -> None:
    got = explain(submission, "integrated_gradients", data.images, data.targets, baselines=baselines, steps=steps)
    expected = reference.integrated_gradients(weights, data.images, data.targets, baselines, steps)
    if np.all(got >= 0) and np.any(expected < 0):
        raise AssertionError(
            f"integrated gradients {what}: all your attributions are non-negative, but attributions "
            "are signed (a pixel can speak against the class): do not take an absolute value"
        )
    compare_maps(got, expected, f"integrated gradients {what}", metric)


@points(10)
def test_integrated_gradients_from_a_black_image(
    submission: Any, case: Any, reference: Any, weights: Any, metric: Any
) -> None:
    """Baseline zero (a black image), 32 steps of the right Riemann sum, for 8 digits."""
    require(submission, "integrated_gradients")
    data = case(IG_ZERO, conditioning=("zero", STEPS_ZERO_BASELINE))
    check_integrated_gradients(
        submission, reference, weights, data, data.zero_baselines, STEPS_ZERO_BASELINE, "from a black image", metric
    )


@points(10)
def test_integrated_gradients_from_a_noise_baseline(
    submission: Any, case: Any, reference: Any, weights: Any, metric: Any
) -> None:
    """A baseline of uniform noise in [0, 1), 20 steps: (x - x') matters, not x alone."""
    require(submission, "integrated_gradients")
    data = case(IG_NOISE, conditioning=("noise", STEPS_NOISE_BASELINE))
    check_integrated_gradients(
        submission,
        reference,
        weights,
        data,
        data.other_baselines,
        STEPS_NOISE_BASELINE,
        "from a noise baseline",
        metric,
    )


@points(8)
@limits(call_timeout_s=COMPLETENESS_TIMEOUT_S)
def test_integrated_gradients_completeness(
    submission: Any, case: Any, reference: Any, weights: Any, metric: Any
) -> None:
    """With 256 steps the attributions of each image sum to F_c(x) - F_c(x'), both baselines."""
    require(submission, "integrated_gradients")
    data = case(COMPLETENESS)
    after = reference.target_logit(weights, data.images, data.targets)
    for baselines, what in ((data.zero_baselines, "a black image"), (data.other_baselines, "a noise baseline")):
        got = explain(
            submission,
            "integrated_gradients",
            data.images,
            data.targets,
            baselines=baselines,
            steps=STEPS_COMPLETENESS,
        )
        before = reference.target_logit(weights, baselines, data.targets)
        gap = np.abs(got.reshape(len(got), -1).sum(axis=1) - (after - before)) / (np.abs(after) + np.abs(before))
        metric(f"gap_from_{'black' if what == 'a black image' else 'noise'}_relative_error", float(gap.max()))
        wrong = int(np.sum(gap > COMPLETENESS_RTOL))
        assert not wrong, (
            f"completeness from {what} with {STEPS_COMPLETENESS} steps: for {wrong} of {len(got)} images "
            "the attributions do not sum to F(x) - F(baseline), the change of the target logit "
            f"(largest gap {float(gap.max()):.2g} of |F(x)| + |F(baseline)|; tolerance {COMPLETENESS_RTOL:g})"
        )


# ---------------------------------------------------------------- Grad-CAM


def check_grad_cam(submission: Any, reference: Any, weights: Any, data: Any, layer_name: str, metric: Any) -> None:
    got = explain(submission, "grad_cam", data.images, data.targets, layer_name=layer_name)
    assert np.all(got >= 0), (
        f"Grad-CAM on {layer_name}: the maps have negative entries; Grad-CAM keeps only the positive "
        "part of the weighted sum of activation maps (a ReLU)"
    )
    expected = reference.grad_cam(weights, data.images, data.targets, layer_name)
    compare_maps(got, expected, f"Grad-CAM on {layer_name}", metric)


@points(14)
def test_grad_cam_on_conv2(submission: Any, case: Any, reference: Any, weights: Any, metric: Any) -> None:
    """Grad-CAM on the last convolution, conv2, for 8 digits."""
    require(submission, "grad_cam")
    check_grad_cam(submission, reference, weights, case(CAM_CONV2, conditioning=("image", 1)), "conv2", metric)


@points(8)
def test_grad_cam_on_conv1(submission: Any, case: Any, reference: Any, weights: Any, metric: Any) -> None:
    """Grad-CAM on the first convolution, conv1: the layer is an argument, not a constant."""
    require(submission, "grad_cam")
    check_grad_cam(submission, reference, weights, case(CAM_CONV1, conditioning=("image", 1)), "conv1", metric)


# ---------------------------------------------------------------- sanity checks


def unit_maps(maps: np.ndarray) -> np.ndarray:
    """Each image's map divided by its Euclidean norm (an all-zero map stays zero)."""
    flat = maps.reshape(len(maps), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)


def check_randomisation(submission: Any, case: Any, randomised: Any, metric: Any, method: str, **options: Any) -> None:
    """The maps change when the weights are re-drawn, cascading from the top layer down."""
    require(submission, method)
    data = case(SANITY)
    if method == "integrated_gradients":
        options.update(baselines=data.zero_baselines, steps=STEPS_ZERO_BASELINE)
    trained = unit_maps(explain(submission, method, data.images, data.targets, **options))
    for layers in CASCADE:
        shuffled = explain(submission, method, data.images, data.targets, randomised(layers), **options)
        distance = float(np.mean(np.linalg.norm(trained - unit_maps(shuffled), axis=1)))
        metric(f"distance_random_{layers[-1]}", distance)
        assert distance >= SANITY_MIN_DISTANCE, (
            f"{method}: with the weights of {', '.join(layers)} re-drawn at random, the maps hardly change "
            f"(mean distance {distance:.2g} between the unit-normalised maps; a method that explains the "
            f"model should change them by at least {SANITY_MIN_DISTANCE:g}): does {method} use the "
            "model it is given, and only that one?"
        )


@points(6)
def test_saliency_changes_when_weights_are_randomised(submission: Any, case: Any, randomised: Any, metric: Any) -> None:
    """Sanity check: saliency maps of a model with random fc, then conv2, then conv1 differ."""
    check_randomisation(submission, case, randomised, metric, "saliency")


@points(6)
def test_integrated_gradients_change_when_weights_are_randomised(
    submission: Any, case: Any, randomised: Any, metric: Any
) -> None:
    """Sanity check: integrated gradients of a model with random fc, then conv2, then conv1 differ."""
    check_randomisation(submission, case, randomised, metric, "integrated_gradients")


@points(6)
def test_grad_cam_changes_when_weights_are_randomised(submission: Any, case: Any, randomised: Any, metric: Any) -> None:
    """Sanity check: Grad-CAM maps on conv2 of a model with random fc, then conv2, then conv1 differ."""
    check_randomisation(submission, case, randomised, metric, "grad_cam", layer_name="conv2")


# ---------------------------------------------------------------- side effects


@points(7)
def test_methods_leave_the_model_as_they_found_it(submission: Any, case: Any) -> None:
    """After all three methods: same weights, requires_grad flags and eval mode, no hooks left."""
    require(submission, "saliency", "integrated_gradients", "grad_cam")
    data = case(SIDE_EFFECTS, count=4)
    options = {"baselines": data.zero_baselines, "steps": SIDE_EFFECT_STEPS, "layer_name": "conv2"}
    reply = expect_dict(
        submission.run("side_effects", data.images, data.targets, options),
        "side_effects",
        ("parameters_changed", "requires_grad_changed", "training", "hooks_left", "first", "again"),
    )
    first = expect_maps(reply["first"], "grad_cam", len(data.images))
    again = expect_maps(reply["again"], "grad_cam", len(data.images))
    problems = []
    if expect_scalar(reply["parameters_changed"], "the number of changed parameters"):
        problems.append("the model's weights changed (work on a copy, or compute without modifying the model)")
    if expect_scalar(reply["requires_grad_changed"], "the number of changed flags"):
        problems.append("the requires_grad flag of some parameters changed")
    if reply["training"] is not False:
        problems.append("the model was left in training mode")
    if expect_scalar(reply["hooks_left"], "the number of hooks"):
        problems.append("hooks are still registered on the model's layers (remove each handle when done)")
    if not np.array_equal(first, again):
        problems.append("a second Grad-CAM on the same model gave a different result than the first")
    assert not problems, "the methods changed the model they were given: " + "; ".join(problems)
