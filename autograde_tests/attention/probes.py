"""Probes for the attention assignment: code that runs in the sandbox, next to the student's modules.

Every probe builds the student's function or module, loads the weights it is given (the same ones
the hidden test loads into torch.nn.MultiheadAttention or torch.nn.TransformerEncoderLayer outside),
runs it and returns plain data: outputs, attention weights, gradients, predictions. Expected values
and held-out targets never come in here.
"""

import contextlib

import numpy as np
import torch
from torch import nn

ATTENTION_PARAMETERS = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
BLOCK_PARAMETERS = tuple(f"self_attn.{name}" for name in ATTENTION_PARAMETERS) + (
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
)
DIGITS = 10
NO_GRAPH = (
    "compute the output from the inputs and the parameters with torch operations, without "
    ".detach(), .item(), .numpy(), .data or torch.no_grad()"
)


@contextlib.contextmanager
def _float64_on_one_thread():
    """Run in float64 on one thread, whatever the grader's thread count, then restore both.

    float64 by default, so that tensors the student's code creates match the inputs. One thread,
    because the matrices here are tiny: more threads only add overhead (the lstm and cnn notes
    measured 5 to 10 times slower training with 2 threads on a busy 2-core machine), and a fixed
    count keeps the results the same for every grading setting.
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


def _mask(array):
    """None, or a bool tensor holding a copy of `array`."""
    return None if array is None else torch.tensor(np.asarray(array, dtype=bool))


def _array(tensor, what):
    """A float64 numpy copy of a tensor the student's code computed."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} should be a torch tensor, not a {type(tensor).__name__}")
    return np.array(tensor.detach().to(torch.float64).cpu().numpy(), dtype=np.float64)


def _defined(module, name):
    """The submission's `name`, or a NameError that says which cell to check."""
    value = getattr(module, name, None)
    if value is None:
        raise NameError(f"the submission defines no {name}: check that the cell defining it runs without an error")
    return value


def _pair(result, what):
    """The student's (out, weights), checked to be a pair of tensors."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise TypeError(f"{what} should return a pair (out, weights), but it returned {got}")
    for name, value in zip(("out", "weights"), result):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"the {name} returned by {what} should be a torch tensor, not a {type(value).__name__}")
    return result[0], result[1]


def _new_module(module, class_name, *args):
    """class_name(*args) from the submission, checked to be an nn.Module."""
    instance = _defined(module, class_name)(*args)
    if not isinstance(instance, nn.Module):
        raise TypeError(f"{class_name}(...) should create a torch.nn.Module, not a {type(instance).__name__}")
    return instance


def _load(instance, class_name, weights):
    """Copy `weights` (arrays by parameter name) into the module's parameters of the same names."""
    parameters = dict(instance.named_parameters())
    for name, array in weights.items():
        parameter = parameters.get(name)
        if parameter is None:
            found = ", ".join(sorted(parameters)) or "none"
            raise AttributeError(
                f"{class_name} has no parameter named {name!r} (its parameters: {found}); "
                "name and shape them as in the layout table of the notebook"
            )
        value = _tensor(array)
        if tuple(parameter.shape) != tuple(value.shape):
            raise ValueError(
                f"{class_name} parameter {name} has shape {tuple(parameter.shape)}, expected {tuple(value.shape)}"
            )
        with torch.no_grad():
            parameter.copy_(value)
    return instance


def _attention_module(module, weights, n_heads):
    """A float64 MultiHeadAttention(d_model, n_heads) holding `weights`."""
    d_model = int(np.shape(weights["out_proj.weight"])[0])
    instance = _new_module(module, "MultiHeadAttention", d_model, n_heads).double()
    return _load(instance, "MultiHeadAttention", weights)


def _block(module, weights, n_heads, dropout=0.0):
    """A float64 EncoderBlock(d_model, n_heads, d_ff, dropout) holding `weights`."""
    d_ff, d_model = (int(size) for size in np.shape(weights["linear1.weight"]))
    instance = _new_module(module, "EncoderBlock", d_model, n_heads, d_ff, dropout).double()
    return _load(instance, "EncoderBlock", weights)


def _block_output(block, x, mask=None):
    """block(x, mask), checked to be a tensor shaped like x."""
    out = block(x, mask)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"EncoderBlock.forward should return a tensor, not a {type(out).__name__}")
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"EncoderBlock.forward returned shape {tuple(out.shape)}, expected {tuple(x.shape)} (N, L, E)")
    return out


def _gradients(loss, variables):
    """Backpropagate `loss`; the gradient of every variable by name, and the names that got none."""
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise RuntimeError(f"the output has no gradient: {NO_GRAPH}")
    loss.backward()
    gradients, missing = {}, []
    for name, tensor in variables.items():
        if tensor.grad is None:
            missing.append(name)
            gradients[name] = np.zeros(tuple(tensor.shape))
        else:
            gradients[name] = _array(tensor.grad, f"the gradient by {name}")
    return gradients, missing


def _shape(value):
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def attention(module, q, k, v, mask=None):
    """The student's scaled_dot_product_attention(q, k, v, mask) in float64: (out, weights)."""
    function = _defined(module, "scaled_dot_product_attention")
    with _float64_on_one_thread(), torch.no_grad():
        out, weights = _pair(function(_tensor(q), _tensor(k), _tensor(v), _mask(mask)), "scaled_dot_product_attention")
        return _array(out, "out"), _array(weights, "weights")


def attention_gradients(module, q, k, v, mask, out_weight, weights_weight):
    """Gradients of sum(out * out_weight) + sum(weights * weights_weight) by q, k and v.

    Returns {"gradients": {"q", "k", "v"}, "no_gradient": [names]}; a variable that received no
    gradient is listed in "no_gradient" and given zeros.
    """
    function = _defined(module, "scaled_dot_product_attention")
    with _float64_on_one_thread():
        variables = {"q": _tensor(q, True), "k": _tensor(k, True), "v": _tensor(v, True)}
        result = function(variables["q"], variables["k"], variables["v"], _mask(mask))
        out, weights = _pair(result, "scaled_dot_product_attention")
        loss = (out * _tensor(out_weight)).sum() + (weights * _tensor(weights_weight)).sum()
        gradients, missing = _gradients(loss, variables)
    return {"gradients": gradients, "no_gradient": missing}


def masks(module, size, lengths, padded_size):
    """causal_mask(size) and padding_mask(lengths, padded_size) as numpy arrays of their own dtype."""
    causal = _defined(module, "causal_mask")(size)
    padding = _defined(module, "padding_mask")(list(lengths), padded_size)
    replies = {}
    for name, value in (("causal", causal), ("padding", padding)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}_mask should return a torch tensor, not a {type(value).__name__}")
        replies[name] = {"dtype": str(value.dtype).removeprefix("torch."), "values": value.detach().cpu().numpy()}
    return replies


def describe(module, d_model, n_heads, d_ff, batch, length, source_length):
    """Parameter names and shapes of MultiHeadAttention and EncoderBlock, and their output shapes."""
    with _float64_on_one_thread(), torch.no_grad():
        attention_module = _new_module(module, "MultiHeadAttention", d_model, n_heads).double()
        block = _new_module(module, "EncoderBlock", d_model, n_heads, d_ff).double()
        query = torch.randn(batch, length, d_model)
        key = torch.randn(batch, source_length, d_model)
        result = attention_module(query, key, key)
        if isinstance(result, (tuple, list)) and len(result) == 2:
            out, weights = _shape(result[0]), _shape(result[1])
        else:
            out, weights = type(result).__name__, None
        return {
            "attention_parameters": {name: list(p.shape) for name, p in attention_module.named_parameters()},
            "block_parameters": {name: list(p.shape) for name, p in block.named_parameters()},
            "attention_out": out,
            "attention_weights": weights,
            "block_out": _shape(block(query)),
        }


def multi_head_attention(module, weights, n_heads, query, key, value, mask=None):
    """The student's MultiHeadAttention holding `weights`, in float64: (out, weights)."""
    with _float64_on_one_thread(), torch.no_grad():
        instance = _attention_module(module, weights, n_heads)
        result = instance(_tensor(query), _tensor(key), _tensor(value), _mask(mask))
        out, attention_weights = _pair(result, "MultiHeadAttention.forward")
        return _array(out, "out"), _array(attention_weights, "weights")


def multi_head_attention_gradients(module, weights, n_heads, query, key, value, mask, out_weight):
    """Gradients of sum(out * out_weight) by query, key, value and the four parameters.

    Returns {"inputs": {...}, "parameters": {...}, "no_gradient": [names]}.
    """
    with _float64_on_one_thread():
        instance = _attention_module(module, weights, n_heads)
        inputs = {"query": _tensor(query, True), "key": _tensor(key, True), "value": _tensor(value, True)}
        result = instance(inputs["query"], inputs["key"], inputs["value"], _mask(mask))
        out, _ = _pair(result, "MultiHeadAttention.forward")
        parameters = dict(instance.named_parameters())
        variables = {**inputs, **{name: parameters[name] for name in ATTENTION_PARAMETERS}}
        gradients, missing = _gradients((out * _tensor(out_weight)).sum(), variables)
    return {
        "inputs": {name: gradients[name] for name in inputs},
        "parameters": {name: gradients[name] for name in ATTENTION_PARAMETERS},
        "no_gradient": missing,
    }


def encoder_block(module, weights, n_heads, x, mask=None):
    """The student's EncoderBlock (dropout 0) holding `weights`, in evaluation mode, in float64."""
    with _float64_on_one_thread(), torch.no_grad():
        block = _block(module, weights, n_heads).eval()
        return _array(_block_output(block, _tensor(x), _mask(mask)), "the block's output")


def encoder_block_gradients(module, weights, n_heads, x, mask, out_weight):
    """Gradients of sum(out * out_weight) by x and the twelve parameters (dropout 0, training mode)."""
    with _float64_on_one_thread():
        block = _block(module, weights, n_heads)
        x = _tensor(x, True)
        out = _block_output(block, x, _mask(mask))
        parameters = dict(block.named_parameters())
        variables = {"x": x, **{name: parameters[name] for name in BLOCK_PARAMETERS}}
        gradients, missing = _gradients((out * _tensor(out_weight)).sum(), variables)
    return {
        "inputs": {"x": gradients["x"]},
        "parameters": {name: gradients[name] for name in BLOCK_PARAMETERS},
        "no_gradient": missing,
    }


def encoder_block_dropout(module, weights, n_heads, x, dropout):
    """Outputs of EncoderBlock(..., dropout) holding `weights`: twice in evaluation mode, twice in
    training mode, and once for the same weights with dropout 0 (in evaluation mode)."""
    with _float64_on_one_thread(), torch.no_grad():
        x = _tensor(x)
        with_dropout = _block(module, weights, n_heads, dropout)
        without = _block(module, weights, n_heads, 0.0).eval()
        reference = _array(_block_output(without, x), "the block's output")
        with_dropout.eval()
        evaluation = [_array(_block_output(with_dropout, x), "the block's output") for _ in range(2)]
        with_dropout.train()
        training = [_array(_block_output(with_dropout, x), "the block's output") for _ in range(2)]
    return {"without_dropout": reference, "eval": evaluation, "train": training}


class _ReversalModel(nn.Module):
    """The notebook's ReversalModel, with the student's EncoderBlock: this copy cannot be edited."""

    def __init__(self, block, embedding, positions, readout_weight, readout_bias):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(_tensor(embedding), freeze=False)
        self.positions = nn.Parameter(_tensor(positions))
        self.block = block
        self.norm = nn.LayerNorm(self.positions.shape[1])
        self.readout = nn.Linear(self.positions.shape[1], DIGITS)
        with torch.no_grad():
            self.readout.weight.copy_(_tensor(readout_weight))
            self.readout.bias.copy_(_tensor(readout_bias))

    def forward(self, x):
        h = self.embedding(x) + self.positions
        return self.readout(self.norm(_block_output(self.block, h)))


def train_reversal(module, weights, n_heads, x_train, y_train, x_test, steps, batch_size, lr, seed):
    """Train the student's EncoderBlock (starting from `weights`) inside the notebook's ReversalModel.

    Adam on the cross-entropy at every position, the learning rate falling linearly from `lr` to 0
    over `steps` minibatches of `batch_size` sequences drawn with np.random.default_rng(seed), as
    the notebook's train_reversal does. Returns the logits for x_test, of shape (N_test, L, 10),
    computed in evaluation mode; the reversed test sequences stay outside.
    """
    with _float64_on_one_thread():
        block = _block(module, weights["block"], n_heads)
        model = _ReversalModel(
            block, weights["embedding"], weights["positions"], weights["readout_weight"], weights["readout_bias"]
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        x_train = torch.as_tensor(np.asarray(x_train, dtype=np.int64))
        y_train = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
        rng = np.random.default_rng(seed)
        model.train()
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * (1.0 - step / steps)
            batch = torch.as_tensor(rng.choice(len(x_train), size=batch_size, replace=False))
            logits = model(x_train[batch])
            loss = nn.functional.cross_entropy(logits.reshape(-1, DIGITS), y_train[batch].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            return _array(model(torch.as_tensor(np.asarray(x_test, dtype=np.int64))), "the model's logits")
