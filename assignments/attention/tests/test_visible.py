"""Visible tests for the attention assignment: cases you can work out by hand, and the parameter layout.

They call your causal_mask and padding_mask and the notebook's given helpers attention_on_arrays
and parameter_shapes; keep those helpers as they are. The hidden tests compare everything with
PyTorch on random inputs and weights, and train your block.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_tuple, points


def attention(submission: Any, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: Any = None) -> tuple:
    """The notebook's attention_on_arrays, checked to return (out, weights) of the right shapes."""
    out, weights = expect_tuple(submission.attention_on_arrays(q, k, v, mask), "attention_on_arrays", 2)
    out = expect_array(out, "out", shape=(*q.shape[:-1], v.shape[-1]))
    return out, expect_array(weights, "weights", shape=(*q.shape[:-1], k.shape[-2]))


@points(1)
def test_attention_by_hand(submission: Any) -> None:
    """d_k = 4, so the scale is 1/2. Query 0 = (2, 0, 0, 0) scores the keys (1, 0, 0, 0) and 0 as
    (1, 0); query 1 = 0 scores both 0. With values (1, 0) and (0, 1), out equals the weights."""
    q = np.array([[2.0, 0, 0, 0], [0, 0, 0, 0]])
    k = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]])
    v = np.eye(2)
    e = math.e
    expected = np.array([[e / (e + 1), 1 / (e + 1)], [0.5, 0.5]])
    out, weights = attention(submission, q, k, v)
    assert_close(weights, expected, "the weights (each row: one query, softmax over the keys, scale 1/sqrt(d_k))")
    assert_close(out, expected, "out = weights @ v")


@points(1)
def test_masks_by_hand(submission: Any) -> None:
    """causal_mask(3) is the lower triangle with the diagonal; padding_mask([2, 0], 3) is (2, 1, 1, 3)."""
    causal = submission.causal_mask(3)
    assert type(causal) is np.ndarray and causal.dtype == np.bool_, "causal_mask should return a bool tensor"
    expected = np.array([[True, False, False], [True, True, False], [True, True, True]])
    assert causal.shape == (3, 3) and np.array_equal(causal, expected), (
        f"causal_mask(3) is {causal.tolist()}, expected {expected.tolist()}"
    )
    padding = submission.padding_mask([2, 0], 3)
    assert type(padding) is np.ndarray and padding.dtype == np.bool_, "padding_mask should return a bool tensor"
    expected = np.array([True, True, False, False, False, False]).reshape(2, 1, 1, 3)
    assert padding.shape == (2, 1, 1, 3) and np.array_equal(padding, expected), (
        f"padding_mask([2, 0], 3) is {padding.tolist()} of shape {padding.shape}, expected {expected.tolist()}"
    )


@points(1)
def test_masked_positions_and_a_fully_masked_row(submission: Any) -> None:
    """All scores 0, so the weights are uniform over the allowed keys: (1/2, 0, 1/2) for the mask
    (True, False, True), and all zero, with output 0, for a query that may attend nothing."""
    q, k = np.zeros((2, 2)), np.zeros((3, 2))
    v = np.array([[1.0, 2.0], [10.0, 20.0], [3.0, 4.0]])
    mask = np.array([[True, False, True], [False, False, False]])
    out, weights = attention(submission, q, k, v, mask)
    assert weights[0, 1] == 0.0, "the masked position of query 0 should have weight exactly 0"
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(out)), (
        "the weights or the output contain nan: a fully masked row must give weights 0 and output 0"
    )
    assert_close(weights[0], np.array([0.5, 0.0, 0.5]), "the weights of query 0")
    assert np.all(weights[1] == 0.0), (
        f"query 1 may attend no key, so its weights should be all 0, not {weights[1].tolist()} (a large negative "
        "number in place of -inf, for instance, gives such a row uniform weights)"
    )
    assert_close(out, np.array([[2.0, 3.0], [0.0, 0.0]]), "out")


@points(1)
def test_parameter_shapes(submission: Any) -> None:
    """MultiHeadAttention(8, 2) and EncoderBlock(8, 2, 16) have the parameters of PyTorch's modules."""
    shapes = submission.parameter_shapes(8, 2, 16)
    attention = {"in_proj_weight": [24, 8], "in_proj_bias": [24], "out_proj.weight": [8, 8], "out_proj.bias": [8]}
    block = {f"self_attn.{name}": shape for name, shape in attention.items()}
    block |= {"linear1.weight": [16, 8], "linear1.bias": [16], "linear2.weight": [8, 16], "linear2.bias": [8]}
    block |= {f"{norm}.{part}": [8] for norm in ("norm1", "norm2") for part in ("weight", "bias")}
    assert type(shapes) is dict and set(shapes) == {"MultiHeadAttention", "EncoderBlock"}, (
        "parameter_shapes should return a dict with the keys MultiHeadAttention and EncoderBlock: "
        "it is given in the notebook; restore it if you changed it"
    )
    assert shapes["MultiHeadAttention"] == attention, (
        f"the parameters of MultiHeadAttention(8, 2) are {shapes['MultiHeadAttention']}, expected {attention}"
    )
    assert shapes["EncoderBlock"] == block, (
        f"the parameters of EncoderBlock(8, 2, 16) are {shapes['EncoderBlock']}, expected {block}"
    )
