"""Correct, written differently from the reference in every part.

Must score full marks: eps from torch.randn with mu's dtype; the KL rearranged as
1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2); the BCE written with softplus; a deeper VAE with ELU
and one encoder head chunked into mu and logvar; the GAN losses with F.logsigmoid; ReLU networks
in an nn.Module of their own; fakes made under torch.no_grad() and gradients cleared through the
module in the discriminator step; the discriminator frozen with requires_grad_(False) during the
generator step.
"""


# %%

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 64  # an 8x8 digit, flattened; grey levels scaled to [0, 1]
LATENT_DIM = 8  # the size of the VAE's latent code z
NOISE_DIM = 2  # the size of the GAN generator's input noise


# %%
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, written with torch.randn and the dtype of mu."""
    eps = torch.randn(mu.shape, dtype=mu.dtype)
    return logvar.mul(0.5).exp() * eps + mu


# %%
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2), the same closed form rearranged."""
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar).sum(dim=-1)


def elbo_loss(logits, x, mu, logvar):
    """BCE written with softplus: -x log s(l) - (1 - x) log(1 - s(l)) = softplus(l) - x * l."""
    per_example = (F.softplus(logits) - x * logits).sum(dim=1)
    reconstruction = per_example.mean()
    kl = gaussian_kl(mu, logvar).mean()
    return reconstruction + kl, reconstruction, kl


# %%
class VAE(nn.Module):
    """Two hidden layers on each side, and one head that outputs mu and logvar together."""

    def __init__(self, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(PIXELS, 128), nn.ELU(), nn.Linear(128, 64), nn.ELU(), nn.Linear(64, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64), nn.ELU(), nn.Linear(64, 128), nn.ELU(), nn.Linear(128, PIXELS)
        )

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar


# %%
def train_vae(
    model: VAE, x: torch.Tensor, epochs: int = 50, batch_size: int = 128, lr: float = 3e-3, seed: int = 0
) -> list[float]:
    """Train `model` on the images x (N, PIXELS) with Adam; return the mean loss of each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)  # the shuffling, independent of the sampling
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(x), generator=order).split(batch_size):
            images = x[batch]
            mu, logvar = model.encode(images)
            logits = model.decode(reparameterize(mu, logvar))
            loss = elbo_loss(logits, images, mu, logvar)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    return losses


# %%
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean log D(x) - mean log(1 - D(G(z))), with log(1 - sigmoid(l)) = logsigmoid(-l)."""
    return -F.logsigmoid(real_logits).mean() - F.logsigmoid(-fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean log D(G(z))."""
    return -F.logsigmoid(fake_logits).mean()


# %%
class MLP(nn.Module):
    """A small fully connected network with ReLU activations."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(inputs, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, outputs)])

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def build_generator() -> nn.Module:
    return MLP(NOISE_DIM, 2)


def build_discriminator() -> nn.Module:
    return MLP(2, 1)


def make_optimizers(generator, discriminator):
    adam = {"lr": 2e-3, "betas": (0.5, 0.999)}
    return torch.optim.Adam(generator.parameters(), **adam), torch.optim.Adam(discriminator.parameters(), **adam)


# %%
def discriminator_step(generator, discriminator, d_optimizer, real, z):
    """Fakes made without a graph (torch.no_grad), gradients cleared through the module."""
    with torch.no_grad():
        fake = generator(z)
    discriminator.zero_grad(set_to_none=True)
    loss = discriminator_loss(discriminator(real), discriminator(fake))
    loss.backward()
    d_optimizer.step()
    return float(loss)


def generator_step(generator, discriminator, g_optimizer, z):
    """The discriminator frozen (requires_grad off) during the step, then unfrozen."""
    for parameter in discriminator.parameters():
        parameter.requires_grad_(False)
    try:
        loss = generator_loss(discriminator(generator(z)))
        g_optimizer.zero_grad()
        loss.backward()
        g_optimizer.step()
    finally:
        for parameter in discriminator.parameters():
            parameter.requires_grad_(True)
    return float(loss)


# %%
def ring_of_gaussians(
    num_points: int, modes: int = 6, radius: float = 2.0, std: float = 0.2, angle: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Points (num_points, 2) drawn evenly from `modes` Gaussians centred on a circle."""
    rng = np.random.default_rng(seed)
    theta = angle + 2.0 * np.pi * rng.integers(0, modes, size=num_points) / modes
    centres = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return (centres + std * rng.normal(size=(num_points, 2))).astype(np.float32)


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: torch.Tensor,
    steps: int = 600,
    batch_size: int = 256,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Alternate one discriminator step and one generator step; return the (d, g) losses of each step."""
    g_optimizer, d_optimizer = make_optimizers(generator, discriminator)
    draw = torch.Generator().manual_seed(seed)  # batches and noise, independent of your code's sampling
    losses = []
    for _ in range(steps):
        real = data[torch.randint(len(data), (batch_size,), generator=draw)]
        z = torch.randn(batch_size, NOISE_DIM, generator=draw)
        d_loss = discriminator_step(generator, discriminator, d_optimizer, real, z)
        z = torch.randn(batch_size, NOISE_DIM, generator=draw)
        g_loss = generator_step(generator, discriminator, g_optimizer, z)
        losses.append((d_loss, g_loss))
    return losses


# %%
def load_digits_file(path: str = "digits.npz") -> np.ndarray:
    """The digits in digits.npz (see the last cell) as float32 (N, PIXELS), grey levels in [0, 1]."""
    with np.load(path) as data:
        return (data["x"].reshape(-1, PIXELS) / 16.0).astype(np.float32)


def describe_models() -> dict[str, list[int]]:
    """The output shapes of new models on a batch of 4 (for the visible tests)."""
    vae = VAE()
    with torch.no_grad():
        mu, logvar = vae.encode(torch.rand(4, PIXELS))
        logits = vae.decode(torch.randn(4, LATENT_DIM))
        points = build_generator()(torch.randn(4, NOISE_DIM))
        decisions = build_discriminator()(torch.randn(4, 2))
    return {
        "mu": list(mu.shape),
        "logvar": list(logvar.shape),
        "logits": list(logits.shape),
        "generator": list(points.shape),
        "discriminator": list(decisions.shape),
    }


def kl_on_arrays(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """gaussian_kl on float64 arrays, as an array of shape (N,)."""
    return gaussian_kl(torch.as_tensor(mu), torch.as_tensor(logvar)).detach().numpy()


def elbo_on_arrays(logits: np.ndarray, x: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> list[float]:
    """elbo_loss on float64 arrays, as [loss, reconstruction, kl]."""
    tensors = [torch.as_tensor(a) for a in (logits, x, mu, logvar)]
    return [float(value) for value in elbo_loss(*tensors)]


def reparameterize_gradients(mu: np.ndarray, logvar: np.ndarray) -> dict[str, np.ndarray]:
    """z = reparameterize(mu, logvar) and the gradients of z.sum() by mu and by logvar."""
    mu_t = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
    logvar_t = torch.tensor(logvar, dtype=torch.float64, requires_grad=True)
    z = reparameterize(mu_t, logvar_t)
    z.sum().backward()
    none = np.full(np.shape(mu), np.nan)
    return {
        "z": z.detach().numpy(),
        "mu": none if mu_t.grad is None else mu_t.grad.numpy(),
        "logvar": none if logvar_t.grad is None else logvar_t.grad.numpy(),
    }


def gan_losses_on_arrays(real_logits: np.ndarray, fake_logits: np.ndarray) -> list[float]:
    """[discriminator_loss, generator_loss] on float64 arrays of shape (N, 1)."""
    real, fake = torch.as_tensor(real_logits), torch.as_tensor(fake_logits)
    return [float(discriminator_loss(real, fake)), float(generator_loss(fake))]
