"""Visible tests for the perceptron assignment: examples small enough to work out by hand.

The label test calls the notebook's given helper `training_error`; keep it as it is. The hidden
tests check the same rules on other data, and more.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_scalar, expect_tuple, points

GATE_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def train(submission: Any, X: np.ndarray, y: np.ndarray, epochs: int) -> tuple[np.ndarray, float, list[int | float]]:
    """Call train_perceptron with lr = 1 and check the shapes of what it returns."""
    w, b, curve = expect_tuple(submission.train_perceptron(X, y, epochs, 1.0), "train_perceptron", 3)
    w = expect_array(w, "w", shape=(X.shape[1],))
    curve = expect_array(np.asarray(curve) if type(curve) is list else curve, "mistakes_per_epoch", shape=(epochs,))
    return w, expect_scalar(b, "b"), [int(v) if np.isfinite(v) and v == int(v) else float(v) for v in curve]


@points(1)
def test_predict_small_example(submission: Any) -> None:
    """w = (1, 1), b = 0: scores 3, -2, 0, 0 give +1, -1, +1, +1 (the boundary is +1)."""
    X = np.array([[1.0, 2.0], [-1.0, -1.0], [2.0, -2.0], [0.0, 0.0]])
    labels = expect_array(submission.perceptron_predict(X, np.array([1.0, 1.0]), 0.0), "predictions", shape=(4,))
    assert_close(labels, np.array([1.0, -1.0, 1.0, 1.0]), "predictions")


@points(1)
def test_update_small_example(submission: Any) -> None:
    """w = (1, -1), b = 0, lr = 0.5. x = (1, 1) is on the boundary: a mistake for y = +1 and for y = -1.
    x = (2, 0) with y = +1 has score 2 > 0: no change."""
    w, x = np.array([1.0, -1.0]), np.array([1.0, 1.0])
    for y, w_expected, b_expected in ((1, [1.5, -0.5], 0.5), (-1, [0.5, -1.5], -0.5)):
        w_new, b_new = expect_tuple(submission.perceptron_update(w, 0.0, x, y, 0.5), "perceptron_update", 2)
        assert_close(expect_array(w_new, "w_new", shape=(2,)), np.array(w_expected), f"w_new for y = {y}")
        assert_close(np.array([expect_scalar(b_new, "b_new")]), np.array([b_expected]), f"b_new for y = {y}")
    w_new, b_new = expect_tuple(submission.perceptron_update(w, 0.0, np.array([2.0, 0.0]), 1, 0.5), "update", 2)
    assert_close(expect_array(w_new, "w_new", shape=(2,)), w, "w_new for a correctly classified point")
    assert_close(np.array([expect_scalar(b_new, "b_new")]), np.array([0.0]), "b_new for a correctly classified point")


@points(1)
def test_train_on_and(submission: Any) -> None:
    """AND with labels -1, -1, -1, +1, 10 epochs, lr = 1: mistakes 2, 3, 3, 2, 2, 3, 2, 1, 0, 0,
    then w = (3, 2) and b = -4."""
    w, b, curve = train(submission, GATE_INPUTS, np.array([-1, -1, -1, 1]), 10)
    assert curve == [2, 3, 3, 2, 2, 3, 2, 1, 0, 0], (
        f"mistakes_per_epoch is {curve}, expected [2, 3, 3, 2, 2, 3, 2, 1, 0, 0]"
    )
    assert_close(w, np.array([3.0, 2.0]), "w")
    assert_close(np.array([b]), np.array([-4.0]), "b")


@points(1)
def test_xor_runs_all_its_epochs(submission: Any) -> None:
    """XOR with labels -1, +1, +1, -1: every point is a mistake and the weights cycle back to 0."""
    w, b, curve = train(submission, GATE_INPUTS, np.array([-1, 1, 1, -1]), 5)
    assert curve == [4, 4, 4, 4, 4], f"mistakes_per_epoch is {curve}, expected [4, 4, 4, 4, 4]"
    assert_close(np.append(w, b), np.zeros(3), "w and b after 5 epochs")


@points(1)
def test_zero_one_labels_raise_value_error(submission: Any) -> None:
    """Labels 0 and 1 raise a ValueError whose message mentions -1 and +1."""
    outcome = submission.training_error(GATE_INPUTS, np.array([0, 0, 0, 1]))
    assert type(outcome) is dict and {"type", "message"} <= set(outcome), (
        "training_error() should return a dict: it is given in the notebook; restore it if you changed it"
    )
    assert outcome["type"] is not None, "train_perceptron accepted labels 0 and 1: raise ValueError"
    assert outcome.get("is_value_error") is True, f"train_perceptron raised {outcome['type']}, not ValueError"
    assert "-1" in outcome["message"], f"the message {outcome['message']!r} should say that labels must be -1 or +1"
