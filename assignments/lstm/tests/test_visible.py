"""Visible tests for the lstm assignment: parameter shapes and steps you can work out by hand.

They call the notebook's given helpers `parameter_shapes` and `run_on_arrays`, which build your
LSTMCell; keep those helpers as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_tuple, points

SATURATED = 100.0  # sigmoid(100) = 1 and sigmoid(-100) = 0 to double precision; tanh likewise


def zero_weights(input_size: int, hidden_size: int) -> dict[str, np.ndarray]:
    """All four parameters zero: every gate pre-activation is then just the biases."""
    return {
        "weight_ih": np.zeros((4 * hidden_size, input_size)),
        "weight_hh": np.zeros((4 * hidden_size, hidden_size)),
        "bias_ih": np.zeros(4 * hidden_size),
        "bias_hh": np.zeros(4 * hidden_size),
    }


def gate_biases(hidden_size: int, i: float, f: float, g: float, o: float) -> np.ndarray:
    """A (4H,) bias in the gate order i, f, g, o, each block filled with one value."""
    return np.repeat(np.array([i, f, g, o]), hidden_size)


def run(
    submission: Any, weights: dict[str, np.ndarray], xs: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Call the notebook's run_on_arrays and check that it returns (hs, cs) of shape (T, N, H)."""
    shape = (xs.shape[0], *h0.shape)
    hs, cs = expect_tuple(submission.run_on_arrays(weights, xs, h0, c0), "run_on_arrays", 2)
    return expect_array(hs, "hs", shape=shape), expect_array(cs, "cs", shape=shape)


@points(1)
def test_parameter_shapes(submission: Any) -> None:
    """LSTMCell(3, 5) has weight_ih (20, 3), weight_hh (20, 5), bias_ih (20,), bias_hh (20,)."""
    shapes = submission.parameter_shapes(3, 5)
    expected = {"weight_ih": [20, 3], "weight_hh": [20, 5], "bias_ih": [20], "bias_hh": [20]}
    assert type(shapes) is dict, "parameter_shapes should return a dict"
    assert shapes == expected, f"the parameters of LSTMCell(3, 5) are {shapes}, expected {expected}"


@points(1)
def test_one_step_gate_by_gate(submission: Any) -> None:
    """Zero weights and biases (only in bias_hh) giving i = 0.5, f = 0, g = -1, o = 0.5.

    From c0 = 1: c1 = f * c0 + i * g = -0.5 and h1 = o * tanh(c1) = 0.5 * tanh(-0.5).
    A swapped gate, a sigmoid for g, a forget gate of the wrong sign or an unused bias_hh
    all give something else.
    """
    weights = zero_weights(2, 3)
    weights["bias_hh"] = gate_biases(3, i=0.0, f=-SATURATED, g=-SATURATED, o=0.0)
    xs, h0, c0 = np.ones((1, 2, 2)), np.ones((2, 3)), np.ones((2, 3))
    hs, cs = run(submission, weights, xs, h0, c0)
    assert_close(cs, np.full((1, 2, 3), -0.5), "c after one step")
    assert_close(hs, np.full((1, 2, 3), 0.5 * np.tanh(-0.5)), "h after one step")


@points(1)
def test_memory_is_kept_when_forget_gate_is_open(submission: Any) -> None:
    """With f = 1, i = 0 and o = 1 the cell keeps c0 for 3 steps and outputs h = tanh(c0)."""
    weights = zero_weights(1, 2)
    weights["bias_ih"] = gate_biases(2, i=-SATURATED, f=SATURATED, g=0.0, o=SATURATED)
    xs = np.array([[[1.0]], [[-2.0]], [[3.0]]])
    h0, c0 = np.zeros((1, 2)), np.array([[0.7, -1.5]])
    hs, cs = run(submission, weights, xs, h0, c0)
    assert_close(cs, np.repeat(c0[None], 3, axis=0), "c over 3 steps")
    assert_close(hs, np.repeat(np.tanh(c0)[None], 3, axis=0), "h over 3 steps")


@points(1)
def test_candidate_uses_input_and_hidden_state(submission: Any) -> None:
    """One unit: z_g = 1 * x + 2 * h0 = 0.5 + 0.5 = 1, with i = 1, f = 0, o = 1.

    So c1 = tanh(1) and h1 = tanh(tanh(1)): this checks which rows of weight_ih and weight_hh
    feed the candidate g (rows 2H:3H).
    """
    weights = zero_weights(1, 1)
    weights["weight_ih"] = np.array([[0.0], [0.0], [1.0], [0.0]])
    weights["weight_hh"] = np.array([[0.0], [0.0], [2.0], [0.0]])
    weights["bias_ih"] = gate_biases(1, i=SATURATED, f=-SATURATED, g=0.0, o=SATURATED)
    xs, h0, c0 = np.array([[[0.5]]]), np.array([[0.25]]), np.array([[3.0]])
    hs, cs = run(submission, weights, xs, h0, c0)
    assert_close(cs, np.array([[[np.tanh(1.0)]]]), "c after one step")
    assert_close(hs, np.array([[[np.tanh(np.tanh(1.0))]]]), "h after one step")
