"""Hidden tests for the backprop assignment: each layer, a composed network and a training run."""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import (
    assert_close,
    expect_array,
    expect_scalar,
    expect_tuple,
    limits,
    points,
    relative_error,
)

GRAD_CHECK_MAX_ERROR = 1e-7
STABILITY_FRACTION = 0.5
# (minimum test accuracy, fraction of the points). The reference solution reaches 0.971 (0.962
# to 0.973 over seeds 0-4); a network whose first layer never learns (dx = 0) still reaches 0.900,
# so full credit starts above that.
ACCURACY_BANDS = ((0.93, 1.0), (0.80, 2.0 / 3.0), (0.50, 1.0 / 3.0))
TRAINING = {"hidden": 64, "epochs": 20, "lr": 0.2, "batch_size": 32, "seed": 0}


def require(submission: Any, *names: str) -> None:
    """Fail with a clear message when the submission does not define one of `names`."""
    missing = [name for name in names if not submission.has(name)]
    assert not missing, (
        f"the submission does not define {', '.join(missing)}: "
        "check that the cell defining it runs without an error"
    )


def check_gradient(actual: np.ndarray, numerical: np.ndarray, name: str) -> None:
    """Assert that an analytic gradient matches a numerical one to GRAD_CHECK_MAX_ERROR."""
    error = relative_error(actual, numerical)
    assert error < GRAD_CHECK_MAX_ERROR, (
        f"{name}: relative error against a numerical gradient is {error:.1e} "
        f"(must be below {GRAD_CHECK_MAX_ERROR:.0e})"
    )


def count_not_finite(array: np.ndarray) -> int:
    """Return how many entries are nan or inf."""
    return int(np.size(array) - np.count_nonzero(np.isfinite(array)))


def large_logits_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose rows sit near +1000, -1000 or 0: a naive softmax gives inf or nan."""
    rng = np.random.default_rng(seed)
    offsets = np.array([1000.0, -1000.0, 0.0, 1000.0, -1000.0, 500.0])
    logits = rng.normal(scale=5.0, size=(6, 4)) + offsets[:, None]
    return logits, rng.integers(0, 4, size=6)


def moderate_logits_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary logits of shape (7, 5) with integer labels."""
    rng = np.random.default_rng(seed)
    return rng.normal(scale=2.0, size=(7, 5)), rng.integers(0, 5, size=7)


def call_softmax(submission: Any, logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Call the student's softmax_cross_entropy and validate the (loss, dlogits) it returns."""
    result = expect_tuple(submission.softmax_cross_entropy(logits, y), "softmax_cross_entropy", 2)
    loss = expect_scalar(result[0], "loss")
    dlogits = expect_array(result[1], "dlogits", shape=logits.shape)
    return loss, dlogits


@points(10)
def test_linear_forward(submission: Any, reference: Any) -> None:
    """linear_forward flattens each example and computes x @ w + b."""
    require(submission, "linear_forward")
    rng = np.random.default_rng(1001)
    for case, x_shape, outputs in (("3-d x", (4, 3, 5), 6), ("4-d x", (3, 2, 3, 2), 5)):
        x = rng.normal(size=x_shape)
        w = rng.normal(size=(int(np.prod(x_shape[1:])), outputs))
        b = rng.normal(size=outputs)
        name = f"linear_forward output ({case})"
        out = expect_array(submission.linear_forward(x, w, b), name, shape=(x_shape[0], outputs))
        assert_close(out, reference.linear_forward(x, w, b), name)


@points(15)
def test_linear_backward(submission: Any, reference: Any, numerical_gradient: Any) -> None:
    """linear_backward matches a numerical gradient and the reference; dx has the shape of x."""
    require(submission, "linear_backward")
    rng = np.random.default_rng(1002)
    x, w, b = rng.normal(size=(4, 3, 5)), rng.normal(size=(15, 6)), rng.normal(size=6)
    dout = rng.normal(size=(4, 6))
    result = expect_tuple(submission.linear_backward(dout, x, w), "linear_backward", 3)
    dx = expect_array(result[0], "dx", shape=x.shape)
    dw = expect_array(result[1], "dw", shape=w.shape)
    db = expect_array(result[2], "db", shape=b.shape)

    forward = reference.linear_forward
    check_gradient(dx, numerical_gradient(lambda v: forward(v, w, b), x, dout), "dx")
    check_gradient(dw, numerical_gradient(lambda v: forward(x, v, b), w, dout), "dw")
    check_gradient(db, numerical_gradient(lambda v: forward(x, w, v), b, dout), "db")
    for name, actual, expected in zip(
        ("dx", "dw", "db"), (dx, dw, db), reference.linear_backward(dout, x, w), strict=True
    ):
        assert_close(actual, expected, name)


@points(5)
def test_relu_forward(submission: Any, reference: Any) -> None:
    """relu_forward is max(x, 0) elementwise on any shape."""
    require(submission, "relu_forward")
    x = np.random.default_rng(1003).normal(size=(3, 4, 5))
    x[0, 0, :2] = 0.0
    out = expect_array(submission.relu_forward(x), "relu_forward output", shape=x.shape)
    assert_close(out, reference.relu_forward(x), "relu_forward output")


@points(10)
def test_relu_backward(submission: Any, reference: Any) -> None:
    """relu_backward passes dout where x > 0 and blocks it elsewhere."""
    require(submission, "relu_backward")
    rng = np.random.default_rng(1004)
    x, dout = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    dx = expect_array(submission.relu_backward(dout, x), "relu_backward output", shape=x.shape)
    assert_close(dx, reference.relu_backward(dout, x), "relu_backward output")


@points(5)
def test_sigmoid_forward(submission: Any, credit: Any, reference: Any) -> None:
    """sigmoid_forward is correct, and finite for |x| up to 800 (half credit if only the former)."""
    require(submission, "sigmoid_forward")
    x = np.random.default_rng(1005).normal(scale=3.0, size=(4, 5))
    out = expect_array(submission.sigmoid_forward(x), "sigmoid_forward output", shape=x.shape)
    assert_close(out, reference.sigmoid_forward(x), "sigmoid_forward output")

    x_large = np.array([[-800.0, -710.0, -100.0, -30.0], [30.0, 100.0, 710.0, 800.0]])
    name = "sigmoid_forward output for large |x|"
    out_large = expect_array(submission.sigmoid_forward(x_large), name, shape=x_large.shape)
    bad = count_not_finite(out_large)
    if bad:
        credit.give(
            STABILITY_FRACTION,
            f"correct for moderate inputs, but {bad} of {out_large.size} outputs are nan or inf "
            "for inputs with |x| up to 800: only exponentiate non-positive numbers",
        )
        return
    try:
        assert_close(out_large, reference.sigmoid_forward(x_large), name)
    except AssertionError as exc:
        credit.give(STABILITY_FRACTION, f"correct for moderate inputs, but {exc}")


@points(10)
def test_sigmoid_backward(submission: Any, reference: Any) -> None:
    """sigmoid_backward is dout * s * (1 - s) with s = sigmoid(x)."""
    require(submission, "sigmoid_backward")
    rng = np.random.default_rng(1006)
    x = rng.normal(scale=3.0, size=(3, 6))
    x[0, :2] = (-30.0, 30.0)
    dout = rng.normal(size=x.shape)
    name = "sigmoid_backward output"
    dx = expect_array(submission.sigmoid_backward(dout, x), name, shape=x.shape)
    assert_close(dx, reference.sigmoid_backward(dout, x), name)


@points(10)
def test_softmax_cross_entropy_loss(submission: Any, credit: Any, reference: Any) -> None:
    """The loss is the batch mean, and stable for logits near +-1000 (half credit if not)."""
    require(submission, "softmax_cross_entropy")
    logits, y = moderate_logits_case(1007)
    loss, _ = call_softmax(submission, logits, y)
    expected = reference.softmax_cross_entropy(logits, y)[0]
    assert_close(np.array([loss]), np.array([expected]), "loss")

    logits, y = large_logits_case(1008)
    loss, _ = call_softmax(submission, logits, y)
    if not np.isfinite(loss):
        credit.give(
            STABILITY_FRACTION,
            "correct for moderate logits, but the loss is nan or inf for logits near 1000 "
            "or -1000: subtract the row maximum before exponentiating",
        )
        return
    try:
        expected = reference.softmax_cross_entropy(logits, y)[0]
        assert_close(np.array([loss]), np.array([expected]), "loss for large logits")
    except AssertionError as exc:
        credit.give(STABILITY_FRACTION, f"correct for moderate logits, but {exc}")


@points(10)
def test_softmax_cross_entropy_gradient(submission: Any, credit: Any, reference: Any) -> None:
    """dlogits is (softmax - one_hot) / N; stable for logits near +-1000 (half credit if not)."""
    require(submission, "softmax_cross_entropy")
    logits, y = moderate_logits_case(1009)
    _, dlogits = call_softmax(submission, logits, y)
    assert_close(dlogits, reference.softmax_cross_entropy(logits, y)[1], "dlogits")

    logits, y = large_logits_case(1010)
    _, dlogits = call_softmax(submission, logits, y)
    bad = count_not_finite(dlogits)
    if bad:
        credit.give(
            STABILITY_FRACTION,
            f"correct for moderate logits, but {bad} of {dlogits.size} entries of dlogits are "
            "nan or inf for logits near 1000 or -1000: subtract the row maximum first",
        )
        return
    try:
        expected = reference.softmax_cross_entropy(logits, y)[1]
        assert_close(dlogits, expected, "dlogits for large logits")
    except AssertionError as exc:
        credit.give(STABILITY_FRACTION, f"correct for moderate logits, but {exc}")


@points(10)
def test_two_layer_net_gradient(submission: Any, reference: Any, numerical_gradient: Any) -> None:
    """Chaining the student's functions gives a dW1 that matches a numerical gradient."""
    names = ("linear_forward", "relu_forward", "softmax_cross_entropy")
    require(submission, *names, "linear_backward", "relu_backward")
    rng = np.random.default_rng(1011)
    x, y = rng.normal(size=(5, 2, 3)), rng.integers(0, 4, size=5)
    w1, b1 = rng.normal(size=(6, 7)), rng.normal(size=7)
    w2, b2 = rng.normal(size=(7, 4)), rng.normal(size=4)

    hidden_in = expect_array(
        submission.linear_forward(x, w1, b1), "first linear_forward output", shape=(5, 7)
    )
    hidden = expect_array(submission.relu_forward(hidden_in), "relu_forward output", shape=(5, 7))
    scores = expect_array(
        submission.linear_forward(hidden, w2, b2), "second linear_forward output", shape=(5, 4)
    )
    _, dscores = call_softmax(submission, scores, y)
    grads = expect_tuple(submission.linear_backward(dscores, hidden, w2), "linear_backward", 3)
    dhidden = expect_array(grads[0], "dx of the second linear_backward", shape=hidden.shape)
    dhidden_in = expect_array(
        submission.relu_backward(dhidden, hidden_in), "relu_backward output", shape=hidden_in.shape
    )
    grads = expect_tuple(submission.linear_backward(dhidden_in, x, w1), "linear_backward", 3)
    dw1 = expect_array(grads[1], "dW1", shape=w1.shape)

    numerical = numerical_gradient(lambda v: reference.two_layer_loss(x, y, v, b1, w2, b2), w1)
    check_gradient(dw1, numerical, "dW1 of the two-layer network")


@points(15)
@limits(call_timeout_s=60)
def test_training_on_digits(submission: Any, credit: Any, digits_split: Any) -> None:
    """A two-layer net trained with the student's functions classifies held-out digits."""
    names = ("linear_forward", "linear_backward", "relu_forward", "relu_backward")
    require(submission, *names, "softmax_cross_entropy")
    predictions = submission.run(
        "train_two_layer_net",
        digits_split.x_train,
        digits_split.y_train,
        digits_split.x_test,
        **TRAINING,
    )
    predicted = expect_array(predictions, "predicted labels", shape=digits_split.y_test.shape)
    accuracy = float(np.mean(predicted == digits_split.y_test))
    for threshold, fraction in ACCURACY_BANDS:
        if accuracy >= threshold:
            credit.give(fraction, f"test accuracy {accuracy:.3f} (at least {threshold:.2f})")
            return
    lowest = ACCURACY_BANDS[-1][0]
    raise AssertionError(f"test accuracy {accuracy:.3f} is below {lowest:.2f}")
