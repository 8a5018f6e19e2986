"""Trusted helpers for the lstm hidden tests: torch.nn.LSTMCell as the reference, seeded data."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class LSTMCase(NamedTuple):
    """Weights for both cells, an input sequence (T, N, I) and an initial state (N, H) each."""

    weights: dict[str, np.ndarray]
    xs: np.ndarray
    h0: np.ndarray
    c0: np.ndarray


class GradientCase(NamedTuple):
    """An LSTMCase plus the loss sum_t sum(h_t * h_weights[t]) + sum(c_T * c_weight)."""

    case: LSTMCase
    h_weights: np.ndarray
    c_weight: np.ndarray


class RunningSumTask(NamedTuple):
    """Training and held-out sequences of the running-sum task, and the starting weights."""

    weights: dict[str, np.ndarray]
    readout_weight: np.ndarray
    readout_bias: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Reference:
    """torch.nn.LSTMCell in float64, run in the trusted process."""

    @staticmethod
    def cell(weights: dict[str, np.ndarray]) -> torch.nn.LSTMCell:
        """A float64 torch.nn.LSTMCell holding `weights`."""
        four_hidden, input_size = weights["weight_ih"].shape
        cell = torch.nn.LSTMCell(input_size, four_hidden // 4).double()
        cell.load_state_dict({name: torch.tensor(weights[name]) for name in PARAMETER_NAMES})
        return cell

    @classmethod
    def sequence(cls, case: LSTMCase) -> tuple[np.ndarray, np.ndarray]:
        """The hidden and cell states after every step, each of shape (T, N, H)."""
        cell = cls.cell(case.weights)
        h, c = torch.tensor(case.h0), torch.tensor(case.c0)
        hs, cs = [], []
        with torch.no_grad():
            for x in torch.tensor(case.xs):
                h, c = cell(x, (h, c))
                hs.append(h.numpy().copy())
                cs.append(c.numpy().copy())
        return np.stack(hs), np.stack(cs)

    @classmethod
    def gradients(cls, grad_case: GradientCase) -> dict[str, np.ndarray]:
        """Gradients of the case's loss by xs, h0, c0 and the four parameters, keyed by name."""
        case = grad_case.case
        cell = cls.cell(case.weights)
        variables = {
            name: torch.tensor(value, requires_grad=True)
            for name, value in (("xs", case.xs), ("h0", case.h0), ("c0", case.c0))
        }
        h, c = variables["h0"], variables["c0"]
        loss = torch.zeros((), dtype=torch.float64)
        for t in range(case.xs.shape[0]):
            h, c = cell(variables["xs"][t], (h, c))
            loss = loss + (h * torch.tensor(grad_case.h_weights[t])).sum()
        loss = loss + (c * torch.tensor(grad_case.c_weight)).sum()
        loss.backward()
        grads = {name: tensor.grad.numpy().copy() for name, tensor in variables.items()}  # type: ignore[union-attr]
        for name, parameter in cell.named_parameters():
            grads[name] = parameter.grad.numpy().copy()  # type: ignore[union-attr]
        return grads


def _rng(seed: int, purpose: int) -> np.random.Generator:
    """An independent generator per (grading seed, purpose): one test's data never shifts another's."""
    return np.random.default_rng([seed, purpose])


def random_weights(rng: np.random.Generator, input_size: int, hidden_size: int, scale: float) -> dict[str, np.ndarray]:
    """The four LSTM parameters, uniform on [-scale, scale], each drawn independently."""
    shapes = {
        "weight_ih": (4 * hidden_size, input_size),
        "weight_hh": (4 * hidden_size, hidden_size),
        "bias_ih": (4 * hidden_size,),
        "bias_hh": (4 * hidden_size,),
    }
    return {name: rng.uniform(-scale, scale, size=shape) for name, shape in shapes.items()}


def make_case(
    seed: int,
    purpose: int,
    steps: int = 6,
    batch: int = 4,
    input_size: int = 3,
    hidden_size: int = 5,
    zero_state: bool = False,
) -> LSTMCase:
    """Weights uniform on [-1, 1] (gates far from 0.5, so a swapped or mis-squashed gate shows),
    standard normal inputs, and a random state unless `zero_state`."""
    rng = _rng(seed, purpose)
    weights = random_weights(rng, input_size, hidden_size, scale=1.0)
    xs = rng.normal(size=(steps, batch, input_size))
    if zero_state:
        h0, c0 = np.zeros((batch, hidden_size)), np.zeros((batch, hidden_size))
    else:
        h0 = np.tanh(rng.normal(size=(batch, hidden_size)))
        c0 = rng.normal(size=(batch, hidden_size))
    return LSTMCase(weights, xs, h0, c0)


def make_gradient_case(seed: int, purpose: int) -> GradientCase:
    """A 6-step case from a random state, with standard normal loss weights."""
    case = make_case(seed, purpose)
    rng = _rng(seed, purpose + 1000)
    return GradientCase(case, rng.normal(size=case.xs.shape[:2] + case.h0.shape[1:]), rng.normal(size=case.c0.shape))


def running_sum_data(rng: np.random.Generator, sequences: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (T, N, 1) uniform on [-1, 1] and targets 0.5 * their running sum, as in the notebook."""
    xs = rng.uniform(-1.0, 1.0, size=(steps, sequences, 1))
    return xs, 0.5 * np.cumsum(xs, axis=0)


def make_running_sum_task(
    seed: int, hidden_size: int, train: int = 256, test: int = 256, steps: int = 16
) -> RunningSumTask:
    """Data and starting weights drawn from the grading seed; PyTorch's initialisation ranges."""
    rng = _rng(seed, 5000)
    weights = random_weights(rng, 1, hidden_size, scale=1.0 / np.sqrt(hidden_size))
    bound = 1.0 / np.sqrt(hidden_size)
    readout_weight = rng.uniform(-bound, bound, size=(1, hidden_size))
    readout_bias = rng.uniform(-bound, bound, size=(1,))
    x_train, y_train = running_sum_data(rng, train, steps)
    x_test, y_test = running_sum_data(rng, test, steps)
    return RunningSumTask(weights, readout_weight, readout_bias, x_train, y_train, x_test, y_test)


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """torch.nn.LSTMCell, the trusted reference."""
    return Reference


@pytest.fixture
def lstm_case(grading_seed: int) -> Callable[..., LSTMCase]:
    """make_case(purpose, **sizes) with this grading run's seed."""
    return lambda purpose, **kwargs: make_case(grading_seed, purpose, **kwargs)


@pytest.fixture
def gradient_case(grading_seed: int) -> Callable[[int], GradientCase]:
    """make_gradient_case(purpose) with this grading run's seed."""
    return lambda purpose: make_gradient_case(grading_seed, purpose)


@pytest.fixture
def running_sum_task(grading_seed: int) -> Callable[[int], RunningSumTask]:
    """make_running_sum_task(hidden_size) with this grading run's seed."""
    return lambda hidden_size: make_running_sum_task(grading_seed, hidden_size)
