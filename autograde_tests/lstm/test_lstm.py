"""Hidden tests for the lstm assignment: parameters, outputs and gradients against
torch.nn.LSTMCell, then training on a running-sum task. NOTES.md explains every threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_tuple, limits, points, relative_error

# The student's cell runs in float64, like the reference: a correct cell agrees to about 1e-15.
# A cell that computes in float32 internally is off by at most 5e-7, inside ATOL alone; every
# mistake measured is off by more than 0.2 (NOTES.md).
RTOL, ATOL = 1e-4, 1e-6
SHAPES = {"input_size": 3, "hidden_size": 5, "batch": 4}
# (largest normalised test error, fraction of the points). The reference solution reaches at
# most 0.0024 over 10 grading seeds and 0.0040 over 20 seeds of the same recipe (NOTES.md).
ERROR_BANDS = ((0.02, 1.0), (0.1, 2.0 / 3.0), (0.3, 1.0 / 3.0))
TRAINING = {"steps": 200, "batch_size": 128, "lr": 0.03}
HIDDEN_SIZE = 16
# Seeds for each test's data, mixed with the grading seed (conftest._rng).
FIRST_STEP, SEQUENCE, INPUT_GRADIENTS, WEIGHT_GRADIENTS = 1, 2, 3, 4


def require(submission: Any, *names: str) -> None:
    """Fail with a clear message when the submission does not define one of `names`."""
    missing = [name for name in names if not submission.has(name)]
    assert not missing, (
        f"the submission does not define {', '.join(missing)}: check that the cell defining it runs without an error"
    )


def states(result: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Validate the (hs, cs) a run_sequence probe returned."""
    hs, cs = expect_tuple(result, "run_sequence", 2)
    return expect_array(hs, "h over the sequence", shape=shape), expect_array(cs, "c over the sequence", shape=shape)


def wrong_gradients(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> list[str]:
    """One line for each gradient that differs from the reference's: how many entries, how much."""
    wrong = []
    for name, value in got.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            wrong.append(f"{name}: {bad} of {value.size} entries are nan or inf")
            continue
        differs = ~np.isclose(value, expected[name], rtol=RTOL, atol=ATOL)
        if differs.any():
            # Relative, one digit: an absolute error would give away the hidden gradients' magnitude (issue 11).
            error = relative_error(value, expected[name])
            wrong.append(f"{name}: {int(differs.sum())} of {value.size} entries (largest relative error {error:.0e})")
    return wrong


def assert_gradients_match(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Fail with one message naming every gradient that is off, without echoing the reference."""
    wrong = wrong_gradients(got, expected)
    tolerance = f"rtol={RTOL:g}, atol={ATOL:g}"
    assert not wrong, f"gradients that differ from torch.nn.LSTMCell's ({tolerance}): " + "; ".join(wrong)


def gradients_from(result: Any, group: str, expected: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Validate a sequence_gradients result; return its `group` ("inputs" or "parameters") of
    gradients, shaped like `expected`, and which of them received no gradient."""
    if type(result) is not dict or not {"inputs", "parameters", "no_gradient"} <= set(result):
        raise AssertionError("sequence_gradients returned something other than its documented dict")
    gradients = result[group]
    if type(gradients) is not dict:
        raise AssertionError("sequence_gradients returned gradients that are not a dict")
    got = {
        name: expect_array(gradients.get(name), f"the gradient by {name}", shape=value.shape)
        for name, value in expected.items()
    }
    no_gradient = result["no_gradient"]
    if type(no_gradient) is not list or not all(type(item) is str for item in no_gradient):
        raise AssertionError("sequence_gradients returned a no_gradient entry that is not a list of names")
    return got, [name for name in expected if name in no_gradient]


@points(10)
def test_parameters_and_output_shapes(submission: Any) -> None:
    """LSTMCell(3, 5) owns weight_ih (20, 3), weight_hh (20, 5), bias_ih (20,), bias_hh (20,) and
    nothing else; forward(x, (h, c)) on a batch of 4 returns (h, c) of shape (4, 5) each."""
    require(submission, "LSTMCell")
    result = submission.run("describe_cell", **SHAPES)
    if type(result) is not dict or not {"parameters", "h", "c"} <= set(result):
        raise AssertionError("describe_cell returned something other than its documented dict")
    hidden, inputs = SHAPES["hidden_size"], SHAPES["input_size"]
    expected = {
        "weight_ih": [4 * hidden, inputs],
        "weight_hh": [4 * hidden, hidden],
        "bias_ih": [4 * hidden],
        "bias_hh": [4 * hidden],
    }
    parameters = result["parameters"]
    if type(parameters) is not dict:
        raise AssertionError("describe_cell returned parameters that are not a dict")
    missing = [name for name in expected if name not in parameters]
    extra = sorted(name for name in parameters if name not in expected)
    assert not missing, f"LSTMCell(3, 5) has no parameter named {', '.join(missing)}"
    assert not extra, (
        f"LSTMCell(3, 5) has parameters that torch.nn.LSTMCell does not: {', '.join(extra)}; "
        "keep exactly weight_ih, weight_hh, bias_ih and bias_hh"
    )
    for name, shape in expected.items():
        got = parameters[name]  # sandbox data: an array here would make `==` ambiguous
        plain = type(got) is list and all(type(size) is int for size in got)
        assert plain and got == shape, f"LSTMCell(3, 5).{name} has shape {got!r}, expected {shape!r}"
    for name in ("h", "c"):
        expect_array(result[name], f"the {name} returned by forward", shape=(SHAPES["batch"], hidden))


@points(10)
def test_first_step_matches_reference(submission: Any, reference: Any, lstm_case: Any) -> None:
    """One step from a zero state, with random weights loaded into both cells."""
    require(submission, "LSTMCell")
    case = lstm_case(FIRST_STEP, steps=1, zero_state=True)
    expected_h, expected_c = reference.sequence(case)
    result = submission.run("run_sequence", case.weights, case.xs, case.h0, case.c0)
    hs, cs = states(result, expected_h.shape)
    assert_close(hs, expected_h, "h after one step from a zero state", rtol=RTOL, atol=ATOL)
    assert_close(cs, expected_c, "c after one step from a zero state", rtol=RTOL, atol=ATOL)


@points(20)
def test_sequence_matches_reference(submission: Any, reference: Any, lstm_case: Any) -> None:
    """Six steps from a random (non-zero) state: every h_t and c_t match torch.nn.LSTMCell's."""
    require(submission, "LSTMCell")
    case = lstm_case(SEQUENCE)
    expected_h, expected_c = reference.sequence(case)
    result = submission.run("run_sequence", case.weights, case.xs, case.h0, case.c0)
    hs, cs = states(result, expected_h.shape)
    assert_close(cs, expected_c, "c over 6 steps from a random state", rtol=RTOL, atol=ATOL)
    assert_close(hs, expected_h, "h over 6 steps from a random state", rtol=RTOL, atol=ATOL)


@points(15)
def test_gradients_by_inputs_and_initial_state(submission: Any, reference: Any, gradient_case: Any) -> None:
    """Gradients of a loss over 6 steps by every x_t, h_0 and c_0 match torch.nn.LSTMCell's."""
    require(submission, "LSTMCell")
    grad_case = gradient_case(INPUT_GRADIENTS)
    reference_gradients = reference.gradients(grad_case)
    case = grad_case.case
    result = submission.run(
        "sequence_gradients", case.weights, case.xs, case.h0, case.c0, grad_case.h_weights, grad_case.c_weight
    )
    expected = {name: reference_gradients[name] for name in ("xs", "h0", "c0")}
    got, no_gradient = gradients_from(result, "inputs", expected)
    assert not no_gradient, (
        f"{', '.join(no_gradient)} received no gradient: the loss does not reach them through "
        "LSTMCell.forward (a .detach() of the input or state cuts the graph)"
    )
    assert_gradients_match(got, expected)


@points(20)
def test_gradients_by_parameters(submission: Any, reference: Any, gradient_case: Any) -> None:
    """Gradients of a loss over 6 steps by the four parameters match torch.nn.LSTMCell's."""
    require(submission, "LSTMCell")
    grad_case = gradient_case(WEIGHT_GRADIENTS)
    reference_gradients = reference.gradients(grad_case)
    case = grad_case.case
    result = submission.run(
        "sequence_gradients", case.weights, case.xs, case.h0, case.c0, grad_case.h_weights, grad_case.c_weight
    )
    expected = {name: reference_gradients[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    got, no_gradient = gradients_from(result, "parameters", expected)
    assert not no_gradient, (
        f"{', '.join(no_gradient)} received no gradient: LSTMCell.forward does not use "
        f"{'it' if len(no_gradient) == 1 else 'them'}"
    )
    assert_gradients_match(got, expected)


@points(25)
@limits(call_timeout_s=60)
def test_learns_running_sum(submission: Any, credit: Any, metric: Any, running_sum_task: Any) -> None:
    """Unrolled and trained with Adam, the cell predicts the running sum of held-out sequences."""
    require(submission, "LSTMCell")
    task = running_sum_task(HIDDEN_SIZE)
    predictions = submission.run(
        "train_running_sum",
        task.weights,
        task.readout_weight,
        task.readout_bias,
        task.x_train,
        task.y_train,
        task.x_test,
        seed=0,
        **TRAINING,
    )
    predicted = expect_array(predictions, "predictions on held-out sequences", shape=task.y_test.shape)
    if not np.all(np.isfinite(predicted)):
        raise AssertionError("the predictions contain nan or inf: training diverged")
    error = float(np.sum((predicted - task.y_test) ** 2) / np.sum(task.y_test**2))
    metric("final_loss", error)
    for threshold, fraction in ERROR_BANDS:
        if error <= threshold:
            credit.give(fraction, f"normalised test error {error:.4f} (at most {threshold:g})")
            return
    largest = ERROR_BANDS[-1][0]
    raise AssertionError(f"normalised test error {error:.4f} is above {largest:g}: the cell did not learn")
