"""Hidden tests for the attention assignment: scaled dot-product attention and its masks against
torch.nn.functional.scaled_dot_product_attention, multi-head attention against
torch.nn.MultiheadAttention, the pre-LN encoder block against torch.nn.TransformerEncoderLayer,
then training the block to reverse digit sequences. NOTES.md explains every threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import expect_array, expect_tuple, limits, points

# Everything runs in float64, like the reference: a correct implementation agrees to about 1e-15,
# every mistake measured is off by more than 0.01 (NOTES.md).
RTOL, ATOL = 1e-4, 1e-6
# (smallest fraction of held-out digits right, fraction of the points). The reference gets every
# digit right on every grading seed tried (NOTES.md); guessing gets 0.1.
ACCURACY_BANDS = ((0.95, 1.0), (0.8, 2.0 / 3.0), (0.5, 1.0 / 3.0))
REVERSAL = {"d_model": 32, "d_ff": 64, "train": 2048, "test": 500}
TRAINING = {"steps": 200, "batch_size": 64, "lr": 3e-3, "seed": 0}
N_HEADS = 2
# Shapes of the scaled_dot_product_attention cases: (*leading, L, S, d_k, d_v).
PLAIN_SHAPE, CAUSAL_SHAPE = (2, 3, 4, 6, 5, 7), (2, 3, 5, 5, 4, 3)
PADDING_SHAPE, FULLY_MASKED_SHAPE = (3, 2, 4, 6, 4, 3), (3, 2, 4, 5, 3, 2)
# Seeds for each test's data, mixed with the grading seed (conftest._rng).
PLAIN, GRADIENTS, CAUSAL, PADDING, FULLY_MASKED = 1, 2, 3, 4, 5
SELF_ATTENTION, CROSS_ATTENTION, ATTENTION_GRADIENTS = 11, 12, 13
BLOCK, BLOCK_GRADIENTS, DROPOUT = 21, 22, 23
LOSS_WEIGHTS = 100  # added to a test's seed for the weights of its loss


def require(submission: Any, *names: str) -> None:
    """Fail with a clear message when the submission does not define one of `names`."""
    missing = [name for name in names if not submission.has(name)]
    assert not missing, (
        f"the submission does not define {', '.join(missing)}: check that the cell defining it runs without an error"
    )


def close(got: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL))


def difference(got: np.ndarray, expected: np.ndarray) -> str:
    """How many entries differ and by how much at most, without the values; "" when they agree."""
    wrong = ~np.isclose(got, expected, rtol=RTOL, atol=ATOL)
    if not wrong.any():
        return ""
    error = float(np.max(np.abs(got - expected)))
    return f"{int(wrong.sum())} of {got.size} entries differ (largest absolute error {error:.3g})"


def expect_finite(value: np.ndarray, name: str) -> np.ndarray:
    bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
    assert not bad, f"{name} contains {bad} entries that are nan or inf (out of {value.size})"
    return value


def pair(result: Any, what: str, out_shape: tuple[int, ...], weights_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Validate an (out, weights) reply; both finite, of the given shapes."""
    out, weights = expect_tuple(result, what, 2)
    out = expect_finite(expect_array(out, f"the output of {what}", shape=out_shape), f"the output of {what}")
    weights = expect_array(weights, f"the weights of {what}", shape=weights_shape)
    return out, expect_finite(weights, f"the weights of {what}")


def check_weights_then_output(
    got: tuple[np.ndarray, np.ndarray],
    expected: tuple[np.ndarray, np.ndarray],
    mistakes: list[tuple[str, Any]],
    what: str,
    hints: tuple[str, str],
) -> None:
    """Compare the weights first, then the output; name the mistake a wrong answer matches.

    `mistakes` holds (hint, weights) or (hint, (out, weights)) pairs; `hints` the generic advice
    for wrong weights and for right weights with a wrong output.
    """
    (out, weights), (expected_out, expected_weights) = got, expected
    candidates = [(hint, value if isinstance(value, tuple) else (None, value)) for hint, value in mistakes]
    wrong_weights = difference(weights, expected_weights)
    if wrong_weights:
        for hint, (_, mistaken_weights) in candidates:
            if close(weights, mistaken_weights):
                raise AssertionError(f"{what}: {hint}")
        raise AssertionError(f"{what}: the attention weights are wrong ({wrong_weights}): {hints[0]}")
    wrong_out = difference(out, expected_out)
    if wrong_out:
        for hint, (mistaken_out, _) in candidates:
            if mistaken_out is not None and close(out, mistaken_out):
                raise AssertionError(f"{what}: {hint}")
        raise AssertionError(f"{what}: the attention weights are right, the output is not ({wrong_out}): {hints[1]}")


def gradients_from(
    result: Any, group: str | None, expected: dict[str, np.ndarray], what: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Validate a *_gradients reply; its gradients (of `group`), shaped like `expected`, and which of
    them received no gradient."""
    if type(result) is not dict or "no_gradient" not in result or (group or "gradients") not in result:
        raise AssertionError(f"{what}: the sandbox sent back a malformed reply")
    gradients = result[group or "gradients"]
    if type(gradients) is not dict:
        raise AssertionError(f"{what}: the sandbox sent back gradients that are not a dict")
    got = {
        name: expect_array(gradients.get(name), f"the gradient by {name}", shape=value.shape)
        for name, value in expected.items()
    }
    no_gradient = result["no_gradient"]
    if type(no_gradient) is not list or not all(type(item) is str for item in no_gradient):
        raise AssertionError(f"{what}: the sandbox sent back a no_gradient entry that is not a list of names")
    return got, [name for name in expected if name in no_gradient]


def assert_gradients_match(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], reference: str) -> None:
    """Fail with one message naming every gradient that is off, without echoing the reference."""
    wrong = []
    for name, value in got.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            wrong.append(f"{name}: {bad} of {value.size} entries are nan or inf")
        elif differs := difference(value, expected[name]):
            wrong.append(f"{name}: {differs}")
    tolerance = f"rtol={RTOL:g}, atol={ATOL:g}"
    assert not wrong, f"gradients that differ from {reference}'s ({tolerance}): " + "; ".join(wrong)


def assert_all_have_gradients(no_gradient: list[str], where: str) -> None:
    assert not no_gradient, (
        f"{', '.join(no_gradient)} received no gradient: {where} does not use "
        f"{'it' if len(no_gradient) == 1 else 'them'}, or cuts the graph (.detach(), .data, torch.no_grad())"
    )


def expect_mask(reply: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if type(reply) is not dict or not {"dtype", "values"} <= set(reply):
        raise AssertionError(f"{name}: the sandbox sent back a malformed reply")
    assert reply["dtype"] == "bool", f"{name} should return a tensor of dtype torch.bool, not {reply['dtype']}"
    values = reply["values"]
    if type(values) is not np.ndarray or values.dtype != np.bool_:
        raise AssertionError(f"{name}: the sandbox sent back a malformed reply")
    assert values.shape == shape, f"{name} returned shape {values.shape}, expected {shape}"
    return values


# ---------------------------------------------------------------- Part 1: scaled dot-product attention

SDPA_HINTS = (
    "scores = q kᵀ / sqrt(d_k), softmax over the keys (the last axis), the mask applied to the scores before it",
    "out = weights @ v",
)


def check_attention(submission: Any, reference: Any, mistakes: Any, case: Any, what: str) -> None:
    require(submission, "scaled_dot_product_attention")
    expected = reference.attention(case)
    result = submission.run("attention", case.q, case.k, case.v, case.mask)
    got = pair(result, "scaled_dot_product_attention", expected[0].shape, expected[1].shape)
    check_weights_then_output(got, expected, mistakes.attention_weights(case), what, SDPA_HINTS)
    if case.mask is not None:
        masked = ~np.broadcast_to(case.mask, expected[1].shape)
        leaked = int(np.count_nonzero(got[1][masked]))
        assert not leaked, f"{what}: {leaked} masked positions have a weight that is not exactly 0 (use -inf)"


@points(10)
def test_attention_matches_reference(submission: Any, reference: Any, mistakes: Any, attention_case: Any) -> None:
    """q (2, 3, 4, 5), k (2, 3, 6, 5), v (2, 3, 6, 7), no mask: out and weights match PyTorch's."""
    case = attention_case(PLAIN, PLAIN_SHAPE)
    check_attention(submission, reference, mistakes, case, "attention without a mask")


@points(5)
def test_attention_gradients(submission: Any, reference: Any, attention_case: Any, loss_weights: Any) -> None:
    """Gradients of sum(out * A) + sum(weights * B) by q, k and v match PyTorch's."""
    require(submission, "scaled_dot_product_attention")
    case = attention_case(GRADIENTS, PLAIN_SHAPE)
    out_weight = loss_weights(GRADIENTS + LOSS_WEIGHTS, (*case.q.shape[:-1], case.v.shape[-1]))
    weights_weight = loss_weights(GRADIENTS + 2 * LOSS_WEIGHTS, (*case.q.shape[:-1], case.k.shape[-2]))
    expected = reference.attention_gradients(case, out_weight, weights_weight)
    result = submission.run("attention_gradients", case.q, case.k, case.v, None, out_weight, weights_weight)
    got, no_gradient = gradients_from(result, None, expected, "attention_gradients")
    assert_all_have_gradients(no_gradient, "scaled_dot_product_attention")
    assert_gradients_match(got, expected, "torch.nn.functional.scaled_dot_product_attention")


@points(5)
def test_causal_and_padding_masks(submission: Any) -> None:
    """causal_mask(5) is the lower triangle with the diagonal; padding_mask([3, 5, 0, 1], 5) has shape
    (4, 1, 1, 5) and is True before each length."""
    require(submission, "causal_mask", "padding_mask")
    lengths = [3, 5, 0, 1]
    reply = submission.run("masks", 5, lengths, 5)
    if type(reply) is not dict or not {"causal", "padding"} <= set(reply):
        raise AssertionError("masks: the sandbox sent back a malformed reply")
    causal = expect_mask(reply["causal"], "causal_mask(5)", (5, 5))
    lower = np.tril(np.ones((5, 5), dtype=bool))
    causal_hints = [
        (lower.T, "it is True above the diagonal: query i may attend keys 0 to i (j <= i), not the later ones"),
        (~lower, "it is inverted: True where a query may attend a key"),
        (np.tril(lower, -1), "the diagonal must be True: a query may attend its own position"),
    ]
    for mistaken, hint in causal_hints:
        assert not np.array_equal(causal, mistaken), f"causal_mask(5) is wrong: {hint}"
    assert np.array_equal(causal, lower), "causal_mask(5) is wrong: it should be True at [i, j] exactly when j <= i"
    padding = expect_mask(reply["padding"], "padding_mask([3, 5, 0, 1], 5)", (4, 1, 1, 5))
    expected = np.arange(5)[None, :] < np.array(lengths)[:, None]
    assert not np.array_equal(padding[:, 0, 0], ~expected), (
        "padding_mask([3, 5, 0, 1], 5) is inverted: True where a position holds a real token"
    )
    assert np.array_equal(padding[:, 0, 0], expected), (
        "padding_mask([3, 5, 0, 1], 5) is wrong: it should be True at [n, 0, 0, j] exactly when j < lengths[n]"
    )


@points(10)
def test_masked_attention_matches_reference(
    submission: Any, reference: Any, mistakes: Any, attention_case: Any
) -> None:
    """A causal mask (5, 5) and a padding mask (3, 1, 1, 6): out and weights match PyTorch's, and
    every masked position has weight exactly 0."""
    check_attention(
        submission, reference, mistakes, attention_case(CAUSAL, CAUSAL_SHAPE, "causal"), "attention with a causal mask"
    )
    check_attention(
        submission,
        reference,
        mistakes,
        attention_case(PADDING, PADDING_SHAPE, "padding"),
        "attention with a padding mask",
    )


@points(5)
def test_fully_masked_row_is_zero(submission: Any, attention_case: Any, loss_weights: Any) -> None:
    """A query that may attend no key gets weights 0 and output 0, with no nan anywhere (gradients too)."""
    require(submission, "scaled_dot_product_attention")
    case = attention_case(FULLY_MASKED, FULLY_MASKED_SHAPE, "fully_masked")
    result = submission.run("attention", case.q, case.k, case.v, case.mask)
    out, weights = expect_tuple(result, "scaled_dot_product_attention", 2)
    out = expect_array(out, "the output", shape=(*case.q.shape[:-1], case.v.shape[-1]))
    weights = expect_array(weights, "the weights", shape=case.mask.shape)
    empty = ~case.mask.any(axis=-1)
    bad = int(np.count_nonzero(~np.isfinite(out[empty])) + np.count_nonzero(~np.isfinite(weights[empty])))
    assert not bad, (
        f"{bad} entries of the output and weights of fully masked rows (queries that may attend no key) are "
        "nan or inf: such a row must have weights 0 and output 0 (after the softmax, set the weights of the "
        "masked positions to 0)"
    )
    expect_finite(out, "the output of the rows that are not fully masked")
    expect_finite(weights, "the weights of the rows that are not fully masked")
    nonzero = int(np.count_nonzero(np.any(weights[empty] != 0, axis=-1)))
    assert not nonzero, (
        f"{nonzero} of the {int(empty.sum())} fully masked rows have weights that are not all exactly 0 (a large "
        "negative number in place of -inf, for instance, gives such a row uniform weights)"
    )
    assert not np.any(out[empty] != 0), "the output of a fully masked row must be exactly 0"
    shape = (*case.q.shape[:-1], case.v.shape[-1])
    reply = submission.run(
        "attention_gradients",
        case.q,
        case.k,
        case.v,
        case.mask,
        loss_weights(FULLY_MASKED + LOSS_WEIGHTS, shape),
        loss_weights(FULLY_MASKED + 2 * LOSS_WEIGHTS, case.mask.shape),
    )
    shapes = {"q": case.q, "k": case.k, "v": case.v}
    got, _ = gradients_from(reply, None, shapes, "attention_gradients")
    broken = [name for name, value in got.items() if not np.all(np.isfinite(value))]
    assert not broken, (
        f"with fully masked rows, the gradients by {', '.join(broken)} contain nan or inf: no nan may enter the "
        "computation that the gradient flows through (replace the weights of masked positions, do not multiply them)"
    )


# ---------------------------------------------------------------- Part 2: multi-head attention

MHA_HINTS = (
    "check the projections (rows 0:E of in_proj_weight and in_proj_bias for the query, E:2E for the key, 2E:3E "
    "for the value), the split into heads, the scale 1/sqrt(head_dim) and that the mask reaches every head",
    "check how the heads are merged back into (N, L, d_model) and the output projection out_proj",
)


def check_multi_head_attention(submission: Any, reference: Any, mistakes: Any, case: Any, what: str) -> None:
    require(submission, "MultiHeadAttention", "scaled_dot_product_attention")
    expected = reference.multi_head_attention(case)
    result = submission.run(
        "multi_head_attention", case.weights, case.n_heads, case.query, case.key, case.value, case.mask
    )
    got = pair(result, "MultiHeadAttention.forward", expected[0].shape, expected[1].shape)
    check_weights_then_output(got, expected, mistakes.multi_head_attention(case), what, MHA_HINTS)


@points(5)
def test_parameter_layout(submission: Any) -> None:
    """MultiHeadAttention(8, 2) owns exactly the parameters of torch.nn.MultiheadAttention(8, 2) and
    EncoderBlock(8, 2, 16) those of torch.nn.TransformerEncoderLayer(8, 2, 16); the outputs have the
    documented shapes."""
    require(submission, "MultiHeadAttention", "EncoderBlock")
    reply = submission.run("describe", d_model=8, n_heads=N_HEADS, d_ff=16, batch=3, length=5, source_length=6)
    keys = {"attention_parameters", "block_parameters", "attention_out", "attention_weights", "block_out"}
    if type(reply) is not dict or not keys <= set(reply):
        raise AssertionError("describe: the sandbox sent back a malformed reply")
    attention = {"in_proj_weight": [24, 8], "in_proj_bias": [24], "out_proj.weight": [8, 8], "out_proj.bias": [8]}
    block = {f"self_attn.{name}": shape for name, shape in attention.items()}
    block |= {"linear1.weight": [16, 8], "linear1.bias": [16], "linear2.weight": [8, 16], "linear2.bias": [8]}
    block |= {f"{norm}.{part}": [8] for norm in ("norm1", "norm2") for part in ("weight", "bias")}
    for module, expected, parameters in (
        ("MultiHeadAttention(8, 2)", attention, reply["attention_parameters"]),
        ("EncoderBlock(8, 2, 16)", block, reply["block_parameters"]),
    ):
        if type(parameters) is not dict:
            raise AssertionError("describe: the sandbox sent back parameters that are not a dict")
        missing = [name for name in expected if name not in parameters]
        extra = sorted(name for name in parameters if name not in expected)
        assert not missing, f"{module} has no parameter named {', '.join(missing)}"
        assert not extra, f"{module} has parameters that PyTorch's does not: {', '.join(extra)}"
        for name, shape in expected.items():
            got = parameters[name]  # sandbox data: an array here would make `==` ambiguous
            plain = type(got) is list and all(type(size) is int for size in got)
            assert plain and got == shape, f"{module}.{name} has shape {got!r}, expected {shape!r}"
    for name, shape in (
        ("attention_out", [3, 5, 8]),
        ("attention_weights", [3, 2, 5, 6]),
        ("block_out", [3, 5, 8]),
    ):
        got = reply[name]
        what = {
            "attention_out": "the output of MultiHeadAttention(8, 2) for a query (3, 5, 8) and key = value (3, 6, 8)",
            "attention_weights": "the weights it returns (one set per head, not averaged)",
            "block_out": "the output of EncoderBlock(8, 2, 16) for x of shape (3, 5, 8)",
        }[name]
        plain = type(got) is list and all(type(size) is int for size in got)
        assert plain and got == shape, f"{what} has shape {got!r}, expected {shape!r}"


@points(10)
def test_self_attention_matches_reference(submission: Any, reference: Any, mistakes: Any, module_case: Any) -> None:
    """MultiHeadAttention(8, 2), query = key = value of shape (3, 5, 8), random weights: out and the
    per-head weights match torch.nn.MultiheadAttention's."""
    check_multi_head_attention(submission, reference, mistakes, module_case(SELF_ATTENTION), "self-attention")


@points(10)
def test_cross_attention_with_padding_matches_reference(
    submission: Any, reference: Any, mistakes: Any, module_case: Any
) -> None:
    """query (3, 5, 8), different key and value (3, 6, 8), a padding mask (3, 1, 1, 6): out and the
    per-head weights match torch.nn.MultiheadAttention's."""
    case = module_case(CROSS_ATTENTION, cross=True, masked=True)
    check_multi_head_attention(submission, reference, mistakes, case, "attention to another sequence, padded")


@points(5)
def test_multi_head_attention_gradients(submission: Any, reference: Any, module_case: Any, loss_weights: Any) -> None:
    """Gradients of sum(out * A), padded cross-attention, by the inputs and the four parameters."""
    require(submission, "MultiHeadAttention", "scaled_dot_product_attention")
    case = module_case(ATTENTION_GRADIENTS, cross=True, masked=True)
    out_weight = loss_weights(ATTENTION_GRADIENTS + LOSS_WEIGHTS, case.query.shape)
    expected = reference.multi_head_attention_gradients(case, out_weight)
    result = submission.run(
        "multi_head_attention_gradients",
        case.weights,
        case.n_heads,
        case.query,
        case.key,
        case.value,
        case.mask,
        out_weight,
    )
    inputs, no_input_gradient = gradients_from(
        result, "inputs", {name: expected[name] for name in ("query", "key", "value")}, "gradients"
    )
    parameters, no_parameter_gradient = gradients_from(
        result, "parameters", {name: expected[name] for name in expected if name not in inputs}, "gradients"
    )
    assert_all_have_gradients(no_input_gradient + no_parameter_gradient, "MultiHeadAttention.forward")
    assert_gradients_match(inputs | parameters, expected, "torch.nn.MultiheadAttention")


# ---------------------------------------------------------------- Part 3: the encoder block


@points(10)
def test_encoder_block_matches_reference(submission: Any, reference: Any, mistakes: Any, block_case: Any) -> None:
    """EncoderBlock(8, 2, 16), dropout 0, x (3, 5, 8) with a padding mask: the output matches
    torch.nn.TransformerEncoderLayer(8, 2, 16, norm_first=True)'s."""
    require(submission, "EncoderBlock", "MultiHeadAttention", "scaled_dot_product_attention")
    case = block_case(BLOCK)
    expected = reference.encoder_block(case)
    result = submission.run("encoder_block", case.weights, case.n_heads, case.query, case.mask)
    got = expect_finite(expect_array(result, "the block's output", shape=expected.shape), "the block's output")
    if not (wrong := difference(got, expected)):
        return
    for hint, mistaken in mistakes.encoder_block(case):
        if close(got, mistaken):
            raise AssertionError(f"EncoderBlock: {hint}")
    raise AssertionError(
        f"the output of EncoderBlock differs from torch.nn.TransformerEncoderLayer(..., norm_first=True)'s ({wrong}): "
        "check the pre-LN order h = x + attention(norm1(x)), out = h + linear2(relu(linear1(norm2(h)))); if the "
        "tests of MultiHeadAttention fail too, fix those first: the block uses it"
    )


@points(5)
def test_encoder_block_gradients(submission: Any, reference: Any, block_case: Any, loss_weights: Any) -> None:
    """Gradients of sum(out * A) by x and the twelve parameters match TransformerEncoderLayer's."""
    require(submission, "EncoderBlock", "MultiHeadAttention", "scaled_dot_product_attention")
    case = block_case(BLOCK_GRADIENTS)
    out_weight = loss_weights(BLOCK_GRADIENTS + LOSS_WEIGHTS, case.query.shape)
    expected = reference.encoder_block_gradients(case, out_weight)
    result = submission.run("encoder_block_gradients", case.weights, case.n_heads, case.query, case.mask, out_weight)
    inputs, no_input_gradient = gradients_from(result, "inputs", {"x": expected["x"]}, "gradients")
    parameters, no_parameter_gradient = gradients_from(
        result, "parameters", {name: value for name, value in expected.items() if name != "x"}, "gradients"
    )
    assert_all_have_gradients(no_input_gradient + no_parameter_gradient, "EncoderBlock.forward")
    assert_gradients_match(inputs | parameters, expected, "torch.nn.TransformerEncoderLayer")


@points(5)
def test_dropout_only_in_training(submission: Any, block_case: Any) -> None:
    """EncoderBlock(..., dropout=0.5) is random in training mode, and in evaluation mode it is exactly
    the same block with dropout 0."""
    require(submission, "EncoderBlock", "MultiHeadAttention", "scaled_dot_product_attention")
    case = block_case(DROPOUT, masked=False)
    reply = submission.run("encoder_block_dropout", case.weights, case.n_heads, case.query, 0.5)
    if type(reply) is not dict or not {"without_dropout", "eval", "train"} <= set(reply):
        raise AssertionError("encoder_block_dropout: the sandbox sent back a malformed reply")
    shape = case.query.shape
    without = expect_array(reply["without_dropout"], "the block's output", shape=shape)
    evaluation = [expect_array(v, "the block's output", shape=shape) for v in expect_tuple(reply["eval"], "eval", 2)]
    training = [expect_array(v, "the block's output", shape=shape) for v in expect_tuple(reply["train"], "train", 2)]
    for value in (without, *evaluation, *training):
        expect_finite(value, "the block's output")
    assert all(close(value, without) for value in evaluation), (
        "in evaluation mode (block.eval()) EncoderBlock(..., dropout=0.5) gives another output than the same "
        "block with dropout=0.0: dropout must do nothing in evaluation mode (nn.Dropout modules follow train() "
        "and eval(); F.dropout(x, p) does not unless you pass training=self.training)"
    )
    assert not close(training[0], training[1]) and not close(training[0], without), (
        "in training mode EncoderBlock(..., dropout=0.5) gives the same output on every call, as without dropout: "
        "apply dropout with the block's probability in the three places of the formula"
    )


# ---------------------------------------------------------------- Part 4: training


@points(15)
@limits(call_timeout_s=60)
def test_learns_to_reverse_digits(submission: Any, credit: Any, metric: Any, reversal_task: Any) -> None:
    """Trained inside the notebook's ReversalModel, the block reverses held-out digit sequences."""
    require(submission, "EncoderBlock", "MultiHeadAttention", "scaled_dot_product_attention")
    task = reversal_task(**REVERSAL)
    logits = submission.run(
        "train_reversal", task.weights, N_HEADS, task.x_train, task.y_train, task.x_test, **TRAINING
    )
    logits = expect_array(logits, "the logits on held-out sequences", shape=(*task.y_test.shape, 10))
    if not np.all(np.isfinite(logits)):
        raise AssertionError("the logits on held-out sequences contain nan or inf: training diverged")
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == task.y_test))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -float(np.mean(np.take_along_axis(log_probabilities, task.y_test[..., None], axis=-1)))
    metric("digit_accuracy", accuracy)
    metric("held_out_loss", loss)
    for threshold, fraction in ACCURACY_BANDS:
        if accuracy >= threshold:
            credit.give(fraction, f"{accuracy:.3f} of the held-out digits reversed correctly (at least {threshold:g})")
            return
    lowest = ACCURACY_BANDS[-1][0]
    raise AssertionError(
        f"only {accuracy:.3f} of the held-out digits reversed correctly, below {lowest:g}: the block did not learn "
        "to move digits between positions (guessing gets 0.1)"
    )
