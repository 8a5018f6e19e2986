"""The discriminator step uses the fakes without detaching them.

Must cost points: backward() of the discriminator loss then runs through the generator and leaves
gradients in it, which the step test sees. Because generator_step clears g_optimizer's gradients
before its own backward(), the generator is not harmed in training, so only that check fails.
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
    """Draw z ~ N(mu, exp(logvar)), elementwise, as a differentiable function of mu and logvar.

    Args:
        mu: the means, of shape (N, L).
        logvar: the log-variances log(sigma^2), of the same shape.

    Returns:
        z = mu + sigma * eps, with eps drawn from N(0, 1) by torch's generator; shape (N, L).
    """
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mu + std * eps
    ### END SOLUTION


# %%
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) of each example.

    Args:
        mu, logvar: the encoder's outputs, each of shape (N, L).

    Returns:
        A tensor of shape (N,): the KL divergence of each example, summed over the L dimensions.
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def elbo_loss(
    logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The negative ELBO of a batch, and its two terms.

    Args:
        logits: the decoder's output, one logit per pixel, of shape (N, PIXELS).
        x: the images, grey levels in [0, 1], of shape (N, PIXELS).
        mu, logvar: the encoder's outputs, each of shape (N, L).

    Returns:
        (loss, reconstruction, kl), three scalar tensors: the binary cross-entropy summed over
        the pixels and the KL divergence summed over the latent dimensions, each averaged over
        the batch, and loss = reconstruction + kl.
    """
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = gaussian_kl(mu, logvar).mean()
    return reconstruction + kl, reconstruction, kl
    ### END SOLUTION


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
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Mean BCE of the real logits against 1 plus mean BCE of the fake logits against 0.

    Args:
        real_logits: D's logits for real points, shape (N, 1).
        fake_logits: D's logits for generated points, shape (M, 1).

    Returns:
        A scalar tensor.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: mean BCE of D's logits for generated points against 1.

    Args:
        fake_logits: D's logits for generated points, shape (M, 1).

    Returns:
        A scalar tensor.
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    ### END SOLUTION


# %%
def build_generator() -> nn.Module:
    """Noise (N, NOISE_DIM) -> points (N, 2)."""
    return nn.Sequential(
        nn.Linear(NOISE_DIM, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 2)
    )


def build_discriminator() -> nn.Module:
    """Points (N, 2) -> logits (N, 1)."""
    return nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))


def make_optimizers(
    generator: nn.Module, discriminator: nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """(g_optimizer, d_optimizer): Adam(lr=2e-3, betas=(0.5, 0.999)), each over its own network."""
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    return g_optimizer, d_optimizer
    ### END SOLUTION


# %%
def discriminator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    d_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
) -> float:
    """One update of the discriminator on the real points (N, 2) and fakes made from z (M, NOISE_DIM)."""
    fake = generator(z)
    loss = discriminator_loss(discriminator(real), discriminator(fake))
    d_optimizer.zero_grad()
    loss.backward()
    d_optimizer.step()
    return loss.item()


def generator_step(
    generator: nn.Module, discriminator: nn.Module, g_optimizer: torch.optim.Optimizer, z: torch.Tensor
) -> float:
    """One update of the generator, through the (unchanged) discriminator, on fakes made from z."""
    loss = generator_loss(discriminator(generator(z)))
    g_optimizer.zero_grad()
    loss.backward()
    g_optimizer.step()
    return loss.item()
    ### END SOLUTION


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
