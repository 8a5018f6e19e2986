"""A submission to the attention assignment with one bug: the heads are split along the wrong axis.

The projections (N, L, E) are reshaped straight to (N, H, L, head_dim), which runs but mixes
positions and features of different heads. scaled_dot_product_attention and the masks are
right; multi-head attention and everything built on it fails against PyTorch.
"""

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# %%
def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every query in q to every key in k, averaging the values v.

    Args:
        q: queries, of shape (..., L, d_k).
        k: keys, of shape (..., S, d_k).
        v: values, of shape (..., S, d_v).
        mask: None, or a bool tensor broadcastable to (..., L, S) that is True where a query
            may attend a key and False where it may not.

    Returns:
        (out, weights): out of shape (..., L, d_v) and the attention weights of shape
        (..., L, S). Every row of weights sums to 1, except a fully masked row, whose weights
        (and output) are all zero. Masked positions have weight exactly 0.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # A fully masked row is softmax(-inf, ..., -inf) = nan: make it zero, as documented.
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


# %%
def causal_mask(size: int) -> torch.Tensor:
    """A (size, size) bool mask, True at [i, j] when j <= i: query i may attend keys 0 to i."""
    return torch.ones(size, size, dtype=torch.bool).tril()


def padding_mask(lengths: list[int] | torch.Tensor, size: int) -> torch.Tensor:
    """An (N, 1, 1, size) bool mask, True at [n, 0, 0, j] when j < lengths[n].

    Sequence n of a batch padded to `size` positions holds lengths[n] real tokens followed by
    padding; no query may attend a padding position. The two dimensions of size 1 broadcast
    over the heads and the queries.
    """
    lengths = torch.as_tensor(lengths)
    return (torch.arange(size) < lengths[:, None])[:, None, None, :]


# %%
class MultiHeadAttention(nn.Module):
    """Multi-head attention with the parameters of torch.nn.MultiheadAttention(d_model, n_heads).

    Parameters:
        in_proj_weight: (3 * d_model, d_model), the query, key and value projections stacked
            along the first dimension in that order.
        in_proj_bias: (3 * d_model,), their biases, in the same order.
        out_proj: nn.Linear(d_model, d_model), the output projection.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model = {d_model} is not a multiple of n_heads = {n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from every position of query to every position of key and value.

        Args:
            query: (N, L, d_model).
            key, value: (N, S, d_model) each (for self-attention, all three are the same tensor).
            mask: None, or a bool tensor broadcastable to (N, n_heads, L, S), True where a query
                may attend a key.

        Returns:
            (out, weights): out of shape (N, L, d_model) and the attention weights of every head,
            of shape (N, n_heads, L, S).
        """
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)

        def split_heads(x: torch.Tensor) -> torch.Tensor:  # (N, len, d_model) -> (N, n_heads, len, head_dim)
            return x.reshape(x.shape[0], self.n_heads, x.shape[1], self.head_dim)  # BUG: wrong axis

        q = split_heads(F.linear(query, w_q, b_q))
        k = split_heads(F.linear(key, w_k, b_k))
        v = split_heads(F.linear(value, w_v, b_v))
        heads, weights = scaled_dot_product_attention(q, k, v, mask)
        batch, _, length, _ = heads.shape
        merged = heads.transpose(1, 2).reshape(batch, length, self.d_model)  # (N, L, n_heads * head_dim)
        return self.out_proj(merged), weights


# %%
class EncoderBlock(nn.Module):
    """A pre-LN transformer encoder block, with the parameters of
    torch.nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True, norm_first=True).

    Parameters:
        self_attn: MultiHeadAttention(d_model, n_heads).
        linear1: nn.Linear(d_model, d_ff) and linear2: nn.Linear(d_ff, d_model), the feed-forward network.
        norm1, norm2: nn.LayerNorm(d_model), before the attention and before the feed-forward network.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x of shape (N, L, d_model) -> (N, L, d_model); mask as for MultiHeadAttention (S = L)."""
        h = self.norm1(x)
        attended, _ = self.self_attn(h, h, h, mask)
        x = x + self.dropout(attended)
        h = self.norm2(x)
        return x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(h)))))


# %%
def attention_on_arrays(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run scaled_dot_product_attention on numpy arrays in float64; return (out, weights) as arrays."""
    q, k, v = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (q, k, v))
    mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))
    with torch.no_grad():
        out, weights = scaled_dot_product_attention(q, k, v, mask)
    return out.numpy(), weights.numpy()


def parameter_shapes(d_model: int, n_heads: int, d_ff: int) -> dict[str, dict[str, list[int]]]:
    """The name and shape of every parameter of MultiHeadAttention and of EncoderBlock."""
    modules = {
        "MultiHeadAttention": MultiHeadAttention(d_model, n_heads),
        "EncoderBlock": EncoderBlock(d_model, n_heads, d_ff),
    }
    return {
        name: {parameter_name: list(p.shape) for parameter_name, p in module.named_parameters()}
        for name, module in modules.items()
    }


# %%
SEQUENCE_LENGTH, DIGITS = 8, 10


def reversal_data(num_sequences: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random digit sequences x of shape (N, SEQUENCE_LENGTH) and their reversals y = x[:, ::-1]."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, DIGITS, size=(num_sequences, SEQUENCE_LENGTH))
    return x, x[:, ::-1].copy()


class ReversalModel(nn.Module):
    """Digits -> embeddings plus learned positions -> EncoderBlock -> LayerNorm -> logits over the digits."""

    def __init__(self, d_model: int = 32, n_heads: int = 2, d_ff: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(DIGITS, d_model)
        self.positions = nn.Parameter(0.5 * torch.randn(SEQUENCE_LENGTH, d_model))
        self.block = EncoderBlock(d_model, n_heads, d_ff, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.readout = nn.Linear(d_model, DIGITS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, SEQUENCE_LENGTH) digits -> logits of shape (N, SEQUENCE_LENGTH, DIGITS)."""
        return self.readout(self.norm(self.block(self.embedding(x) + self.positions)))


def train_reversal(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Adam on the cross-entropy at every position, the learning rate falling linearly to 0; returns the losses."""
    rng = np.random.default_rng(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (1.0 - step / steps)
        batch = torch.as_tensor(rng.choice(len(x), size=batch_size, replace=False))
        loss = F.cross_entropy(model(x[batch]).reshape(-1, DIGITS), y[batch].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# %%
if __name__ == "__main__":
    torch.set_num_threads(1)  # for matrices this small, more threads only add overhead
    torch.manual_seed(0)
    x_train, y_train = reversal_data(2048, seed=1)
    x_test, y_test = reversal_data(500, seed=2)
    model = ReversalModel().double()
    losses = train_reversal(model, x_train, y_train)
    model.eval()  # dropout off (here it is 0 anyway)
    with torch.no_grad():
        predicted = model(torch.as_tensor(x_test)).argmax(dim=-1).numpy()
    digits_right = np.mean(predicted == y_test)
    sequences_right = np.mean(np.all(predicted == y_test, axis=1))
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    print(f"held-out digits right: {digits_right:.4f}, whole sequences right: {sequences_right:.4f}")
