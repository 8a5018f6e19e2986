# A correct submission to the lstm assignment that differs from the reference, for the grader's
# own tests. forward computes each gate with its own slices of the weights (eight matrix
# products a step instead of two) and keeps the state in float32 whatever it is given, casting
# back at the end. Expected: full marks (float32 rounding is within the tolerance).

# %%
import math

import numpy as np
import torch
from torch import nn


# %%
class LSTMCell(nn.Module):
    """One step of a long short-term memory cell, with the parameters of torch.nn.LSTMCell.

    Parameters (the four gate blocks are stacked along the first dimension in the order
    i, f, g, o):
        weight_ih: (4 * hidden_size, input_size)
        weight_hh: (4 * hidden_size, hidden_size)
        bias_ih: (4 * hidden_size,)
        bias_hh: (4 * hidden_size,)
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the cell by one time step.

        Args:
            x: the input at this step, of shape (N, input_size).
            state: (h, c), the previous hidden and cell states, each of shape (N, hidden_size).

        Returns:
            (h_next, c_next), the new hidden and cell states, each of shape (N, hidden_size).
        """
        h, c = state
        dtype = h.dtype
        x, h, c = x.float(), h.float(), c.float()
        H = self.hidden_size

        def gate(k: int) -> torch.Tensor:
            rows = slice(k * H, (k + 1) * H)
            return (
                x @ self.weight_ih[rows].float().T
                + h @ self.weight_hh[rows].float().T
                + self.bias_ih[rows].float()
                + self.bias_hh[rows].float()
            )

        i, f, g, o = torch.sigmoid(gate(0)), torch.sigmoid(gate(1)), torch.tanh(gate(2)), torch.sigmoid(gate(3))
        c_next = f * c + i * g
        h_next = (o * torch.tanh(c_next)).to(dtype)
        c_next = c_next.to(dtype)
        return h_next, c_next


# %%
def unroll(
    cell: nn.Module, xs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Run `cell` over a sequence xs of shape (T, N, I), starting from state (h0, c0).

    Returns:
        (hs, (h_T, c_T)): hs of shape (T, N, H) stacks the hidden state after every step.
    """
    h, c = state
    hs = []
    for x in xs:  # one step at a time; autograd records every step
        h, c = cell(x, (h, c))
        hs.append(h)
    return torch.stack(hs), (h, c)


def parameter_shapes(input_size: int, hidden_size: int) -> dict[str, list[int]]:
    """Return the name and shape of every parameter of a new LSTMCell(input_size, hidden_size)."""
    cell = LSTMCell(input_size, hidden_size)
    return {name: list(parameter.shape) for name, parameter in cell.named_parameters()}


def run_on_arrays(
    weights: dict[str, np.ndarray], xs: np.ndarray, h0: np.ndarray, c0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Load `weights` into a new float64 LSTMCell and run it over xs of shape (T, N, I).

    Returns:
        (hs, cs): the hidden and cell states after every step, each of shape (T, N, H).
    """
    hidden_size, input_size = weights["weight_ih"].shape[0] // 4, weights["weight_ih"].shape[1]
    cell = LSTMCell(input_size, hidden_size).double()
    cell.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    h, c = torch.as_tensor(h0), torch.as_tensor(c0)
    hs, cs = [], []
    with torch.no_grad():
        for x in torch.as_tensor(xs):
            h, c = cell(x, (h, c))
            hs.append(h)
            cs.append(c)
    return torch.stack(hs).numpy(), torch.stack(cs).numpy()


# %%
def running_sum_data(num_sequences: int, seq_len: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return inputs xs of shape (T, N, 1), uniform on [-1, 1], and targets 0.5 * cumsum(xs)."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-1.0, 1.0, size=(seq_len, num_sequences, 1))
    return xs, 0.5 * np.cumsum(xs, axis=0)


def predict(cell: nn.Module, readout: nn.Module, xs: torch.Tensor) -> torch.Tensor:
    """Return readout(h_t) for every step of xs (T, N, I), starting from a zero state."""
    h = xs.new_zeros(xs.shape[1], cell.hidden_size)
    hs, _ = unroll(cell, xs, (h, torch.zeros_like(h)))
    return readout(hs)


def train_running_sum(
    cell: nn.Module,
    readout: nn.Module,
    xs: torch.Tensor,
    ys: torch.Tensor,
    steps: int = 200,
    batch_size: int = 128,
    lr: float = 0.03,
    seed: int = 0,
) -> list[float]:
    """Train cell and readout with Adam on random minibatches of the sequences; return the losses."""
    rng = np.random.default_rng(seed)
    parameters = list(cell.parameters()) + list(readout.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:  # decay the learning rate linearly to 0
            group["lr"] = lr * (1.0 - step / steps)
        batch = torch.as_tensor(rng.choice(xs.shape[1], size=batch_size, replace=False))
        loss = ((predict(cell, readout, xs[:, batch]) - ys[:, batch]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
