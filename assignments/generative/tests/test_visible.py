"""Visible tests for the generative assignment: shapes, and values you can work out by hand.

They call the helpers given in the notebook (`describe_models`, `kl_on_arrays`, `elbo_on_arrays`,
`reparameterize_gradients`, `gan_losses_on_arrays`), so they need nothing but the notebook. The
hidden tests check the same things on random tensors, the training steps, and train both models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.testing import assert_close, expect_array, expect_tuple, points

LATENT_DIM, PIXELS, NOISE_DIM = 8, 64, 2


@points(1)
def test_model_shapes(submission: Any) -> None:
    """encode: (4, 64) -> mu, logvar (4, 8); decode: (4, 8) -> (4, 64); G: (4, 2) -> (4, 2); D: (4, 2) -> (4, 1)."""
    shapes = submission.describe_models()
    expected = {
        "mu": [4, LATENT_DIM],
        "logvar": [4, LATENT_DIM],
        "logits": [4, PIXELS],
        "generator": [4, 2],
        "discriminator": [4, 1],
    }
    assert type(shapes) is dict and all(key in shapes for key in expected), (
        "describe_models() should return a dict with the keys " + ", ".join(expected) + ": it is given in the "
        "notebook; restore it if you changed it"
    )
    for name, shape in expected.items():
        assert shapes[name] == shape, f"{name}: shape {shapes[name]}, expected {shape}"


@points(1)
def test_kl_by_hand(submission: Any) -> None:
    """KL is 0 for mu = 0, sigma = 1; mu = 1 adds 1/2 per dimension; sigma^2 = e adds (e - 2) / 2."""
    mu = np.zeros((3, LATENT_DIM))
    logvar = np.zeros((3, LATENT_DIM))
    mu[1] = 1.0
    logvar[2, 0] = 1.0
    expected = np.array([0.0, 0.5 * LATENT_DIM, 0.5 * (math.e - 2.0)])
    kl = expect_array(submission.kl_on_arrays(mu, logvar), "gaussian_kl(mu, logvar)")
    assert kl.shape == (3,), f"gaussian_kl for 3 examples has shape {kl.shape}, expected (3,): one value per example"
    assert_close(kl, expected, "gaussian_kl on the three examples", rtol=1e-6, atol=1e-9)


@points(1)
def test_elbo_by_hand(submission: Any) -> None:
    """Logits 0 predict grey 0.5: BCE log 2 per pixel, 64 log 2 per image, whatever x; KL as above."""
    logits = np.zeros((2, PIXELS))
    x = np.tile(np.linspace(0.0, 1.0, PIXELS), (2, 1))
    mu = np.zeros((2, LATENT_DIM))
    mu[0] = 1.0  # KL 4 for this example, 0 for the other: 2 on average
    values = expect_tuple(submission.elbo_on_arrays(logits, x, mu, np.zeros((2, LATENT_DIM))), "elbo_on_arrays", 3)
    expected = (PIXELS * math.log(2.0) + 2.0, PIXELS * math.log(2.0), 2.0)
    for name, value, want in zip(("loss", "reconstruction", "kl"), values, expected, strict=True):
        assert_close(value, want, f"the {name} returned by elbo_loss", rtol=1e-6, atol=1e-9)


@points(1)
def test_reparameterize_gradients_by_hand(submission: Any) -> None:
    """dz/dmu = 1 and dz/dlogvar = (z - mu) / 2 for every entry."""
    rng = np.random.default_rng(3)
    mu, logvar = rng.normal(size=(5, LATENT_DIM)), rng.uniform(-2.0, 1.0, size=(5, LATENT_DIM))
    result = submission.reparameterize_gradients(mu, logvar)
    assert type(result) is dict and {"z", "mu", "logvar"} <= set(result), (
        "reparameterize_gradients() is given in the notebook; restore it if you changed it"
    )
    z = expect_array(result["z"], "z", shape=mu.shape)
    grad_mu = expect_array(result["mu"], "the gradient by mu", shape=mu.shape)
    grad_logvar = expect_array(result["logvar"], "the gradient by logvar", shape=mu.shape)
    assert not np.isnan(grad_mu).any(), "no gradient reaches mu: compute z = mu + sigma * eps in torch"
    assert_close(grad_mu, np.ones_like(mu), "the gradient of z by mu", rtol=1e-6, atol=1e-9)
    assert_close(grad_logvar, 0.5 * (z - mu), "the gradient of z by logvar", rtol=1e-6, atol=1e-9)


@points(1)
def test_gan_losses_by_hand(submission: Any) -> None:
    """At logit 0 (D = 1/2): discriminator loss 2 log 2, generator loss log 2; at a fake logit of 2,
    the generator loss is log(1 + e^-2), small, since D already believes the fakes."""
    zeros = np.zeros((4, 1))
    values = expect_tuple(submission.gan_losses_on_arrays(zeros, zeros), "gan_losses_on_arrays", 2)
    assert_close(values[0], 2.0 * math.log(2.0), "discriminator_loss at logits 0", rtol=1e-6, atol=1e-9)
    assert_close(values[1], math.log(2.0), "generator_loss at logits 0", rtol=1e-6, atol=1e-9)
    values = expect_tuple(submission.gan_losses_on_arrays(zeros, np.full((4, 1), 2.0)), "gan_losses_on_arrays", 2)
    assert_close(values[1], math.log1p(math.exp(-2.0)), "generator_loss at fake logits 2", rtol=1e-6, atol=1e-9)
