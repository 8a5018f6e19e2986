"""Probes for the lstm assignment: code that runs in the sandbox, next to the student's LSTMCell.

Every probe builds the student's cell, loads the weights it is given (the same ones the hidden
test loads into torch.nn.LSTMCell outside), runs it and returns plain data: outputs, gradients,
predictions. Expected values and held-out targets never come in here.
"""

import contextlib

import numpy as np
import torch

PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
NO_GRAPH = (
    "LSTMCell.forward must compute h and c from x, the state and the parameters with torch "
    "operations, without .detach(), .item(), .numpy(), .data or torch.no_grad()"
)


@contextlib.contextmanager
def _float64_on_one_thread():
    """Run in float64 on one thread, whatever the grader's thread count, then restore both.

    float64 by default, so that tensors the cell creates match the inputs. One thread, because
    the matrices here are tiny: on a 2-core machine, 2 threads made training 5 to 7 times slower
    (NOTES.md), and a fixed count keeps the results the same for every grading setting.
    """
    previous_dtype, previous_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(previous_dtype)
        torch.set_num_threads(previous_threads)


def _tensor(array, requires_grad=False):
    """A float64 tensor holding a copy of `array`."""
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def _array(tensor):
    """A float64 numpy copy of a tensor computed by the student's cell."""
    return np.array(tensor.detach().to(torch.float64).cpu().numpy(), dtype=np.float64)


def _new_cell(module, input_size, hidden_size):
    """LSTMCell(input_size, hidden_size) from the submission, checked to be an nn.Module."""
    cls = getattr(module, "LSTMCell", None)
    if cls is None:
        raise NameError(
            "the submission defines no LSTMCell: check that the cell defining it runs without an error"
        )
    cell = cls(input_size, hidden_size)
    if not isinstance(cell, torch.nn.Module):
        raise TypeError(f"LSTMCell(...) should create a torch.nn.Module, not a {type(cell).__name__}")
    return cell


def _load_cell(module, weights):
    """A float64 LSTMCell whose four parameters hold `weights` (a dict of arrays by name)."""
    four_hidden, input_size = np.shape(weights["weight_ih"])
    cell = _new_cell(module, int(input_size), int(four_hidden) // 4).double()
    parameters = dict(cell.named_parameters())
    for name in PARAMETER_NAMES:
        value = _tensor(weights[name])
        parameter = parameters.get(name)
        if parameter is None:
            found = ", ".join(sorted(parameters)) or "none"
            raise AttributeError(
                f"LSTMCell has no parameter named {name!r} (its parameters: {found}); "
                "name and shape them as in the layout table of the notebook"
            )
        if tuple(parameter.shape) != tuple(value.shape):
            raise ValueError(
                f"LSTMCell parameter {name} has shape {tuple(parameter.shape)}, "
                f"expected {tuple(value.shape)}"
            )
        with torch.no_grad():
            parameter.copy_(value)
    return cell


def _step(cell, x, h, c):
    """One call of the student's forward, with its result checked to be (h, c) of h's shape."""
    result = cell(x, (h, c))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
        raise TypeError(f"LSTMCell.forward should return a tuple (h, c), but it returned {what}")
    for name, value in zip(("h", "c"), result):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"LSTMCell.forward should return tensors, but its {name} is a {type(value).__name__}")
        if tuple(value.shape) != tuple(h.shape):
            raise ValueError(
                f"the {name} returned by LSTMCell.forward has shape {tuple(value.shape)}, "
                f"expected {tuple(h.shape)} (batch size, hidden_size)"
            )
    return result[0], result[1]


def describe_cell(module, input_size, hidden_size, batch):
    """Build LSTMCell(input_size, hidden_size) as the student would; run one float32 step.

    Returns {"parameters": {name: shape}, "h": array, "c": array}.
    """
    cell = _new_cell(module, input_size, hidden_size)
    parameters = {name: list(p.shape) for name, p in cell.named_parameters()}
    x = torch.randn(batch, input_size)
    h = torch.zeros(batch, hidden_size)
    h_next, c_next = _step(cell, x, h, torch.zeros(batch, hidden_size))
    return {"parameters": parameters, "h": _array(h_next), "c": _array(c_next)}


def run_sequence(module, weights, xs, h0, c0):
    """Run the student's cell, holding `weights`, over xs (T, N, I) from (h0, c0).

    Returns (hs, cs): the states after every step, each of shape (T, N, H).
    """
    with _float64_on_one_thread():
        cell = _load_cell(module, weights)
        h, c = _tensor(h0), _tensor(c0)
        hs, cs = [], []
        for x in _tensor(xs):
            h, c = _step(cell, x, h, c)
            hs.append(_array(h))
            cs.append(_array(c))
    return np.stack(hs), np.stack(cs)


def sequence_gradients(module, weights, xs, h0, c0, h_weights, c_weight):
    """Gradients of sum_t sum(h_t * h_weights[t]) + sum(c_T * c_weight) through the student's cell.

    Returns {"inputs": {"xs", "h0", "c0"}, "parameters": {name: gradient}, "no_gradient": [names]};
    a variable that received no gradient is listed in "no_gradient" and given zeros.
    """
    with _float64_on_one_thread():
        cell = _load_cell(module, weights)
        variables = {
            "xs": _tensor(xs, requires_grad=True),
            "h0": _tensor(h0, requires_grad=True),
            "c0": _tensor(c0, requires_grad=True),
        }
        h, c = variables["h0"], variables["c0"]
        loss = torch.zeros(())
        for t in range(variables["xs"].shape[0]):
            h, c = _step(cell, variables["xs"][t], h, c)
            loss = loss + (h * _tensor(h_weights[t])).sum()
        loss = loss + (c * _tensor(c_weight)).sum()
        if not loss.requires_grad:
            raise RuntimeError(f"the loss over the sequence has no gradient: {NO_GRAPH}")
        loss.backward()
        parameters = dict(cell.named_parameters())
        missing = []

        def gradient(name, tensor):
            if tensor.grad is None:
                missing.append(name)
                return np.zeros(tuple(tensor.shape))
            return _array(tensor.grad)

        inputs = {name: gradient(name, tensor) for name, tensor in variables.items()}
        grads = {name: gradient(name, parameters[name]) for name in PARAMETER_NAMES}
    return {"inputs": inputs, "parameters": grads, "no_gradient": missing}


def _predict(cell, readout, xs):
    """readout(h_t) for every step of xs (T, N, I), from a zero state."""
    h = torch.zeros(xs.shape[1], readout.in_features)
    c = torch.zeros_like(h)
    outputs = []
    for x in xs:
        h, c = _step(cell, x, h, c)
        outputs.append(readout(h))
    return torch.stack(outputs)


def train_running_sum(
    module, weights, readout_weight, readout_bias, x_train, y_train, x_test, steps, batch_size, lr, seed
):
    """Train the student's cell (starting from `weights`) and a linear read-out on the sequences.

    Adam on the mean squared error over all steps, with the learning rate decayed linearly from
    `lr` to 0 over `steps` minibatches of `batch_size` sequences drawn with
    np.random.default_rng(seed), as in the notebook's train_running_sum. Returns the
    predictions for x_test, of shape (T, N_test, outputs); the test targets stay outside.
    """
    with _float64_on_one_thread():
        cell = _load_cell(module, weights)
        readout_weight = _tensor(readout_weight)
        readout = torch.nn.Linear(readout_weight.shape[1], readout_weight.shape[0])
        with torch.no_grad():
            readout.weight.copy_(readout_weight)
            readout.bias.copy_(_tensor(readout_bias))
        optimizer = torch.optim.Adam(list(cell.parameters()) + list(readout.parameters()), lr=lr)
        x_train, y_train = _tensor(x_train), _tensor(y_train)
        rng = np.random.default_rng(seed)
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * (1.0 - step / steps)
            batch = torch.as_tensor(rng.choice(x_train.shape[1], size=batch_size, replace=False))
            loss = ((_predict(cell, readout, x_train[:, batch]) - y_train[:, batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return _array(_predict(cell, readout, _tensor(x_test)))
