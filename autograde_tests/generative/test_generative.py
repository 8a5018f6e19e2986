"""Hidden tests for the generative assignment: a VAE (sampling, the ELBO, training on digits) and a
GAN (losses, one step of each network, training on a ring of Gaussians).

The probes in probes.py run next to the student's code; everything is decided here. Thresholds
and where they come from: assignments/generative/NOTES.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from grader.testing import assert_close, expect_array, expect_scalar, limits, points

LATENT_DIM, PIXELS, NOISE_DIM = 8, 64, 2
# The student's functions get float64 tensors: a correct one agrees to about 1e-15, and one that
# computes in float32 somewhere (a float32 label tensor) to about 1e-7; every mistake the tests
# name is off by a factor or a sign (NOTES.md).
RTOL, ATOL = 1e-5, 1e-7
# Seeds of each test's random tensors, mixed with the grading seed (conftest.rng_for).
GRADIENT_CASE, DRAWS_CASE, KL_CASE, ELBO_CASE, SHAPES_CASE = 1, 2, 3, 4, 5
D_LOSS_CASE, G_LOSS_CASE, D_STEP_CASE, G_STEP_CASE = 6, 7, 8, 9
# reparameterize: 4000 x 4 draws; the standardised noise's mean and standard deviation must be
# within these bounds of 0 and 1 (5 and 7 standard errors; NOTES.md).
DRAW_ROWS, DRAW_MEAN_BOUND, DRAW_STD_BOUND = 4000, 0.04, 0.04
# The training recipes, the same as the notebook's train_vae and train_gan.
VAE_TRAINING = {"epochs": 50, "batch_size": 128, "lr": 3e-3}
GAN_TRAINING = {"steps": 600, "batch_size": 256}
TRAINING_TIMEOUT_S = 30
# (largest held-out reconstruction error, fraction of the points); the reference: 0.026 to 0.031.
RECONSTRUCTION_BANDS = ((0.040, 1.0), (0.050, 0.6), (0.060, 0.3))
# Mean held-out KL (nats) for full credit, and the codes' second moment mean(mu^2 + sigma^2).
KL_RANGE, SECOND_MOMENT_RANGE = (1.5, 15.0), (0.5, 2.0)
# GAN samples scored, the noise they are made from, and "near a mode": within 3 standard deviations.
GAN_SAMPLES, GAN_NOISE_SEED, NEAR_MODE_STDS = 2000, 12345, 3.0
# A mode is covered when at least this fraction of its fair share of samples lands near it.
COVERAGE_SHARE = 0.25
# (modes covered, fraction) and (fraction of samples near a mode, fraction of the points).
COVERAGE_BANDS = ((6, 1.0), (5, 0.6), (4, 0.3))
NEAR_BANDS = ((0.5, 1.0), (0.3, 0.5))
# GAN training is unstable: a run that misses full credit is repeated once under another seed,
# and the better run counts (NOTES.md: a ReLU generator failed 1 run in 20).
GAN_ATTEMPTS = 2
GAN_PARTS = ("build_generator", "build_discriminator", "make_optimizers", "discriminator_step", "generator_step")


def require(submission: Any, *names: str) -> None:
    """Fail with a clear message when the submission does not define one of `names`."""
    missing = [name for name in names if not submission.has(name)]
    assert not missing, (
        f"the submission does not define {', '.join(missing)}: check that the cell defining it runs without an error"
    )


def expect_dict(value: Any, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A probe's dict reply with at least `keys` (it comes from the sandbox, so check it)."""
    if type(value) is not dict or not all(key in value for key in keys):
        raise AssertionError(f"{name}: the sandbox sent back a malformed reply")
    return value


def expect_count(value: Any, name: str) -> int:
    """A non-negative whole number."""
    number = expect_scalar(value, name)
    if number < 0 or number != int(number):
        raise AssertionError(f"{name} should be a whole number, not {number}")
    return int(number)


def expect_flag(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise AssertionError(f"{name}: the sandbox sent back a malformed reply")
    return value


def expect_gradient(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A gradient the probe sent back: None when none reached the input, else an array of `shape`."""
    return None if value is None else expect_array(value, name, shape=shape)


def band(value: float, bands: tuple[tuple[float, float], ...], lower_is_better: bool) -> float:
    """The fraction of the points of the first band `value` falls in (0 below them all)."""
    for threshold, fraction in bands:
        if (value <= threshold) if lower_is_better else (value >= threshold):
            return fraction
    return 0.0


def give(credit: Any, fraction: float, message: str) -> None:
    """Partial credit with `message`; a failure with it when the fraction is 0."""
    if fraction == 0.0:
        raise AssertionError(message)
    credit.give(fraction, message)


def close(value: float, expected: float) -> bool:
    return bool(np.isclose(value, expected, rtol=RTOL, atol=ATOL))


def latent_case(rng: np.random.Generator, rows: int, dims: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """mu standard normal, logvar uniform on [-3, 1] (sigma from 0.22 to 1.65: far from 1, so that
    a sigma taken as exp(logvar), or logvar itself, shows)."""
    return rng.normal(size=(rows, dims)), rng.uniform(-3.0, 1.0, size=(rows, dims))


# ---------------------------------------------------------------- Part 1: reparameterize


@points(8)
def test_reparameterize_gradients(submission: Any, random_generator: Any) -> None:
    """z = mu + sigma * eps: dz/dmu = 1 and dz/dlogvar = (z - mu) / 2, elementwise."""
    require(submission, "reparameterize")
    rng = random_generator(GRADIENT_CASE)
    mu, logvar = latent_case(rng, 6, 3)
    weights = rng.normal(size=mu.shape)
    reply = expect_dict(
        submission.run("reparameterize_gradients", mu, logvar, weights),
        "reparameterize_gradients",
        ("z", "connected", "mu", "logvar"),
    )
    z = expect_array(reply["z"], "reparameterize(mu, logvar)", shape=mu.shape)
    assert np.all(np.isfinite(z)), "reparameterize(mu, logvar) returned nan or inf"
    assert expect_flag(reply["connected"], "connected"), (
        "reparameterize(mu, logvar) returned a tensor without a gradient: the sample must be "
        "computed from mu and logvar with torch operations (z = mu + sigma * eps), not drawn with "
        "torch.normal or detached"
    )
    grad_mu = expect_gradient(reply["mu"], "the gradient by mu", mu.shape)
    grad_logvar = expect_gradient(reply["logvar"], "the gradient by logvar", mu.shape)
    sampled = (
        "z is drawn without the reparameterization (torch.normal or .sample() pass no gradient): "
        "compute z = mu + sigma * eps from eps = torch.randn_like(mu)"
    )
    assert grad_mu is not None and np.any(grad_mu != 0), f"no gradient reaches mu: {sampled}"
    assert grad_logvar is not None and np.any(grad_logvar != 0), (
        f"no gradient reaches logvar: {sampled}, with sigma computed from logvar (sigma = exp(logvar / 2))"
    )
    assert_close(grad_mu, weights, "the gradient of z by mu (it should be 1 for every entry)", rtol=RTOL, atol=ATOL)
    assert_close(
        grad_logvar,
        weights * 0.5 * (z - mu),
        "the gradient of z by logvar (it should be (z - mu) / 2: is sigma = exp(logvar / 2)?)",
        rtol=RTOL,
        atol=ATOL,
    )


@points(6)
def test_reparameterize_samples(submission: Any, random_generator: Any) -> None:
    """(z - mu) / sigma is standard normal over 16,000 draws, and the draws follow torch's seed."""
    require(submission, "reparameterize")
    mu, logvar = latent_case(random_generator(DRAWS_CASE), DRAW_ROWS)
    draws = submission.run("reparameterize_draws", mu, logvar, [11, 11, 12])
    if type(draws) is not list or len(draws) != 3:
        raise AssertionError("reparameterize_draws: the sandbox sent back a malformed reply")
    first, again, other = (expect_array(z, "reparameterize(mu, logvar)", shape=mu.shape) for z in draws)
    assert np.all(np.isfinite(first)), "reparameterize(mu, logvar) returned nan or inf"
    eps = (first - mu) / np.exp(0.5 * logvar)
    mean, std = float(np.mean(eps)), float(np.std(eps))
    problems = []
    if abs(mean) > DRAW_MEAN_BOUND or abs(std - 1.0) > DRAW_STD_BOUND:
        problems.append(
            f"over {eps.size} draws, (z - mu) / sigma with sigma = exp(logvar / 2) has mean {mean:.3f} and "
            f"standard deviation {std:.3f}, where a standard normal eps gives 0 and 1 "
            f"(within {DRAW_MEAN_BOUND} and {DRAW_STD_BOUND}): is sigma computed from logvar as exp(logvar / 2), "
            "and eps drawn from N(0, 1) for every entry?"
        )
    if not np.array_equal(first, again):
        problems.append(
            "two calls after the same torch.manual_seed gave different samples: draw eps with torch's "
            "generator (torch.randn_like), not with numpy or random"
        )
    if np.array_equal(first, other):
        problems.append("calls after different torch.manual_seed values gave the same samples: draw eps at random")
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------- Part 2: gaussian_kl, elbo_loss


def kl_diagnosis(got: np.ndarray, mu: np.ndarray, logvar: np.ndarray, reference: Any) -> str:
    """What a wrong per-example KL looks like, when it is one of the common mistakes."""
    expected = reference.gaussian_kl(mu, logvar)
    variance = np.exp(logvar)
    guesses = {
        "it has the wrong sign: KL = -1/2 * sum(1 + logvar - mu^2 - exp(logvar)) is never negative": -expected,
        "it is twice the KL divergence: the factor 1/2 is missing": 2.0 * expected,
        "it is the mean over the latent dimensions: sum over them instead": expected / mu.shape[1],
        "it uses logvar as the standard deviation: the variance is exp(logvar)": -0.5
        * np.sum(1.0 + np.log(np.abs(logvar) ** 2 + 1e-300) - mu**2 - logvar**2, axis=1),
        "it uses exp(logvar) as the standard deviation: the variance is exp(logvar), the standard "
        "deviation exp(logvar / 2)": -0.5 * np.sum(1.0 + 2.0 * logvar - mu**2 - variance**2, axis=1),
    }
    for message, value in guesses.items():
        if np.allclose(got, value, rtol=RTOL, atol=ATOL):
            return message
    return "it differs from the closed form -1/2 * sum_k (1 + logvar_k - mu_k^2 - exp(logvar_k))"


@points(8)
def test_gaussian_kl(submission: Any, reference: Any, random_generator: Any) -> None:
    """gaussian_kl(mu, logvar) is the closed-form KL to N(0, I) of each example: shape (N,)."""
    require(submission, "gaussian_kl")
    mu, logvar = latent_case(random_generator(KL_CASE), 7, LATENT_DIM)
    expected = reference.gaussian_kl(mu, logvar)
    got = expect_array(submission.run("kl_values", mu, logvar), "gaussian_kl(mu, logvar)")
    assert got.shape == expected.shape, (
        f"gaussian_kl(mu, logvar) for 7 examples of {LATENT_DIM} dimensions has shape {got.shape}, expected (7,): "
        "one value per example, summed over the latent dimensions (not averaged over the batch)"
    )
    if not np.all(np.isfinite(got)):
        raise AssertionError("gaussian_kl(mu, logvar) returned nan or inf for finite inputs")
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
        raise AssertionError("gaussian_kl(mu, logvar) is wrong: " + kl_diagnosis(got, mu, logvar, reference))


def elbo_case(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """5 images of grey levels in [0, 1] (multiples of 1/16, as the digits), logits, mu, logvar."""
    x = rng.integers(0, 17, size=(5, PIXELS)) / 16.0
    logits = rng.normal(scale=2.0, size=(5, PIXELS))
    mu, logvar = latent_case(rng, 5, LATENT_DIM)
    return logits, x, mu, logvar


def term_diagnosis(name: str, got: float, expected: float, batch: int, size: int, per: str) -> str:
    """One line about a wrong term of elbo_loss, naming the convention it breaks when it is one."""
    if close(got, expected * batch):
        return f"the {name} term is summed over the batch: average it over the batch"
    if close(got, expected / size):
        return f"the {name} term is averaged over the {per}: sum it over them (then average over the batch)"
    if close(got, expected / (size * batch)) or close(got, expected / size * batch):
        return f"the {name} term is not summed over the {per} and averaged over the batch"
    if close(got, -expected):
        return f"the {name} term has the wrong sign"
    if close(got, 2.0 * expected):
        return f"the {name} term is twice what it should be (a factor 1/2 missing?)"
    return f"the {name} term differs from the reference"


@points(8)
def test_elbo_loss(submission: Any, reference: Any, random_generator: Any) -> None:
    """elbo_loss returns (loss, reconstruction, kl): BCE summed over pixels and KL summed over latent
    dimensions, each averaged over the batch, loss = their sum; and loss.backward() works."""
    require(submission, "elbo_loss")
    logits, x, mu, logvar = elbo_case(random_generator(ELBO_CASE))
    expected = reference.elbo(logits, x, mu, logvar)
    reply = expect_dict(
        submission.run("elbo_values", logits, x, mu, logvar),
        "elbo_values",
        ("loss", "reconstruction", "kl", "differentiable", "gradients"),
    )
    got = {name: expect_scalar(reply[name], f"the {name} returned by elbo_loss") for name in expected}
    problems = []
    if not close(got["reconstruction"], expected["reconstruction"]):
        problems.append(
            term_diagnosis("reconstruction", got["reconstruction"], expected["reconstruction"], 5, PIXELS, "pixels")
        )
    if not close(got["kl"], expected["kl"]):
        problems.append(term_diagnosis("kl", got["kl"], expected["kl"], 5, LATENT_DIM, "latent dimensions"))
    if not close(got["loss"], got["reconstruction"] + got["kl"]):
        problems.append("loss is not reconstruction + kl")
    assert not problems, "elbo_loss is wrong: " + "; ".join(problems)
    assert expect_flag(reply["differentiable"], "differentiable"), (
        "the loss returned by elbo_loss has no gradient: keep the computation in torch "
        "(no .item(), .numpy() or .detach())"
    )
    gradients = reply["gradients"]
    if type(gradients) is not dict:
        raise AssertionError("elbo_values: the sandbox sent back a malformed reply")
    for name, value in reference.elbo_gradients(logits, x, mu, logvar).items():
        gradient = expect_gradient(gradients.get(name), f"the gradient of the loss by {name}", value.shape)
        assert gradient is not None, f"the loss returned by elbo_loss does not depend on {name}"
        assert_close(gradient, value, f"the gradient of the loss by {name}", rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- Part 3: the VAE


def check_shapes(reply: Any, expected: dict[str, tuple[int, ...]], what: dict[str, str]) -> None:
    """Every output named in `expected` is a float32 tensor of its shape."""
    reply = expect_dict(reply, "the model's outputs", tuple(expected))
    for name, shape in expected.items():
        described = expect_dict(reply[name], "the model's outputs", ())
        assert "type" not in described, f"{what[name]} should be a torch tensor, not a {described['type']}"
        got = tuple(described.get("shape", ()))
        assert got == shape, f"{what[name]} has shape {got}, expected {shape}"
        assert described.get("dtype") == "float32", f"{what[name]} has dtype {described.get('dtype')}, expected float32"


@points(4)
def test_vae_shapes(submission: Any, random_generator: Any) -> None:
    """VAE().encode maps float32 images (5, 64) to mu and logvar (5, 8); decode maps (5, 8) to (5, 64)."""
    require(submission, "VAE")
    x = random_generator(SHAPES_CASE).uniform(size=(5, PIXELS)).astype(np.float32)
    check_shapes(
        submission.run("vae_shapes", x),
        {"mu": (5, LATENT_DIM), "logvar": (5, LATENT_DIM), "logits": (5, PIXELS)},
        {
            "mu": "the mu returned by encode for 5 images",
            "logvar": "the logvar returned by encode for 5 images",
            "logits": "the output of decode for 5 codes",
        },
    )


def trained_vae_outputs(submission: Any, metric: Any, digits_split: Any) -> dict[str, np.ndarray]:
    """Train the VAE on the training digits (kept in the sandbox), then encode and decode the held-out ones."""
    require(submission, "VAE", "reparameterize", "elbo_loss")
    fitted = expect_dict(submission.run("fit_vae", digits_split.x_train, **VAE_TRAINING), "fit_vae", ("train_seconds",))
    metric("train_seconds", expect_scalar(fitted["train_seconds"], "the training time"))
    count = len(digits_split.x_test)
    reply = expect_dict(
        submission.run("vae_reconstruct", digits_split.x_test),
        "vae_reconstruct",
        ("mu", "logvar", "reconstructions", "tensors_changed"),
    )
    changed = expect_count(reply["tensors_changed"], "the number of changed tensors")
    assert changed == 0, (
        f"{changed} parameter or buffer tensors of the VAE changed while it only encoded and decoded "
        "(in eval mode, without gradients): the model must not train on the images it is asked to reconstruct"
    )
    outputs = {
        "mu": expect_array(reply["mu"], "the mu of the held-out digits", shape=(count, LATENT_DIM)),
        "logvar": expect_array(reply["logvar"], "the logvar of the held-out digits", shape=(count, LATENT_DIM)),
        "reconstructions": expect_array(reply["reconstructions"], "the reconstructions", shape=(count, PIXELS)),
    }
    return outputs


@points(10)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_vae_reconstructs_held_out_digits(submission: Any, credit: Any, metric: Any, digits_split: Any) -> None:
    """Trained on 1347 digits, the VAE reconstructs 450 held-out ones from their means mu.

    Scored outside on the mean squared error per pixel; bands: RECONSTRUCTION_BANDS.
    """
    outputs = trained_vae_outputs(submission, metric, digits_split)
    reconstructions = outputs["reconstructions"]
    assert np.all(np.isfinite(reconstructions)), (
        "the reconstructions of the held-out digits contain nan or inf: training diverged "
        "(is the KL term's sign right?)"
    )
    error = float(np.mean((reconstructions - digits_split.x_test) ** 2))
    metric("reconstruction_error", error)
    fraction = band(error, RECONSTRUCTION_BANDS, lower_is_better=True)
    message = f"held-out reconstruction error {error:.4f} per pixel (full credit up to {RECONSTRUCTION_BANDS[0][0]:g})"
    if fraction < 1.0:
        message += (
            ": more than a VAE of this size reaches; check that reparameterize passes gradients to mu and logvar, "
            "and the terms and factors of elbo_loss"
        )
    give(credit, fraction, message)


@points(6)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_vae_kl_term_behaves(submission: Any, credit: Any, metric: Any, digits_split: Any) -> None:
    """After training, the held-out digits' KL to the prior (computed here from mu and logvar) is
    neither near 0 nor exploding, and the codes' second moment stays near the prior's 1."""
    outputs = trained_vae_outputs(submission, metric, digits_split)
    mu, logvar = outputs["mu"], outputs["logvar"]
    with np.errstate(over="ignore", invalid="ignore"):
        kl = float(np.mean(-0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=1)))
        second_moment = float(np.mean(mu**2 + np.exp(logvar)))
    assert np.isfinite(kl) and np.isfinite(second_moment), (
        "the encoder's mu or logvar for the held-out digits are nan or inf, or exp(logvar) overflows: "
        "training pushed the codes away from the prior (is the KL term's sign right?)"
    )
    metric("mean_kl", kl)
    metric("second_moment", second_moment)
    low, high = KL_RANGE
    problems = []
    if kl < low:
        problems.append(
            f"the held-out digits' mean KL divergence to the prior is {kl:.2f} nats, below {low:g}: the codes carry "
            "almost no information (does the gradient of the reconstruction reach mu and logvar, and is the KL "
            "term weighted as in the ELBO?)"
        )
    elif kl > high:
        problems.append(
            f"the held-out digits' mean KL divergence to the prior is {kl:.3g} nats, above {high:g}: the KL term "
            "does not keep q(z|x) near the prior (check its sign and its factor)"
        )
    lowest, highest = SECOND_MOMENT_RANGE
    if not lowest <= second_moment <= highest:
        problems.append(
            f"the codes' mean of mu^2 + sigma^2 is {second_moment:.3g}, outside [{lowest:g}, {highest:g}] "
            "(the prior's is 1)"
        )
    assert not problems, "; ".join(problems)
    credit.give(1.0, f"mean KL {kl:.2f} nats, second moment {second_moment:.2f}")


# ---------------------------------------------------------------- Part 4: the GAN's losses


def logits_case(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.normal(scale=2.0, size=(rows, 1))


@points(8)
def test_discriminator_loss(submission: Any, reference: Any, random_generator: Any) -> None:
    """Mean BCE of real logits against 1 plus mean BCE of fake logits against 0; and its gradients."""
    require(submission, "discriminator_loss")
    rng = random_generator(D_LOSS_CASE)
    real, fake = logits_case(rng, 6), logits_case(rng, 6)
    reply = expect_dict(
        submission.run("discriminator_loss_values", real, fake),
        "discriminator_loss_values",
        ("loss", "differentiable", "real", "fake"),
    )
    got, expected = expect_scalar(reply["loss"], "discriminator_loss"), reference.discriminator_loss(real, fake)
    if not close(got, expected):
        guesses = {
            "the labels are swapped: real points have the label 1, generated points 0": reference.discriminator_loss(
                fake, real
            ),
            "it is half the loss: add the two mean cross-entropies, do not average them": expected / 2.0,
            "it is the negative of the loss": -expected,
        }
        found = [message for message, value in guesses.items() if close(got, value)]
        raise AssertionError("discriminator_loss is wrong: " + (found[0] if found else "it differs from the reference"))
    assert expect_flag(reply["differentiable"], "differentiable"), (
        "discriminator_loss returned a value without a gradient: keep the computation in torch"
    )
    for name, value in reference.discriminator_gradients(real, fake).items():
        gradient = expect_gradient(reply[name], f"the gradient by the {name} logits", value.shape)
        assert gradient is not None, f"discriminator_loss does not depend on the {name} logits"
        assert_close(gradient, value, f"the gradient of discriminator_loss by the {name} logits", rtol=RTOL, atol=ATOL)


@points(6)
def test_generator_loss(submission: Any, reference: Any, random_generator: Any) -> None:
    """The non-saturating loss: mean BCE of the fake logits against 1, i.e. -mean(log D(G(z)))."""
    require(submission, "generator_loss")
    fake = logits_case(random_generator(G_LOSS_CASE), 6)
    reply = expect_dict(
        submission.run("generator_loss_values", fake), "generator_loss_values", ("loss", "differentiable", "fake")
    )
    got, expected = expect_scalar(reply["loss"], "generator_loss"), reference.generator_loss(fake)
    if not close(got, expected):
        saturating = float(np.mean(np.log1p(-1.0 / (1.0 + np.exp(-fake)))))
        guesses = {
            "this is the saturating loss mean(log(1 - D(G(z)))), whose gradient vanishes when D rejects the "
            "fakes: minimise -mean(log D(G(z))) instead": saturating,
            "this is -mean(log(1 - D(G(z)))), the discriminator's loss on the fakes: the generator wants D(G(z)) "
            "near 1, so use the label 1": -saturating,
            "it has the wrong sign: minimise -mean(log D(G(z)))": -expected,
        }
        found = [message for message, value in guesses.items() if close(got, value)]
        raise AssertionError("generator_loss is wrong: " + (found[0] if found else "it differs from the reference"))
    assert expect_flag(reply["differentiable"], "differentiable"), (
        "generator_loss returned a value without a gradient: keep the computation in torch"
    )
    gradient = expect_gradient(reply["fake"], "the gradient by the logits", fake.shape)
    assert gradient is not None, "generator_loss does not depend on its logits"
    assert_close(gradient, reference.generator_gradients(fake), "the gradient of generator_loss", rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- Parts 5 and 6: networks, steps


@points(4)
def test_gan_shapes(submission: Any, random_generator: Any) -> None:
    """build_generator() maps float32 noise (5, 2) to points (5, 2); build_discriminator() maps (5, 2) to (5, 1)."""
    require(submission, "build_generator", "build_discriminator")
    rng = random_generator(SHAPES_CASE)
    z = rng.normal(size=(5, NOISE_DIM)).astype(np.float32)
    points_in = rng.normal(size=(5, 2)).astype(np.float32)
    check_shapes(
        submission.run("gan_shapes", z, points_in),
        {"generator": (5, 2), "discriminator": (5, 1)},
        {
            "generator": "the generator's output for 5 noise vectors",
            "discriminator": "the discriminator's output for 5 points",
        },
    )


def step_batch(rng: np.random.Generator, ring: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """64 real points of the ring, and two batches of 64 noise vectors."""
    real = ring.data[rng.choice(len(ring.data), size=64, replace=False)]
    noise = rng.normal(size=(2, 64, NOISE_DIM)).astype(np.float32)
    return real, noise[0], noise[1]


def check_step(reply: Any, step: str, network: str) -> tuple[int, int]:
    """The conditions without which a step earns nothing; (tensors, changed tensors) of `network`.

    A step must return the loss it computed (the value of the submission's own loss function on
    the batch, before the step: a wrong loss function costs points in its own test, not here) and
    leave finite parameters, and it must change its network at all: a step that does nothing, or
    whose loss is lost, is not partly right (and `grader verify`'s wrong answers get 0 here).
    """
    returned = reply["returned"]
    if type(returned) is str:
        raise AssertionError(f"{step} should return the loss as a Python float (loss.item()), not {returned}")
    returned = expect_scalar(returned, f"the loss {step} returned")
    loss = reply["loss_before"]  # your own loss function on the batch, before the step
    loss = float("nan") if type(loss) is str else expect_scalar(loss, "the loss before the step")
    assert np.isfinite(returned) and bool(np.isclose(returned, loss, rtol=1e-4, atol=1e-6)), (
        f"{step} returned a value that is not the loss (computed with your loss function) of the batch it "
        "stepped on: return loss.item()"
    )
    assert expect_flag(reply["finite"], "finite"), f"after {step}, some parameters are nan or inf"
    prefix = network[0]
    tensors = expect_count(reply[f"{prefix}_tensors"], f"the number of the {network}'s tensors")
    changed = expect_count(reply[f"{prefix}_changed"], "the number of changed tensors")
    assert tensors > 0, f"the {network} has no trainable parameters"
    assert changed > 0, (
        f"{step} changed none of the {network}'s parameters: it must call backward() on the loss and step "
        f"the {network}'s optimizer"
    )
    return tensors, changed


def give_checks(credit: Any, checks: list[tuple[int, bool, str]]) -> None:
    """Credit in proportion to the weights of the checks that hold; the failed ones' messages."""
    total = sum(weight for weight, _, _ in checks)
    failed = [(weight, message) for weight, ok, message in checks if not ok]
    if failed:
        give(credit, 1.0 - sum(weight for weight, _ in failed) / total, "; ".join(message for _, message in failed))


@points(8)
def test_discriminator_step(submission: Any, credit: Any, random_generator: Any, ring: Any) -> None:
    """One discriminator_step returns its loss, changes every tensor of D and none of G, sends no
    gradient into G (detached fakes), moves D downhill on the discriminator loss, and is unaffected
    by the gradients a generator step leaves behind. Nothing without its loss or any change to D."""
    require(submission, "build_generator", "build_discriminator", "make_optimizers", "discriminator_step")
    real, z, z_before = step_batch(random_generator(D_STEP_CASE), ring)
    keys = ("returned", "loss_before", "finite", "d_tensors", "d_changed", "g_changed", "g_got_gradient")
    reply = expect_dict(
        submission.run("discriminator_step_effects", real, z, z_before),
        "discriminator_step_effects",
        (*keys, "alignment", "same_after_generator_gradients"),
    )
    tensors, changed = check_step(reply, "discriminator_step", "discriminator")
    checks = [
        (
            2,
            changed == tensors,
            f"only {changed} of the discriminator's {tensors} parameter tensors changed: d_optimizer must hold "
            "all of them, and every layer must take part in the discriminator's output",
        ),
        (
            2,
            expect_count(reply["g_changed"], "the number of changed tensors") == 0,
            "the discriminator step changed the generator's parameters: only the discriminator may be updated",
        ),
        (
            2,
            not expect_flag(reply["g_got_gradient"], "g_got_gradient"),
            "the discriminator step sent gradients into the generator: detach the fakes "
            "(generator(z).detach()) when training the discriminator",
        ),
        (
            1,
            expect_scalar(reply["alignment"], "the alignment") > 0,
            "the discriminator step did not move the discriminator downhill on the discriminator loss "
            "(are the labels 1 for real and 0 for fake points?)",
        ),
        (
            1,
            expect_flag(reply["same_after_generator_gradients"], "same_after_generator_gradients"),
            "right after the gradients a generator step leaves in the discriminator, the same step gave a different "
            "update: clear the gradients (d_optimizer.zero_grad()) before backward()",
        ),
    ]
    give_checks(credit, checks)


@points(8)
def test_generator_step(submission: Any, credit: Any, random_generator: Any) -> None:
    """One generator_step returns its loss, changes every tensor of G and none of D, and moves G
    downhill on the non-saturating loss. Nothing without its loss or any change to G."""
    require(submission, "build_generator", "build_discriminator", "make_optimizers", "generator_step")
    z = random_generator(G_STEP_CASE).normal(size=(64, NOISE_DIM)).astype(np.float32)
    keys = ("returned", "loss_before", "finite", "g_tensors", "g_changed", "d_changed", "alignment")
    reply = expect_dict(submission.run("generator_step_effects", z), "generator_step_effects", keys)
    tensors, changed = check_step(reply, "generator_step", "generator")
    checks = [
        (
            3,
            changed == tensors,
            f"only {changed} of the generator's {tensors} parameter tensors changed: g_optimizer must hold all "
            "of the generator's parameters, and every layer must take part in its output",
        ),
        (
            3,
            expect_count(reply["d_changed"], "the number of changed tensors") == 0,
            "the generator step changed the discriminator's parameters: g_optimizer must hold the generator's "
            "parameters only",
        ),
        (
            2,
            expect_scalar(reply["alignment"], "the alignment") > 0,
            "the generator step did not move the generator downhill on the non-saturating loss -mean(log D(G(z)))",
        ),
    ]
    give_checks(credit, checks)


# ---------------------------------------------------------------- Part 7: training the GAN


class GanRun(NamedTuple):
    """One training run of the GAN, scored here: modes covered and the fraction of samples near one."""

    covered: int
    near: float
    attempt: int
    train_seconds: float


def score_samples(samples: np.ndarray, ring: Any) -> tuple[int, float]:
    """(modes covered, fraction of samples within NEAR_MODE_STDS standard deviations of a mode)."""
    distances = np.linalg.norm(samples[:, None, :] - ring.centres[None, :, :], axis=2)
    near = distances.min(axis=1) <= NEAR_MODE_STDS * ring.std
    counts = np.bincount(distances.argmin(axis=1)[near], minlength=len(ring.centres))
    needed = COVERAGE_SHARE * len(samples) / len(ring.centres)
    return int(np.sum(counts >= needed)), float(np.mean(near))


def trained_gan(submission: Any, metric: Any, ring: Any) -> GanRun:
    """Train the GAN on the ring in the sandbox and score its samples here; a second run (another
    seed) when the first misses full credit, and the better of the two counts (NOTES.md)."""
    require(submission, *GAN_PARTS)
    best: GanRun | None = None
    for attempt in range(GAN_ATTEMPTS):
        reply = expect_dict(
            submission.run(
                "fit_gan", ring.data, **GAN_TRAINING, attempt=attempt, count=GAN_SAMPLES, noise_seed=GAN_NOISE_SEED
            ),
            "fit_gan",
            ("train_seconds", "samples"),
        )
        samples = expect_array(reply["samples"], "the generator's samples", shape=(GAN_SAMPLES, 2))
        assert np.all(np.isfinite(samples)), "the generator's samples contain nan or inf: training diverged"
        run = GanRun(*score_samples(samples, ring), attempt, expect_scalar(reply["train_seconds"], "the training time"))
        if best is None or (run.covered, run.near) > (best.covered, best.near):
            best = run
        if run.covered == len(ring.centres) and run.near >= NEAR_BANDS[0][0]:
            break
    assert best is not None, "GAN_ATTEMPTS must be at least 1"
    metric("train_seconds", best.train_seconds)
    metric("attempts", attempt + 1)
    return best


@points(10)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_gan_covers_the_modes(submission: Any, credit: Any, metric: Any, ring: Any) -> None:
    """Trained on the ring, the generator's samples cover its six modes; bands: COVERAGE_BANDS."""
    covered = trained_gan(submission, metric, ring).covered
    metric("modes_covered", covered)
    fraction = band(covered, COVERAGE_BANDS, lower_is_better=False)
    message = f"the samples cover {covered} of the {len(ring.centres)} modes"
    if fraction < 1.0:
        message += (
            " (mode collapse, or a generator that does not learn: check the labels of the losses, the detached "
            "fakes in the discriminator step, and that each step updates its own network only)"
        )
    give(credit, fraction, message)


@points(6)
@limits(call_timeout_s=TRAINING_TIMEOUT_S)
def test_gan_samples_land_near_the_modes(submission: Any, credit: Any, metric: Any, ring: Any) -> None:
    """Trained on the ring, most samples land within 3 standard deviations of a mode; bands: NEAR_BANDS."""
    near = trained_gan(submission, metric, ring).near
    metric("near_fraction", near)
    fraction = band(near, NEAR_BANDS, lower_is_better=False)
    message = f"{near:.2f} of the samples land within {NEAR_MODE_STDS:g} standard deviations of a mode"
    give(credit, fraction, message + ("" if fraction else f" (at least {NEAR_BANDS[-1][0]:g} needed for credit)"))
