"""A correct backprop submission written differently from the reference.

The sigmoid as 0.5 * (1 + tanh(x / 2)), which never overflows; the linear layer with
np.einsum and np.tensordot; the ReLU gradient with np.where. Expected: full marks.
"""

import numpy as np


def linear_forward(x, w, b):
    return np.einsum("nd,dm->nm", x.reshape(len(x), -1), w) + b


def linear_backward(dout, x, w):
    x_rows = x.reshape(x.shape[0], -1)
    dx = np.tensordot(dout, w, axes=(1, 1)).reshape(x.shape)
    dw = np.einsum("nd,nm->dm", x_rows, dout)
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0.0)


def relu_backward(dout, x):
    return np.where(x > 0, dout, 0.0)


def sigmoid_forward(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def sigmoid_backward(dout, x):
    s = sigmoid_forward(x)
    return dout * s * (1.0 - s)


def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[rows, y].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, y] -= 1.0
    dlogits /= n
    return float(loss), dlogits
