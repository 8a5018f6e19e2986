"""Probes for the cnn assignment: code that runs in the sandbox, next to the student module.

What comes back is plain data (numbers, lists, dicts, numpy arrays); the hidden tests decide
everything outside. Training and prediction are separate calls: `fit` trains a model and keeps it
here, `predict` is sent the held-out inputs only after that call has returned, so the held-out
inputs are never in the sandbox while the student's `train` runs, and their labels never are.

Everything measured here (parameter counts, which tensors changed) is computed by this file's
code, but in the same process as the student's code, which could in principle tamper with it.
That is accepted for architecture and training-behaviour rules; accuracy is computed outside.
"""

import hashlib
import time

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

CLASSES = 10
PREDICT_BATCH_SIZE = 50
LOSS_FUNCTIONS = {"cross_entropy", "nll_loss"}
# At most this many function names or batch losses are kept per run (a bound on the reply).
RECORD_LIMIT = 5000

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
    return _checked(_call(model, x), x, what)


def _checked(out, x, what):
    """The model's output `out` for x, checked to be a float tensor of shape (len(x), 10)."""
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


class _Recorder(TorchFunctionMode):
    """While active: the names of the torch functions called, and every loss that is backpropagated.

    A loss is a call of F.cross_entropy or F.nll_loss (what nn.CrossEntropyLoss and nn.NLLLoss
    call), kept as [mean loss per example, examples, backpropagated], whatever its reduction;
    a hook on the loss tensor marks it backpropagated when a backward pass reaches it, so a loss
    that is only computed (to print it, say) does not count.
    """

    def __init__(self, keep_names, on_loss=None):
        super().__init__()
        self.keep_names, self.on_loss = keep_names, on_loss
        self.names = []
        self.losses = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if self.keep_names and len(self.names) < RECORD_LIMIT:
            self.names.append(name)
        if name in LOSS_FUNCTIONS and len(self.losses) < RECORD_LIMIT:
            self._keep_loss(result, args, kwargs)
        return result

    def _keep_loss(self, result, args, kwargs):
        if not (isinstance(result, torch.Tensor) and result.requires_grad and args):
            return  # not a loss that training can backpropagate (e.g. one computed under no_grad)
        examples = int(args[0].shape[0]) if isinstance(args[0], torch.Tensor) and args[0].dim() else 1
        reduction = kwargs.get("reduction", "mean")
        value = float(result.detach().double().mean() if result.dim() else result.detach().double())
        if reduction == "sum":
            value /= max(examples, 1)
        entry = [value, examples, False]
        self.losses.append(entry)
        result.register_hook(lambda grad: entry.__setitem__(2, True))
        if self.on_loss is not None and len(args) > 1:
            self.on_loss(args[0], args[1])

    def backpropagated_losses(self):
        """(mean loss per example, examples) of every loss a backward pass reached, in order."""
        return [(value, examples) for value, examples, used in self.losses if used]


class _TrainingWatch:
    """While active: whether each forward pass with gradients runs in training mode, whether each
    backward pass leaves every parameter holding only the gradient of that pass, and (given the
    label of every training image) whether each loss is given the labels of the images whose
    outputs it is given."""

    def __init__(self, model, parameters, labels_by_image=None):
        self.model, self.parameters = model, parameters
        self.labels_by_image = labels_by_image
        self.outputs = []  # (output, its images' labels) of the latest forward passes
        self.batches_paired = self.batches_mislabelled = 0
        self.forward_passes = self.forward_passes_in_eval_mode = 0
        self.fresh = {}
        self.backward_passes = [0] * len(parameters)
        self.accumulated = [0] * len(parameters)
        self.handles = []

    def __enter__(self):
        self.handles.append(self.model.register_forward_hook(self._after_forward))
        for i, parameter in enumerate(self.parameters):
            self.handles.append(parameter.register_hook(lambda grad, i=i: self._incoming(i, grad)))
            self.handles.append(parameter.register_post_accumulate_grad_hook(lambda p, i=i: self._accumulated(i, p)))
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.remove()

    def _after_forward(self, model, inputs, output):
        if torch.is_grad_enabled():
            self.forward_passes += 1
            self.forward_passes_in_eval_mode += not model.training
            labels = self._labels_of(inputs[0]) if inputs else None
            if labels is not None and isinstance(output, torch.Tensor):
                self.outputs = [*self.outputs[-3:], (output, labels)]

    def _labels_of(self, images):
        """The labels of a batch of training images, or None if one is not a training image
        (augmented, say) or not known for sure."""
        if self.labels_by_image is None or not isinstance(images, torch.Tensor) or images.dtype != torch.float32:
            return None
        rows = images.detach().cpu().reshape(len(images), -1).numpy()
        labels = [self.labels_by_image.get(row.tobytes()) for row in rows]
        return None if any(label is None for label in labels) else torch.tensor(labels)

    def check_labels(self, logits, target):
        """Called with the arguments of each loss: are the targets the labels of those images?"""
        for output, labels in self.outputs:
            if output is logits and isinstance(target, torch.Tensor) and target.shape == labels.shape:
                self.batches_paired += 1
                self.batches_mislabelled += not torch.equal(target.detach().cpu().long(), labels)
                return

    def _incoming(self, i, grad):
        self.fresh[i] = grad.detach().clone()

    def _accumulated(self, i, parameter):
        fresh = self.fresh.pop(i, None)
        if fresh is None or parameter.grad is None:
            return
        self.backward_passes[i] += 1
        scale = float(fresh.abs().max()) + 1e-12
        if parameter.grad.shape != fresh.shape or float((parameter.grad - fresh).abs().max()) > 1e-6 * scale:
            self.accumulated[i] += 1


def forward_trace(module, x):
    """One forward pass of a fresh model (eval mode): the torch functions it calls, in order, and
    how far it is from an affine function (its output at the midpoint of two batches of images
    against the midpoint of its outputs; zero for an affine model)."""
    _one_thread()
    model = _new_model(module)
    model.eval()
    x = _images(x)
    half = len(x) // 2
    first, second = x[:half], x[half : 2 * half]
    with torch.no_grad():
        with _Recorder(keep_names=True) as recorder:
            out_first = _call(model, first)
        out_first = _checked(out_first, first, f"a batch of {half} images")
        out_second = _forward(model, second, f"a batch of {half} images")
        out_middle = _forward(model, (first + second) / 2, f"a batch of {half} images")
    return {
        "calls": recorder.names,
        "affine_deviation": float((out_middle - (out_first + out_second) / 2).abs().max()),
        "output_spread": float((out_first - out_second).abs().max()),
    }


# train_briefly's reply by its arguments: several tests read parts of the same run. The worker
# seeds every call alike, so a second run would give the same reply; this only saves the time.
_BRIEF_RUNS = {}


def train_briefly(module, x, y, epochs):
    """Train a fresh model for `epochs` epochs and report what train() did.

    The model is handed over in eval mode (as predict() leaves it), so train() must switch it to
    training mode. Reported: the losses train() returned, the grader's own cross-entropy before
    and after, which parameter tensors changed, the forward passes run in eval mode, the
    backward passes that added to gradients left over from an earlier pass, and every batch
    loss that train() computed with F.cross_entropy or F.nll_loss.
    """
    key = hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    if (key, epochs) not in _BRIEF_RUNS:
        _BRIEF_RUNS[key, epochs] = _train_briefly(module, x, y, epochs)
    return _BRIEF_RUNS[key, epochs]


def _labels_by_image(x, y):
    """Each training image's label by its bytes; None for an image that occurs with two labels."""
    labels = {}
    for row, label in zip(x.reshape(len(x), -1).numpy(), y.tolist()):
        key = row.tobytes()
        labels[key] = label if labels.get(key, label) == label else None
    return labels


def _train_briefly(module, x, y, epochs):
    _one_thread()
    model = _new_model(module)
    x, y = _images(x), _labels(y)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    loss_before = _mean_loss(model, x, y)  # leaves the model in eval mode
    watch = _TrainingWatch(model, trainable, _labels_by_image(x, y))
    with watch, _Recorder(keep_names=False, on_loss=watch.check_labels) as recorder:
        losses = module.train(model, x, y, epochs=epochs)
    after = [p.detach().clone() for p in trainable]
    return {
        "losses": _plain_losses(losses),
        "loss_before": loss_before,
        "loss_after": _mean_loss(model, x, y),
        "tensors_trainable": len(before),
        "tensors_changed": _changed(before, after),
        "forward_passes": watch.forward_passes,
        "forward_passes_in_eval_mode": watch.forward_passes_in_eval_mode,
        "backward_passes": max(watch.backward_passes, default=0),
        "backward_passes_accumulating": max(watch.accumulated, default=0),
        "batches_paired": watch.batches_paired,
        "batches_mislabelled": watch.batches_mislabelled,
        "batch_losses": [value for value, _ in recorder.backpropagated_losses()],
        "batch_sizes": [examples for _, examples in recorder.backpropagated_losses()],
    }


def fit(module, x, y, epochs=None):
    """Train a fresh model (with train()'s own defaults unless `epochs` is given) and keep it.

    Also reported: how many backward passes added to gradients left over from an earlier one.
    """
    _one_thread()
    _TRAINED.clear()
    model = _new_model(module)
    x, y = _images(x), _labels(y)
    started = time.perf_counter()
    with _TrainingWatch(model, [p for p in model.parameters() if p.requires_grad]) as watch:
        if epochs is None:
            losses = module.train(model, x, y)
        else:
            losses = module.train(model, x, y, epochs=epochs)
    seconds = time.perf_counter() - started
    _TRAINED["model"] = model
    return {
        "losses": _plain_losses(losses),
        "train_seconds": seconds,
        "backward_passes_accumulating": max(watch.accumulated, default=0),
    }


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
