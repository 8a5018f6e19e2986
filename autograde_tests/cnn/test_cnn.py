"""Hidden tests for the cnn assignment: the model's shape, its architecture, training, accuracy.

The probes in probes.py run next to the student's code; everything is decided here. Thresholds
and where they come from: assignments/cnn/NOTES.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from grader.testing import expect_array, expect_scalar, limits, points

CLASSES = 10
PARAMETER_BUDGET = 50_000
# Wall seconds for one graded training run with the student's defaults (the reference: 1.5-3 s).
TRAINING_TIMEOUT_S = 30
# (minimum held-out accuracy, fraction of the points); see NOTES.md for the calibration.
ACCURACY_BANDS = ((0.94, 1.0), (0.90, 0.75), (0.80, 0.5), (0.50, 0.25))
# The short training runs of the training-behaviour tests: the first images of the training split.
BRIEF_TRAINING_IMAGES = 500
BRIEF_TRAINING_EPOCHS = 4
INTEGRITY_FIT_IMAGES, INTEGRITY_PREDICT_IMAGES, INTEGRITY_EPOCHS = 600, 300, 2
# Two passes over the same images in a different company may differ by float32 rounding only.
LOGIT_TOLERANCE = 1e-4


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


def expect_count(value: Any, name: str) -> int:
    """A non-negative whole number."""
    number = expect_scalar(value, name)
    if number < 0 or number != int(number):
        raise AssertionError(f"{name} should be a whole number, not {number}")
    return int(number)


def expect_losses(value: Any, epochs: int) -> list[float]:
    """train()'s return value as validated by the probe: a list of finite floats, one per epoch."""
    if type(value) is str:
        raise AssertionError(f"train() should return a list of per-epoch mean losses, not {value}")
    if type(value) is not list or not all(type(v) is float for v in value):
        raise AssertionError("train() should return a list of per-epoch mean losses")
    if len(value) != epochs:
        raise AssertionError(
            f"train(..., epochs={epochs}) returned {len(value)} losses: return one mean loss per epoch"
        )
    if not value:
        raise AssertionError("train() returned an empty list of losses")
    if not all(np.isfinite(value)):
        raise AssertionError("the losses returned by train() contain nan or inf")
    return value


def architecture_problems(submission: Any, x_train: np.ndarray) -> list[str]:
    """The model's breaches of the two architecture rules (a Conv2d in use, the budget)."""
    counted = expect_dict(submission.run("count_parameters"), "count_parameters", ("parameters",))
    parameters = expect_count(counted["parameters"], "the parameter count")
    used = expect_dict(
        submission.run("convolutions_in_use", x_train[:8]), "convolutions_in_use", ("conv_layers_in_use",)
    )
    problems = []
    if expect_count(used["conv_layers_in_use"], "the number of convolutions in use") == 0:
        problems.append("no nn.Conv2d layer takes part in computing the output")
    if parameters > PARAMETER_BUDGET:
        problems.append(f"{parameters} parameters is over the budget of {PARAMETER_BUDGET}")
    return problems


class Predictions(NamedTuple):
    """A validated `predict` reply: logits, and what the model did that a predictor may not."""

    logits: np.ndarray
    changed_while_predicting: str
    depends_on_other_images: str


def check_predictions(reply: Any, count: int) -> Predictions:
    """Validate a `predict` reply for `count` images."""
    reply = expect_dict(reply, "predict", ("logits", "logits_one_by_one", "tensors_changed"))
    logits = expect_array(reply["logits"], "the model's outputs", shape=(count, CLASSES))
    again = expect_array(reply["logits_one_by_one"], "the model's outputs", shape=(count, CLASSES))
    assert np.all(np.isfinite(logits)), "the model's outputs in eval mode contain nan or inf"
    changed = expect_count(reply["tensors_changed"], "the number of changed tensors")
    changed_while_predicting = (
        f"{changed} parameter or buffer tensors changed while the model was only asked to "
        "predict (in eval mode, without gradients): the model must not train on the inputs "
        "it is asked to classify"
        if changed
        else ""
    )
    scale = max(1.0, float(np.max(np.abs(logits))))
    agree = np.all(np.abs(logits - again) <= LOGIT_TOLERANCE * scale)
    depends_on_other_images = (
        ""
        if agree
        else "the model's outputs for the same images differ between a pass in batches of 50 "
        "and a pass one image at a time: in eval mode each prediction must depend on its own "
        "image only (look for dropout left on, e.g. F.dropout without training=self.training, "
        "or statistics computed over the batch)"
    )
    return Predictions(logits, changed_while_predicting, depends_on_other_images)


@points(10)
def test_model_output_shape_and_dtype(submission: Any) -> None:
    """build_model() maps float32 images (N, 1, 8, 8) to float32 logits (N, 10), for N = 7 and 1."""
    require(submission, "build_model")
    rng = np.random.default_rng(2001)
    batches = [rng.uniform(size=(n, 1, 8, 8)).astype(np.float32) for n in (7, 1)]
    replies = submission.run("model_outputs", batches)
    if type(replies) is not list or len(replies) != len(batches):
        raise AssertionError("model_outputs: the sandbox sent back a malformed reply")
    for x, reply in zip(batches, replies, strict=True):
        reply = expect_dict(reply, "model_outputs", ("type",))
        what = f"the model's output for a batch of shape {x.shape}"
        assert reply["type"] == "Tensor", f"{what} should be a torch tensor, not a {reply['type']}"
        reply = expect_dict(reply, "model_outputs", ("dtype", "shape", "values"))
        shape = tuple(reply["shape"]) if type(reply["shape"]) is list else None
        assert shape == (len(x), CLASSES), f"{what} has shape {shape}, expected {(len(x), CLASSES)}"
        assert reply["dtype"] == "float32", f"{what} has dtype {reply['dtype']}, expected float32"
        values = expect_array(reply["values"], what, shape=(len(x), CLASSES))
        assert np.all(np.isfinite(values)), f"{what} contains nan or inf"


@points(5)
def test_model_uses_a_convolution(submission: Any, digits_split: Any) -> None:
    """At least one nn.Conv2d layer takes part in the forward pass (its weights get a gradient)."""
    require(submission, "build_model")
    used = expect_dict(
        submission.run("convolutions_in_use", digits_split.x_train[:8]),
        "convolutions_in_use",
        ("conv_layers", "conv_layers_in_use"),
    )
    layers = expect_count(used["conv_layers"], "the number of convolutions")
    assert layers > 0, "the model has no nn.Conv2d layer: this assignment is about convolutions"
    in_use = expect_count(used["conv_layers_in_use"], "the number of convolutions in use")
    assert in_use > 0, (
        f"the model has {layers} nn.Conv2d layers, but none of them takes part in computing the "
        "output (their weights get no gradient): use them in forward()"
    )


@points(5)
def test_model_is_within_parameter_budget(submission: Any) -> None:
    """The model has at most PARAMETER_BUDGET parameters, trainable or not."""
    require(submission, "build_model")
    counted = expect_dict(submission.run("count_parameters"), "count_parameters", ("parameters",))
    parameters = expect_count(counted["parameters"], "the parameter count")
    assert parameters <= PARAMETER_BUDGET, (
        f"the model has {parameters} parameters; at most {PARAMETER_BUDGET} are allowed "
        "(fewer channels, or pooling before the linear layer, will get it under)"
    )


def train_briefly(submission: Any, digits_split: Any) -> dict[str, Any]:
    """A few epochs on the first training images, through the probe."""
    reply = submission.run(
        "train_briefly",
        digits_split.x_train[:BRIEF_TRAINING_IMAGES],
        digits_split.y_train[:BRIEF_TRAINING_IMAGES],
        BRIEF_TRAINING_EPOCHS,
    )
    keys = ("losses", "loss_before", "loss_after", "tensors_trainable", "tensors_changed")
    return expect_dict(reply, "train_briefly", keys)


@points(10)
def test_train_updates_the_parameters(submission: Any, credit: Any, digits_split: Any) -> None:
    """train() changes the given model's parameters in place (all of them; half credit for some)."""
    require(submission, "build_model", "train")
    reply = train_briefly(submission, digits_split)
    trainable = expect_count(reply["tensors_trainable"], "the number of trainable tensors")
    changed = expect_count(reply["tensors_changed"], "the number of changed tensors")
    assert trainable > 0, "the model has no trainable parameters"
    assert changed > 0, (
        f"after train(model, X, y, epochs={BRIEF_TRAINING_EPOCHS}) none of the model's "
        f"{trainable} parameter tensors has changed: does train() call optimizer.step() on an "
        "optimizer built from this model's parameters?"
    )
    if changed < trainable:
        credit.give(
            0.5,
            f"only {changed} of the model's {trainable} parameter tensors changed during training: "
            "is every layer used in forward() and given to the optimizer?",
        )


@points(10)
def test_train_loss_decreases(submission: Any, digits_split: Any) -> None:
    """train() returns one mean loss per epoch, the last below the first, and the loss really drops."""
    require(submission, "build_model", "train")
    reply = train_briefly(submission, digits_split)
    losses = expect_losses(reply["losses"], BRIEF_TRAINING_EPOCHS)
    assert losses[-1] < losses[0], (
        f"the losses returned by train() do not decrease over {BRIEF_TRAINING_EPOCHS} epochs "
        f"(first {losses[0]:.4f}, last {losses[-1]:.4f})"
    )
    before = expect_scalar(reply["loss_before"], "the loss before training")
    after = expect_scalar(reply["loss_after"], "the loss after training")
    assert np.isfinite(after) and after < before, (
        f"measured independently, the model's cross-entropy on its {BRIEF_TRAINING_IMAGES} "
        f"training images went from {before:.4f} to {after:.4f} over "
        f"{BRIEF_TRAINING_EPOCHS} epochs: training should lower it"
    )


@points(10)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_predictions_do_not_train_on_their_inputs(submission: Any, digits_split: Any) -> None:
    """Predicting leaves the model unchanged, and each prediction depends only on its own image."""
    require(submission, "build_model", "train")
    first, last = INTEGRITY_FIT_IMAGES, INTEGRITY_FIT_IMAGES + INTEGRITY_PREDICT_IMAGES
    submission.run("fit", digits_split.x_train[:first], digits_split.y_train[:first], INTEGRITY_EPOCHS)
    checked = check_predictions(submission.run("predict", digits_split.x_train[first:last]), last - first)
    problems = [checked.changed_while_predicting, checked.depends_on_other_images]
    assert not any(problems), "; ".join(problem for problem in problems if problem)


@points(50)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_accuracy_on_held_out_digits(submission: Any, credit: Any, metric: Any, digits_split: Any) -> None:
    """Trained with train()'s defaults on 1347 digits, the model classifies 450 held-out ones.

    The held-out images enter the sandbox only after training has returned; their labels never.
    Credit only for a model that follows the architecture rules and does not change while it
    predicts. Bands: ACCURACY_BANDS.
    """
    require(submission, "build_model", "train")
    problems = architecture_problems(submission, digits_split.x_train)
    assert not problems, "accuracy is only credited for a model that follows the rules of the assignment: " + "; ".join(
        problems
    )
    fitted = expect_dict(
        submission.run("fit", digits_split.x_train, digits_split.y_train),
        "fit",
        ("train_seconds",),
    )
    metric("train_seconds", expect_scalar(fitted["train_seconds"], "the training time"))
    checked = check_predictions(submission.run("predict", digits_split.x_test), len(digits_split.x_test))
    assert not checked.changed_while_predicting, "predictions not accepted: " + checked.changed_while_predicting
    accuracy = float(np.mean(np.argmax(checked.logits, axis=1) == digits_split.y_test))
    metric("accuracy", accuracy)
    for threshold, fraction in ACCURACY_BANDS:
        if accuracy >= threshold:
            credit.give(fraction, f"held-out accuracy {accuracy:.3f} (at least {threshold:.2f})")
            return
    lowest = ACCURACY_BANDS[-1][0]
    raise AssertionError(f"held-out accuracy {accuracy:.3f} is below {lowest:.2f}")
