"""A correct submission to the explainability assignment written differently from the reference.

Gradients with torch.func instead of autograd's tensor API: torch.func.grad of a function of
one image, vmapped over the batch (and, for integrated gradients, over the path). Grad-CAM
splits the forward pass at the named layer with a forward hook that swaps in a tensor of its own
(torch.func.vjp of the rest of the network), so the activations' gradient comes from vjp. Full
marks.
"""

# %%
from pathlib import Path

import numpy as np
import torch
from torch import nn


# %%
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


def weights_file() -> Path:
    """The shipped weights: /data/digits_cnn.pt when graded, else data/digits_cnn.pt next to the notebook."""
    for candidate in (Path("/data/digits_cnn.pt"), Path("data/digits_cnn.pt")):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("digits_cnn.pt not found: copy the assignment's data folder next to this notebook")


def load_digits_cnn() -> DigitsCNN:
    """The trained network, in evaluation mode."""
    model = DigitsCNN()
    model.load_state_dict(torch.load(weights_file(), map_location="cpu", weights_only=True))
    model.eval()
    return model


# %%
def _image_gradients(model: nn.Module, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    def one(image, target):
        logits = lambda x: torch.func.functional_call(model, dict(model.named_parameters()), (x[None],))[0]
        return torch.func.grad(lambda x: logits(x).gather(0, target.view(1)).squeeze(0))(image)

    return torch.func.vmap(one)(points, targets)


def saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """|dF_c(x)/dx| for every image, F_c the logit of its target class; shape (N, 1, 8, 8)."""
    with torch.no_grad():
        return _image_gradients(model, images, targets).abs()


# %%
def integrated_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, baselines: torch.Tensor, steps: int
) -> torch.Tensor:
    """Integrated gradients from `baselines` to `images`, right Riemann sum with `steps` points."""
    total = torch.zeros_like(images)
    with torch.no_grad():
        for k in range(1, steps + 1):
            total += _image_gradients(model, baselines + (k / steps) * (images - baselines), targets)
    return (images - baselines) * total / steps


# %%
def grad_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer_name: str) -> torch.Tensor:
    """Grad-CAM of the target logit on the convolution named `layer_name`; shape (N, H, W) of that layer."""
    layer = model.get_submodule(layer_name)
    with torch.no_grad():
        recorded = {}
        handle = layer.register_forward_hook(lambda module, inputs, output: recorded.update(A=output))
        try:
            model(images)
        finally:
            handle.remove()
        activations = recorded["A"]

        def from_layer(a):
            replace = layer.register_forward_hook(lambda module, inputs, output: a)
            try:
                logits = model(images)
            finally:
                replace.remove()
            return logits.gather(1, targets.view(-1, 1)).squeeze(1)

        _, pullback = torch.func.vjp(from_layer, activations)
        (gradients,) = pullback(torch.ones(len(images)))
    alpha = gradients.mean(dim=(2, 3), keepdim=True)
    return torch.relu((alpha * activations).sum(dim=1))


# %%
def model_with_weights(weights: dict | None) -> DigitsCNN:
    """A DigitsCNN in eval mode holding `weights` (NumPy arrays by parameter name), or the shipped ones if None."""
    if weights is None:
        return load_digits_cnn()
    model = DigitsCNN()
    model.load_state_dict({name: torch.tensor(np.asarray(value, dtype=np.float32)) for name, value in weights.items()})
    model.eval()
    return model


def explain_with_weights(method: str, weights: dict | None, images: np.ndarray, targets: np.ndarray, **options) -> np.ndarray:
    """Run one of your methods on NumPy inputs, for a DigitsCNN holding `weights`; return the maps as NumPy.

    options: baselines and steps for integrated_gradients, layer_name for grad_cam.
    """
    model = model_with_weights(weights)
    x = torch.tensor(np.asarray(images, dtype=np.float32))
    t = torch.tensor(np.asarray(targets, dtype=np.int64))
    if method == "saliency":
        maps = saliency(model, x, t)
    elif method == "integrated_gradients":
        baselines = torch.tensor(np.asarray(options["baselines"], dtype=np.float32))
        maps = integrated_gradients(model, x, t, baselines, int(options["steps"]))
    elif method == "grad_cam":
        maps = grad_cam(model, x, t, str(options["layer_name"]))
    else:
        raise ValueError(f"unknown method {method!r}")
    return torch.as_tensor(maps).detach().to(torch.float64).numpy()


def logits_with_weights(weights: dict | None, images: np.ndarray) -> np.ndarray:
    """The logits (N, 10) of a DigitsCNN holding `weights` (None: the shipped ones) for NumPy images."""
    model = model_with_weights(weights)
    with torch.no_grad():
        return model(torch.tensor(np.asarray(images, dtype=np.float32))).to(torch.float64).numpy()
