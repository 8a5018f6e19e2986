"""A backprop submission whose softmax_cross_entropy returns the gradient of the summed loss,
although the loss it returns is the mean.

dlogits is N times too large. Expected: below full marks (the gradient and the two-layer
gradient fail; the training run's steps are 32 times too long).
"""

import numpy as np


def linear_forward(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b


def linear_backward(dout, x, w):
    x_rows = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x_rows.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0.0)


def relu_backward(dout, x):
    return dout * (x > 0)


def sigmoid_forward(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


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
    return float(loss), dlogits
