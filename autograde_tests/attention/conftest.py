"""Trusted helpers for the attention hidden tests: PyTorch's attention layers as the reference,
seeded data, and the students' common mistakes recomputed here, so that a message can name one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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
SEQUENCE_LENGTH, DIGITS = 8, 10


class AttentionCase(NamedTuple):
    """Inputs of scaled_dot_product_attention: q (..., L, d_k), k (..., S, d_k), v (..., S, d_v)."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    mask: np.ndarray | None


class ModuleCase(NamedTuple):
    """Weights by parameter name and the inputs of MultiHeadAttention or EncoderBlock (x = query)."""

    weights: dict[str, np.ndarray]
    n_heads: int
    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    mask: np.ndarray | None


class ReversalTask(NamedTuple):
    """Training and held-out digit sequences, their reversals, and the model's starting weights."""

    weights: dict[str, object]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _t(array: np.ndarray | None, requires_grad: bool = False) -> torch.Tensor | None:
    if array is None:
        return None
    if array.dtype == np.bool_:
        return torch.tensor(array)
    return torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().copy()


def _no_nan(weights: torch.Tensor) -> torch.Tensor:
    """Fully masked rows (softmax of -inf only) are defined as zero weights."""
    return torch.nan_to_num(weights, nan=0.0)


def torch_mask(mask: np.ndarray | None, n_heads: int, shape: tuple[int, int, int]) -> torch.Tensor | None:
    """Our mask (True = may attend, broadcastable to (N, H, L, S)) as nn.MultiheadAttention's
    attn_mask: True = may not attend, one (L, S) mask per batch element and head, (N * H, L, S)."""
    if mask is None:
        return None
    batch, length, source_length = shape
    expanded = np.broadcast_to(mask, (batch, n_heads, length, source_length))
    return torch.tensor(~expanded.reshape(batch * n_heads, length, source_length))


class Reference:
    """torch.nn.functional.scaled_dot_product_attention, torch.nn.MultiheadAttention and
    torch.nn.TransformerEncoderLayer(norm_first=True) in float64, run in the trusted process."""

    @staticmethod
    def attention(case: AttentionCase) -> tuple[np.ndarray, np.ndarray]:
        """out from F.scaled_dot_product_attention; weights = softmax(q kᵀ / sqrt(d_k)), masked."""
        q, k, v, mask = _t(case.q), _t(case.k), _t(case.v), _t(case.mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        scores = q @ k.transpose(-2, -1) / math.sqrt(case.q.shape[-1])  # type: ignore[union-attr]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return _np(out), _np(_no_nan(torch.softmax(scores, dim=-1)))

    @staticmethod
    def attention_gradients(case: AttentionCase, out_weight: np.ndarray, weights_weight: np.ndarray) -> dict:
        """Gradients of sum(out * out_weight) + sum(weights * weights_weight) by q, k and v."""
        variables = {"q": _t(case.q, True), "k": _t(case.k, True), "v": _t(case.v, True)}
        q, k, v = variables["q"], variables["k"], variables["v"]
        mask = _t(case.mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        scores = q @ k.transpose(-2, -1) / math.sqrt(case.q.shape[-1])  # type: ignore[union-attr]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if mask is not None:
            weights = weights.masked_fill(~mask, 0.0)
        loss = (out * _t(out_weight)).sum() + (weights * _t(weights_weight)).sum()
        loss.backward()
        return {name: _np(tensor.grad) for name, tensor in variables.items()}  # type: ignore[union-attr]

    @staticmethod
    def attention_module(case: ModuleCase) -> torch.nn.MultiheadAttention:
        d_model = case.weights["out_proj.weight"].shape[0]
        module = torch.nn.MultiheadAttention(d_model, case.n_heads, batch_first=True).double()
        module.load_state_dict({name: torch.tensor(case.weights[name]) for name in ATTENTION_PARAMETERS})
        return module

    @classmethod
    def multi_head_attention(cls, case: ModuleCase, variables: dict | None = None) -> tuple:
        """(out, per-head weights) of nn.MultiheadAttention; tensors if `variables` are given."""
        module = cls.attention_module(case)
        query, key, value = (
            (variables["query"], variables["key"], variables["value"])
            if variables
            else (_t(case.query), _t(case.key), _t(case.value))
        )
        shape = (case.query.shape[0], case.query.shape[1], case.key.shape[1])
        out, weights = module(
            query, key, value, attn_mask=torch_mask(case.mask, case.n_heads, shape), average_attn_weights=False
        )
        if variables:
            return out, module
        return _np(out), _np(weights)

    @classmethod
    def multi_head_attention_gradients(cls, case: ModuleCase, out_weight: np.ndarray) -> dict[str, np.ndarray]:
        variables = {"query": _t(case.query, True), "key": _t(case.key, True), "value": _t(case.value, True)}
        out, module = cls.multi_head_attention(case, variables)
        (out * _t(out_weight)).sum().backward()
        grads = {name: _np(tensor.grad) for name, tensor in variables.items()}  # type: ignore[union-attr]
        for name, parameter in module.named_parameters():
            grads[name] = _np(parameter.grad)  # type: ignore[arg-type]
        return grads

    @staticmethod
    def block_module(case: ModuleCase, norm_first: bool = True) -> torch.nn.TransformerEncoderLayer:
        d_ff, d_model = case.weights["linear1.weight"].shape
        layer = torch.nn.TransformerEncoderLayer(
            d_model, case.n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first
        ).double()
        layer.load_state_dict({name: torch.tensor(case.weights[name]) for name in BLOCK_PARAMETERS})
        return layer

    @classmethod
    def encoder_block(cls, case: ModuleCase, norm_first: bool = True) -> np.ndarray:
        # With gradients enabled, as in training: never PyTorch's fused inference fast path.
        layer = cls.block_module(case, norm_first)
        return _np(layer(_t(case.query), src_key_padding_mask=_key_padding(case.mask)))

    @classmethod
    def encoder_block_gradients(cls, case: ModuleCase, out_weight: np.ndarray) -> dict[str, np.ndarray]:
        layer = cls.block_module(case)
        x = _t(case.query, True)
        out = layer(x, src_key_padding_mask=_key_padding(case.mask))
        (out * _t(out_weight)).sum().backward()
        grads = {"x": _np(x.grad)}  # type: ignore[union-attr]
        for name, parameter in layer.named_parameters():
            grads[name] = _np(parameter.grad)  # type: ignore[arg-type]
        return grads


def _key_padding(mask: np.ndarray | None) -> torch.Tensor | None:
    """Our (N, 1, 1, L) padding mask as TransformerEncoderLayer's src_key_padding_mask (N, L)."""
    return None if mask is None else torch.tensor(~mask[:, 0, 0, :])


class Mistakes:
    """The common mistakes, computed from the same inputs, to say which one a submission made.

    Each method returns {hint: what that mistake computes}; the tests compare a wrong answer with
    each and quote the hint of the one it matches. Nothing here is sent to the sandbox.
    """

    @staticmethod
    def _weights(
        q: torch.Tensor,
        k: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        scale: float,
        dim: int = -1,
        when: str = "before",
        sign: int = 1,
    ) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1) * scale
        if mask is not None and when == "before":
            scores = scores.masked_fill(~mask if sign > 0 else mask, float("-inf"))
        weights = _no_nan(torch.softmax(scores, dim=dim))
        if mask is not None and when == "after":
            weights = weights.masked_fill(~mask, 0.0)
        if mask is not None and when == "before":
            weights = weights.masked_fill(~mask if sign > 0 else mask, 0.0)
        return weights

    # Mistakes inside scaled_dot_product_attention: (hint, options of _weights).
    ATTENTION_MISTAKES = (
        (
            "the weights are softmax(q kᵀ) without the scale: divide the scores by sqrt(d_k), where d_k = "
            "q.shape[-1] is the size of one query",
            {"scale": "none"},
        ),
        ("the scores are divided by d_k instead of sqrt(d_k)", {"scale": "square"}),
        (
            "the weights sum to 1 over the queries instead of over the keys: take the softmax over the last axis "
            "(dim=-1)",
            {"dim": -2},
        ),
    )
    MASK_MISTAKES = (
        (
            "the masked positions get weight 0 but the other weights of their row do not sum to 1: apply the mask "
            "to the scores before the softmax (fill them with -inf), not to the weights after it",
            {"when": "after"},
        ),
        (
            "the weights are 0 where the mask is True and non-zero where it is False: the mask is True where a "
            "query may attend a key, so fill the scores where it is False (~mask)",
            {"sign": -1},
        ),
    )

    @classmethod
    def _scaled(cls, scale: float, options: dict) -> tuple[float, dict]:
        """The scale a mistake uses instead of `scale` (1/sqrt(d_k)), and the other options."""
        options = dict(options)
        kind = options.pop("scale", "right")
        return {"right": scale, "none": 1.0, "square": scale**2}[kind], options

    @classmethod
    def attention_weights(cls, case: AttentionCase) -> list[tuple[str, np.ndarray]]:
        """(hint, the weights that mistake gives) for scaled_dot_product_attention."""
        q, k, mask = _t(case.q), _t(case.k), _t(case.mask)
        mistakes = cls.ATTENTION_MISTAKES + (cls.MASK_MISTAKES if mask is not None else ())
        found = []
        for hint, options in mistakes:
            scale, rest = cls._scaled(1.0 / math.sqrt(case.q.shape[-1]), options)
            found.append((hint, _np(cls._weights(q, k, mask, scale=scale, **rest))))  # type: ignore[arg-type]
        return found

    @staticmethod
    def _attention(
        case: ModuleCase,
        *,
        order: str = "qkv",
        scale: str = "head",
        split: str = "right",
        merge: str = "right",
        out_proj: bool = True,
        attention: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        weight, bias = _t(case.weights["in_proj_weight"]), _t(case.weights["in_proj_bias"])
        blocks = dict(zip("qkv", zip(weight.chunk(3), bias.chunk(3), strict=True), strict=True))  # type: ignore[union-attr]
        batch, d_model = case.query.shape[0], case.query.shape[2]
        head_dim = d_model // case.n_heads

        def heads(x: np.ndarray, which: str) -> torch.Tensor:
            w, b = blocks[which]
            projected = F.linear(_t(x), w, b)  # type: ignore[arg-type]
            if split == "right":
                return projected.reshape(batch, x.shape[1], case.n_heads, head_dim).transpose(1, 2)
            return projected.reshape(batch, case.n_heads, x.shape[1], head_dim)

        q, k, v = heads(case.query, order[0]), heads(case.key, order[1]), heads(case.value, order[2])
        mask = _t(case.mask)
        factor = {"head": 1 / math.sqrt(head_dim), "model": 1 / math.sqrt(d_model), "none": 1.0}[scale]
        factor, options = Mistakes._scaled(factor, attention or {})
        weights = Mistakes._weights(q, k, mask, scale=factor, **options)
        out = weights @ v
        if merge == "right":
            out = out.transpose(1, 2)
        out = out.reshape(batch, case.query.shape[1], d_model)
        if out_proj:
            out = F.linear(out, _t(case.weights["out_proj.weight"]), _t(case.weights["out_proj.bias"]))  # type: ignore[arg-type]
        return _np(out), _np(weights)

    @classmethod
    def multi_head_attention(cls, case: ModuleCase) -> list[tuple[str, tuple[np.ndarray, np.ndarray]]]:
        """(hint, the (out, weights) that mistake gives) for MultiHeadAttention."""
        found = [
            (
                "the output is the concatenation of the heads without the output projection: apply self.out_proj to it",
                cls._attention(case, out_proj=False),
            ),
            (
                "the scores of each head are scaled by 1/sqrt(d_model); scale them by 1/sqrt(head_dim), "
                "head_dim = d_model // n_heads",
                cls._attention(case, scale="model"),
            ),
            (
                "the heads are split along the wrong axis: reshape (N, L, d_model) to (N, L, n_heads, head_dim), "
                "then transpose to (N, n_heads, L, head_dim); do not reshape to (N, n_heads, L, head_dim) directly",
                cls._attention(case, split="wrong"),
            ),
            (
                "the heads are merged along the wrong axis: transpose (N, n_heads, L, head_dim) to "
                "(N, L, n_heads, head_dim) before reshaping to (N, L, d_model)",
                cls._attention(case, merge="wrong"),
            ),
        ]
        mistakes = cls.ATTENTION_MISTAKES + (cls.MASK_MISTAKES if case.mask is not None else ())
        for hint, options in mistakes:
            found.append((f"in scaled_dot_product_attention, {hint}", cls._attention(case, attention=options)))
        for order in ("kqv", "qvk", "vkq", "kvq", "vqk"):
            hint = (
                "the query, key and value projections use the wrong rows of in_proj_weight: rows 0:E project "
                "the query, E:2E the key and 2E:3E the value (in_proj_bias alike)"
            )
            found.append((hint, cls._attention(case, order=order)))
        return found

    @staticmethod
    def encoder_block(case: ModuleCase) -> list[tuple[str, np.ndarray]]:
        """(hint, the output that mistake gives) for EncoderBlock."""
        w = {name: _t(value) for name, value in case.weights.items()}
        x, d_model = case.query, case.query.shape[2]
        attention_weights = {name: case.weights[f"self_attn.{name}"] for name in ATTENTION_PARAMETERS}
        attention = Reference.attention_module(ModuleCase(attention_weights, case.n_heads, x, x, x, None))
        padding = _key_padding(case.mask)

        def norm(x: torch.Tensor, which: str) -> torch.Tensor:
            return F.layer_norm(x, (d_model,), w[f"{which}.weight"], w[f"{which}.bias"])

        def attend(x: torch.Tensor) -> torch.Tensor:
            return attention(x, x, x, key_padding_mask=padding, need_weights=False)[0]

        def feed_forward(x: torch.Tensor) -> torch.Tensor:
            hidden = F.relu(F.linear(x, w["linear1.weight"], w["linear1.bias"]))
            return F.linear(hidden, w["linear2.weight"], w["linear2.bias"])

        inputs = _t(x)
        with torch.no_grad():
            h = norm(inputs, "norm1")  # type: ignore[arg-type]
            residual_from_normalised = h + attend(h)
            h2 = norm(residual_from_normalised, "norm2")
            residual_from_normalised = h2 + feed_forward(h2)
            without_residuals = feed_forward(norm(attend(norm(inputs, "norm1")), "norm2"))  # type: ignore[arg-type]
        return [
            (
                "the block is post-LN (the layer norm after the residual addition, norm_first=False); this "
                "assignment's block is pre-LN: h = x + attention(norm1(x)), then h + feed_forward(norm2(h))",
                Reference.encoder_block(case, norm_first=False),
            ),
            (
                "the residual path starts from the normalised input: add the sub-layer's output to the "
                "un-normalised x, x + attention(norm1(x)), not norm1(x) + attention(norm1(x))",
                _np(residual_from_normalised),
            ),
            ("the block has no residual connections: add each sub-layer's output to its input", _np(without_residuals)),
        ]


def _rng(seed: int, purpose: int) -> np.random.Generator:
    """An independent generator per (grading seed, purpose): one test's data never shifts another's."""
    return np.random.default_rng([seed, purpose])


def make_attention_case(seed: int, purpose: int, shape: tuple[int, ...], mask: str = "none") -> AttentionCase:
    """Standard normal q (*lead, L, d_k), k (*lead, S, d_k), v (*lead, S, d_v), shape = (*lead, L, S, d_k, d_v).

    mask: "none", "causal" (L = S), "padding" ((N, 1, 1, S) with lengths from S down to 1), or
    "fully_masked" (random, with some rows and a whole sequence masked out).
    """
    rng = _rng(seed, purpose)
    *lead, length, source, d_k, d_v = shape
    q = rng.normal(size=(*lead, length, d_k))
    k = rng.normal(size=(*lead, source, d_k))
    v = rng.normal(size=(*lead, source, d_v))
    masks = {"none": lambda: None, "causal": lambda: np.tril(np.ones((length, source), dtype=bool))}
    masks["padding"] = lambda: padding(np.linspace(source, 1, lead[0]).round().astype(int), source)
    masks["fully_masked"] = lambda: fully_masked(rng, (*lead, length, source))
    return AttentionCase(q, k, v, masks[mask]())


def padding(lengths: np.ndarray, size: int) -> np.ndarray:
    """The (N, 1, 1, size) padding mask: True at [n, 0, 0, j] when j < lengths[n]."""
    return (np.arange(size) < np.asarray(lengths)[:, None])[:, None, None, :]


def fully_masked(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random mask with two fully masked rows and the whole first batch element masked out."""
    mask = rng.uniform(size=shape) < 0.6
    mask[..., 0] |= True
    mask[0] = False
    mask[-1, ..., 1, :] = False
    mask[-1, ..., -1, :] = False
    return mask


def make_attention_weights(rng: np.random.Generator, d_model: int, scale: float) -> dict[str, np.ndarray]:
    """The four MultiheadAttention parameters, uniform on [-scale, scale]."""
    return {
        "in_proj_weight": rng.uniform(-scale, scale, size=(3 * d_model, d_model)),
        "in_proj_bias": rng.uniform(-scale, scale, size=(3 * d_model,)),
        "out_proj.weight": rng.uniform(-scale, scale, size=(d_model, d_model)),
        "out_proj.bias": rng.uniform(-scale, scale, size=(d_model,)),
    }


def make_module_case(seed: int, purpose: int, cross: bool = False, masked: bool = False) -> ModuleCase:
    """MultiHeadAttention(8, 2) with weights uniform on [-0.7, 0.7] (scores of order 1, so a scale,
    axis or head mistake changes the weights a lot); N = 3, L = 5 and S = 6 when `cross`."""
    rng = _rng(seed, purpose)
    weights = make_attention_weights(rng, 8, 0.7)
    query = rng.normal(size=(3, 5, 8))
    key = rng.normal(size=(3, 6, 8)) if cross else query
    value = rng.normal(size=key.shape) if cross else query
    mask = padding(np.array([key.shape[1], 4, 1]), key.shape[1]) if masked else None
    return ModuleCase(weights, 2, query, key, value, mask)


def make_block_case(seed: int, purpose: int, d_model: int = 8, d_ff: int = 16, masked: bool = True) -> ModuleCase:
    """EncoderBlock(8, 2, 16) weights (random layer norms too), x of shape (3, 5, 8), padding lengths 5, 3, 2."""
    rng = _rng(seed, purpose)
    weights = {f"self_attn.{name}": value for name, value in make_attention_weights(rng, d_model, 0.7).items()}
    for name, shape in (("linear1", (d_ff, d_model)), ("linear2", (d_model, d_ff))):
        weights[f"{name}.weight"] = rng.uniform(-0.7, 0.7, size=shape)
        weights[f"{name}.bias"] = rng.uniform(-0.7, 0.7, size=shape[:1])
    for name in ("norm1", "norm2"):
        weights[f"{name}.weight"] = rng.uniform(0.5, 1.5, size=d_model)
        weights[f"{name}.bias"] = rng.uniform(-0.5, 0.5, size=d_model)
    x = 2.0 * rng.normal(size=(3, 5, d_model)) + rng.normal(size=d_model)  # not already normalised
    mask = padding(np.array([5, 3, 2]), 5) if masked else None
    return ModuleCase(weights, 2, x, x, x, mask)


def make_reversal_task(seed: int, d_model: int, d_ff: int, train: int, test: int) -> ReversalTask:
    """Digit sequences and starting weights drawn from the grading seed; PyTorch's initialisation ranges."""
    rng = _rng(seed, 5000)

    def uniform(bound: float, *shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, size=shape)

    block = {
        "self_attn.in_proj_weight": uniform(math.sqrt(6 / (4 * d_model)), 3 * d_model, d_model),
        "self_attn.in_proj_bias": np.zeros(3 * d_model),
        "self_attn.out_proj.weight": uniform(1 / math.sqrt(d_model), d_model, d_model),
        "self_attn.out_proj.bias": np.zeros(d_model),
        "linear1.weight": uniform(1 / math.sqrt(d_model), d_ff, d_model),
        "linear1.bias": uniform(1 / math.sqrt(d_model), d_ff),
        "linear2.weight": uniform(1 / math.sqrt(d_ff), d_model, d_ff),
        "linear2.bias": uniform(1 / math.sqrt(d_ff), d_model),
    }
    for name in ("norm1", "norm2"):
        block[f"{name}.weight"], block[f"{name}.bias"] = np.ones(d_model), np.zeros(d_model)
    weights = {
        "block": block,
        "embedding": rng.normal(size=(DIGITS, d_model)),
        "positions": 0.5 * rng.normal(size=(SEQUENCE_LENGTH, d_model)),
        "readout_weight": uniform(1 / math.sqrt(d_model), DIGITS, d_model),
        "readout_bias": uniform(1 / math.sqrt(d_model), DIGITS),
    }
    x_train = rng.integers(0, DIGITS, size=(train, SEQUENCE_LENGTH))
    x_test = rng.integers(0, DIGITS, size=(test, SEQUENCE_LENGTH))
    return ReversalTask(weights, x_train, x_train[:, ::-1].copy(), x_test, x_test[:, ::-1].copy())


@pytest.fixture(scope="session")
def reference() -> type[Reference]:
    """PyTorch's attention layers, the trusted reference."""
    return Reference


@pytest.fixture(scope="session")
def mistakes() -> type[Mistakes]:
    """The common mistakes, recomputed in the trusted process to name them in messages."""
    return Mistakes


@pytest.fixture
def attention_case(grading_seed: int) -> Callable[..., AttentionCase]:
    """make_attention_case(purpose, shape, mask) with this grading run's seed."""
    return lambda purpose, shape, mask="none": make_attention_case(grading_seed, purpose, shape, mask)


@pytest.fixture
def module_case(grading_seed: int) -> Callable[..., ModuleCase]:
    """make_module_case(purpose, cross, masked) with this grading run's seed."""
    return lambda purpose, **kwargs: make_module_case(grading_seed, purpose, **kwargs)


@pytest.fixture
def block_case(grading_seed: int) -> Callable[..., ModuleCase]:
    """make_block_case(purpose, ...) with this grading run's seed."""
    return lambda purpose, **kwargs: make_block_case(grading_seed, purpose, **kwargs)


@pytest.fixture
def reversal_task(grading_seed: int) -> Callable[..., ReversalTask]:
    """make_reversal_task(d_model, d_ff, train, test) with this grading run's seed."""
    return lambda **kwargs: make_reversal_task(grading_seed, **kwargs)


@pytest.fixture
def loss_weights(grading_seed: int) -> Callable[[int, tuple[int, ...]], np.ndarray]:
    """Standard normal weights of a loss sum(output * weights), drawn from the grading seed."""
    return lambda purpose, shape: _rng(grading_seed, purpose).normal(size=shape)
