"""Probes for the cnn assignment: code that runs in the sandbox, next to the student module.

What comes back is plain data (numbers, lists, dicts, numpy arrays); the hidden tests decide
everything outside. Training and prediction are separate calls: `fit` trains a model and keeps it
here, `predict` is sent the held-out inputs only after that call has returned, so the held-out
inputs are never in the sandbox while the student's `train` runs, and their labels never are.

Everything measured here (parameter counts, which tensors changed) is computed by this file's
code, but in the same process as the student's code, which could in principle tamper with it.
That is accepted for architecture and training-behaviour rules; accuracy is computed outside.
"""

import time

import numpy as np
import torch
from torch import nn

CLASSES = 10
PREDICT_BATCH_SIZE = 50

# The model trained by the last `fit` call, used by the next `predict` call in this worker.
_TRAINED = {}


def _one_thread():
    """Run on one thread, whatever the grading run's thread setting.

    The time limit of the graded training run was calibrated on one thread (NOTES.md). The
    grader gives a lone submission every core; for a model this small, several threads on a
    busy machine were up to 10 times slower, and a submission must not pass or time out
    depending on how many others were graded beside it.
    """
    torch.set_num_threads(1)


def _images(x):
    """numpy (N, 1, 8, 8) or (N, 64) -> a fresh float32 tensor of shape (N, 1, 8, 8)."""
    return torch.tensor(np.array(x, dtype=np.float32)).reshape(-1, 1, 8, 8)


def _labels(y):
    return torch.tensor(np.array(y, dtype=np.int64))


def _new_model(module):
    model = module.build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _call(model, x):
    """model(x); an exception from it is re-raised saying on what input it happened.

    The student's own frames may all be inside torch (an nn.Sequential), so without this the
    report would only name the probe.
    """
    try:
        return model(x)
    except Exception as exc:
        message = f"the model raised on a batch of shape {tuple(x.shape)}: {exc}"
        try:
            wrapped = type(exc)(message)
        except Exception:  # an exception class that needs other arguments
            wrapped = RuntimeError(f"{type(exc).__name__}: {message}")
        raise wrapped from exc


def _forward(model, x, what):
    """The model's output for x, checked to be a float tensor of shape (len(x), 10)."""
    out = _call(model, x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned a {type(out).__name__} for {what}, not a tensor")
    if tuple(out.shape) != (len(x), CLASSES):
        raise ValueError(
            f"the model's output for {what} has shape {tuple(out.shape)}, "
            f"expected {(len(x), CLASSES)}"
        )
    return out.float()


def _state(model):
    """Copies of every parameter and buffer (batch-norm statistics included)."""
    return [t.detach().clone() for t in [*model.parameters(), *model.buffers()]]


def _changed(before, after):
    """How many of the tensors differ (all of them, if the set of tensors itself changed)."""
    if len(before) != len(after):
        return max(len(before), len(after))
    return sum(
        1 for a, b in zip(before, after) if a.shape != b.shape or not torch.equal(a, b)
    )


def _plain_losses(losses):
    """train()'s return value as a list of floats, or a string saying what it was instead."""
    if not isinstance(losses, (list, tuple)):
        return f"a {type(losses).__name__}"
    try:
        return [float(value) for value in losses]
    except (TypeError, ValueError, RuntimeError):
        return "a list holding something other than numbers"


def _mean_loss(model, x, y):
    """Mean cross-entropy of the model on (x, y), in eval mode without gradients."""
    model.eval()
    with torch.no_grad():
        logits = _forward(model, x, f"a batch of {len(x)} images")
        return float(nn.functional.cross_entropy(logits, y))


def model_outputs(module, batches):
    """Build a model and describe its output (eval mode, no gradients) for each batch."""
    _one_thread()
    model = _new_model(module)
    model.eval()
    described = []
    with torch.no_grad():
        for x in batches:
            out = _call(model, _images(x))
            if not isinstance(out, torch.Tensor):
                described.append({"type": type(out).__name__})
                continue
            described.append(
                {
                    "type": "Tensor",
                    "dtype": str(out.dtype).removeprefix("torch."),
                    "shape": list(out.shape),
                    "values": out.detach().double().cpu().numpy(),
                }
            )
    return described


def count_parameters(module):
    """Build a model and count its parameters, all of them, trainable or not."""
    _one_thread()
    model = _new_model(module)
    return {"parameters": int(sum(p.numel() for p in model.parameters()))}


def convolutions_in_use(module, x):
    """Count the model's nn.Conv2d layers, and those whose weights get a gradient from the output."""
    _one_thread()
    model = _new_model(module)
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.train()
    model.zero_grad()
    _forward(model, _images(x), f"a batch of {len(x)} images").sum().backward()
    in_use = sum(
        1
        for conv in convolutions
        if conv.weight.grad is not None and bool(conv.weight.grad.abs().sum() > 0)
    )
    return {"conv_layers": len(convolutions), "conv_layers_in_use": in_use}


def train_briefly(module, x, y, epochs):
    """Train a fresh model for `epochs` epochs; report losses and what changed."""
    _one_thread()
    model = _new_model(module)
    x, y = _images(x), _labels(y)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    loss_before = _mean_loss(model, x, y)
    model.train()  # as build_model() returned it: _mean_loss switched it to eval mode
    losses = module.train(model, x, y, epochs=epochs)
    after = [p.detach().clone() for p in trainable]
    return {
        "losses": _plain_losses(losses),
        "loss_before": loss_before,
        "loss_after": _mean_loss(model, x, y),
        "tensors_trainable": len(before),
        "tensors_changed": _changed(before, after),
    }


def fit(module, x, y, epochs=None):
    """Train a fresh model (with train()'s own defaults unless `epochs` is given) and keep it."""
    _one_thread()
    _TRAINED.clear()
    model = _new_model(module)
    x, y = _images(x), _labels(y)
    started = time.perf_counter()
    if epochs is None:
        losses = module.train(model, x, y)
    else:
        losses = module.train(model, x, y, epochs=epochs)
    seconds = time.perf_counter() - started
    _TRAINED["model"] = model
    return {"losses": _plain_losses(losses), "train_seconds": seconds}


def predict(module, x):
    """Logits of the model kept by `fit`, twice: in batches of 50, and one image at a time.

    The second pass goes through the images in reverse order, so each image is seen in a
    different company. For a model that only predicts, both passes agree up to rounding, and
    no parameter or buffer changes.
    """
    _one_thread()
    if "model" not in _TRAINED:
        raise RuntimeError("no trained model: `fit` must run before `predict` in the same worker")
    model = _TRAINED.pop("model")
    x = _images(x)
    model.eval()
    before = _state(model)
    with torch.no_grad():
        batched = torch.cat(
            [
                _forward(model, x[i : i + PREDICT_BATCH_SIZE], "a batch of held-out images")
                for i in range(0, len(x), PREDICT_BATCH_SIZE)
            ]
        )
        single = torch.empty_like(batched)
        for i in reversed(range(len(x))):
            single[i] = _forward(model, x[i : i + 1], "a single image")[0]
    return {
        "logits": batched.cpu().numpy(),
        "logits_one_by_one": single.cpu().numpy(),
        "tensors_changed": _changed(before, _state(model)),
    }
