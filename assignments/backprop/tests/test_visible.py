"""Visible tests for the backprop assignment: shapes and tiny examples you can check by hand."""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_scalar, expect_tuple, points


@points(1)
def test_linear_forward_small_example(submission: Any) -> None:
    """Each (2, 2) example is flattened to 4 values, multiplied by w, and b is added."""
    x = np.arange(8.0).reshape(2, 2, 2)
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    b = np.array([10.0, 20.0])
    out = expect_array(submission.linear_forward(x, w, b), "linear_forward output", shape=(2, 2))
    assert_close(out, np.array([[12.0, 24.0], [20.0, 32.0]]), "linear_forward output")


@points(1)
def test_linear_backward_shapes(submission: Any) -> None:
    """dx has the shape of x (not flattened), dw the shape of w and db the shape of b."""
    x, w, dout = np.ones((4, 3, 2)), np.ones((6, 5)), np.ones((4, 5))
    result = expect_tuple(submission.linear_backward(dout, x, w), "linear_backward", 3)
    expect_array(result[0], "dx", shape=(4, 3, 2))
    expect_array(result[1], "dw", shape=(6, 5))
    expect_array(result[2], "db", shape=(5,))


@points(1)
def test_linear_backward_small_example(submission: Any) -> None:
    """x = [[1, 2]], w = [[3], [4]], dout = [[1]] give dx = [[3, 4]], dw = [[1], [2]], db = [1]."""
    x, w, dout = np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]), np.array([[1.0]])
    dx, dw, db = expect_tuple(submission.linear_backward(dout, x, w), "linear_backward", 3)
    assert_close(expect_array(dx, "dx", shape=(1, 2)), np.array([[3.0, 4.0]]), "dx")
    assert_close(expect_array(dw, "dw", shape=(2, 1)), np.array([[1.0], [2.0]]), "dw")
    assert_close(expect_array(db, "db", shape=(1,)), np.array([1.0]), "db")


@points(1)
def test_relu_small_example(submission: Any) -> None:
    """ReLU zeroes negative entries; its gradient passes dout only where x > 0."""
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    out = expect_array(submission.relu_forward(x), "relu_forward output", shape=x.shape)
    assert_close(out, np.array([[0.0, 0.0, 0.5, 3.0]]), "relu_forward output")
    dout = np.array([[1.0, 2.0, 3.0, 4.0]])
    dx = expect_array(submission.relu_backward(dout, x), "relu_backward output", shape=x.shape)
    assert_close(dx, np.array([[0.0, 0.0, 3.0, 4.0]]), "relu_backward output")


@points(1)
def test_sigmoid_small_example(submission: Any) -> None:
    """sigmoid(0) = 0.5, sigmoid(-x) = 1 - sigmoid(x), and the derivative at 0 is 0.25."""
    x = np.array([-2.0, 0.0, 2.0])
    out = expect_array(submission.sigmoid_forward(x), "sigmoid_forward output", shape=(3,))
    assert_close(out, np.array([0.11920292202211755, 0.5, 0.8807970779778823]), "sigmoid_forward")
    dx = expect_array(submission.sigmoid_backward(np.ones(3), x), "sigmoid_backward", shape=(3,))
    assert_close(dx[1:2], np.array([0.25]), "sigmoid_backward at x = 0")


@points(1)
def test_sigmoid_large_inputs_are_finite(submission: Any) -> None:
    """sigmoid_forward must not return nan or inf for very large |x|."""
    x = np.array([-1000.0, 1000.0])
    out = expect_array(submission.sigmoid_forward(x), "sigmoid_forward output", shape=(2,))
    assert np.all(np.isfinite(out)), "sigmoid_forward returns nan or inf for x = -1000 or 1000"
    assert_close(out, np.array([0.0, 1.0]), "sigmoid_forward for x = -1000 and 1000")


@points(1)
def test_softmax_uniform_logits(submission: Any) -> None:
    """Equal logits over 4 classes: loss = log(4) and dlogits = (1/4 - one_hot) / N."""
    logits, y = np.zeros((2, 4)), np.array([0, 3])
    result = expect_tuple(submission.softmax_cross_entropy(logits, y), "softmax_cross_entropy", 2)
    loss = expect_scalar(result[0], "loss")
    dlogits = expect_array(result[1], "dlogits", shape=(2, 4))
    assert_close(np.array([loss]), np.array([np.log(4.0)]), "loss")
    expected = np.full((2, 4), 0.25)
    expected[0, 0] -= 1.0
    expected[1, 3] -= 1.0
    assert_close(dlogits, expected / 2.0, "dlogits")


@points(1)
def test_softmax_large_logits_are_finite(submission: Any) -> None:
    """Two equal logits of 1000: softmax is still [0.5, 0.5], so the loss is log(2), not nan."""
    logits, y = np.array([[1000.0, 1000.0]]), np.array([0])
    result = expect_tuple(submission.softmax_cross_entropy(logits, y), "softmax_cross_entropy", 2)
    loss = expect_scalar(result[0], "loss")
    dlogits = expect_array(result[1], "dlogits", shape=(1, 2))
    assert np.isfinite(loss), "the loss is nan or inf for logits of 1000: subtract the row maximum"
    assert_close(np.array([loss]), np.array([np.log(2.0)]), "loss for logits of 1000")
    assert_close(dlogits, np.array([[-0.5, 0.5]]), "dlogits for logits of 1000")
