"""Probes for the explainability assignment: code that runs in the sandbox, next to the student module.

Every probe builds a fresh DigitsCNN (this file's own copy of the class given in the notebook),
loads either the shipped weights (/data/digits_cnn.pt, with weights_only=True) or the weights it
is sent (randomised ones, for the sanity checks), calls one of the student's attribution
functions with it and returns plain data. The reference attributions are computed outside, in
the trusted process, from the same weights; nothing expected comes in here.

The hidden tests' conftest.py runs this file too, to build the very same DigitsCNN: keep it free
of side effects at import time.
"""

import numpy as np
import torch
from torch import nn

WEIGHTS_FILE = "/data/digits_cnn.pt"
METHODS = ("saliency", "integrated_gradients", "grad_cam")


class DigitsCNN(nn.Module):
    """The fixed network whose decisions are explained: images (N, 1, 8, 8) -> logits (N, 10).

    conv1 (1 -> 8 channels, 3x3, padding 1) -> ReLU -> conv2 (8 -> 16, 3x3, padding 1) -> ReLU
    -> 2x2 max-pooling -> flatten -> fc (256 -> 10). Both convolutions keep the 8x8 size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc(x.flatten(1))


def _one_thread():
    """One thread, whatever the grading run's setting: the network is tiny, and results stay put."""
    torch.set_num_threads(1)


def _model(weights):
    """A fresh float32 DigitsCNN in eval mode holding `weights` (arrays by name), or the shipped ones."""
    model = DigitsCNN()
    if weights is None:
        state = torch.load(WEIGHTS_FILE, map_location="cpu", weights_only=True)
    else:
        state = {name: torch.tensor(np.asarray(value, dtype=np.float32)) for name, value in weights.items()}
    model.load_state_dict(state)
    model.eval()
    return model


def _function(module, method):
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}")
    function = getattr(module, method, None)
    if not callable(function):
        raise NameError(
            f"the submission does not define {method}: check that the cell defining it runs without an error"
        )
    return function


def _attribute(module, model, method, images, targets, options):
    """Call the student's `method` positionally, as the notebook's signatures give the arguments."""
    function = _function(module, method)
    x = torch.tensor(np.asarray(images, dtype=np.float32))
    t = torch.tensor(np.asarray(targets, dtype=np.int64))
    if method == "integrated_gradients":
        baselines = torch.tensor(np.asarray(options["baselines"], dtype=np.float32))
        return function(model, x, t, baselines, int(options["steps"]))
    if method == "grad_cam":
        return function(model, x, t, str(options["layer_name"]))
    return function(model, x, t)


def _plain(value):
    """What the student's function returned: its type's name and, for a tensor or array, its values."""
    if isinstance(value, torch.Tensor):
        return {"type": "Tensor", "values": value.detach().to(torch.float64).cpu().numpy()}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"type": "ndarray", "values": np.array(value, dtype=np.float64)}
    return {"type": type(value).__name__, "values": None}


def explain(module, method, images, targets, options, weights=None):
    """The student's `method` for a fresh model holding `weights` (None: the shipped ones).

    `options` holds `baselines` and `steps` for integrated_gradients, `layer_name` for grad_cam.
    Returns {"type": type name of the result, "values": float64 array or None}.
    """
    _one_thread()
    model = _model(weights)
    return _plain(_attribute(module, model, method, images, targets, options))


def _hooks(model):
    """How many forward and backward hooks the model's modules hold."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, name, {})) for m in model.modules() for name in names)


def side_effects(module, images, targets, options):
    """Run every method on one model, then Grad-CAM on conv2 again; report what the calls left behind.

    `options` holds `baselines`, `steps` and `layer_name`. Returns counts of changed parameters
    and requires_grad flags, whether the model is still in eval mode, the hooks left on its
    modules, and the two Grad-CAM results (a hook left behind may change the second).
    """
    _one_thread()
    model = _model(None)
    parameters = list(model.parameters())
    before = [p.detach().clone() for p in parameters]
    flags = [p.requires_grad for p in parameters]
    first = _plain(_attribute(module, model, "grad_cam", images, targets, options))
    for method in ("saliency", "integrated_gradients"):
        _attribute(module, model, method, images, targets, options)
    again = _plain(_attribute(module, model, "grad_cam", images, targets, options))
    after = list(model.parameters())
    changed = len(before) if len(after) != len(before) else sum(
        1 for a, b in zip(before, after) if a.shape != b.shape or not torch.equal(a, b.detach())
    )
    return {
        "parameters_changed": changed,
        "requires_grad_changed": sum(1 for flag, p in zip(flags, after) if p.requires_grad != flag),
        "training": bool(model.training),
        "hooks_left": _hooks(model),
        "first": first,
        "again": again,
    }
