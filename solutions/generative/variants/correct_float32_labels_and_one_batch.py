"""Correct, with habits that change the arithmetic but not the result.

Must score full marks: eps drawn with Tensor.normal_; the BCE of the VAE computed on probabilities
(sigmoid, then F.binary_cross_entropy); the GAN losses with nn.BCEWithLogitsLoss and label tensors
from torch.ones/torch.zeros, which are float32 even when the tests' logits are float64 (so parts
of the loss are computed in float32: within the tests' tolerance); real and fake points through
the discriminator in one concatenated batch; a generator with tanh activations; the generator
step clears the discriminator's gradients when it is done.
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
def reparameterize(mu, logvar):
    """sigma * eps + mu with eps from Tensor.normal_ (the same generator as torch.randn)."""
    sigma = (logvar / 2).exp()
    return mu + sigma * torch.empty_like(mu).normal_()


# %%
def gaussian_kl(mu, logvar):
    """The closed form, per example, as a sum over the last dimension."""
    return (1 + logvar - mu**2 - logvar.exp()).sum(-1) * -0.5


def elbo_loss(logits, x, mu, logvar):
    """BCE on probabilities (sigmoid first), summed over pixels, averaged over the batch."""
    reconstruction = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    loss = reconstruction + kl
    return loss, reconstruction, kl


# %%
class VAE(nn.Module):
    """A variational autoencoder for flattened 8x8 digits."""

    def __init__(self, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        hidden = 128
        self.encoder = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, PIXELS))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, PIXELS) -> (mu, logvar), each of shape (N, latent_dim)."""
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, latent_dim) -> logits (N, PIXELS), one per pixel."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits of a reconstruction from one sample z, mu, logvar)."""
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
def discriminator_loss(real_logits, fake_logits):
    """Labels made with torch.ones/torch.zeros: float32 even when the logits are float64."""
    ones = torch.ones(real_logits.shape[0], 1)
    zeros = torch.zeros(fake_logits.shape[0], 1)
    bce = nn.BCEWithLogitsLoss()
    return bce(real_logits, ones) + bce(fake_logits, zeros)


def generator_loss(fake_logits):
    return nn.BCEWithLogitsLoss()(fake_logits, torch.ones(fake_logits.shape[0], 1))


# %%
def build_generator():
    return nn.Sequential(nn.Linear(NOISE_DIM, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))


def build_discriminator():
    return nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))


def make_optimizers(generator, discriminator):
    g = torch.optim.Adam(generator.parameters(), lr=0.002, betas=(0.5, 0.999))
    d = torch.optim.Adam(discriminator.parameters(), lr=0.002, betas=(0.5, 0.999))
    return g, d


# %%
def discriminator_step(generator, discriminator, d_optimizer, real, z):
    """Real and fake points through the discriminator in one batch, split afterwards."""
    d_optimizer.zero_grad()
    fake = generator(z).detach()
    logits = discriminator(torch.cat([real, fake]))
    loss = discriminator_loss(logits[: len(real)], logits[len(real) :])
    loss.backward()
    d_optimizer.step()
    return loss.item()


def generator_step(generator, discriminator, g_optimizer, z):
    g_optimizer.zero_grad()
    loss = generator_loss(discriminator(generator(z)))
    loss.backward()
    g_optimizer.step()
    discriminator.zero_grad()  # tidy: leave no gradients behind in the discriminator
    return loss.item()


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
