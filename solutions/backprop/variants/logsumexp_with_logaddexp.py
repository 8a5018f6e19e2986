"""A correct backprop submission whose softmax_cross_entropy computes log-sum-exp with
np.logaddexp.reduce and builds the gradient with a one-hot matrix.

np.logaddexp is stable for any logits, so no explicit max shift is needed. Expected: full marks.
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
    n, classes = logits.shape
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    one_hot = np.eye(classes)[y]
    loss = -np.sum(one_hot * log_probs) / n
    return float(loss), (np.exp(log_probs) - one_hot) / n
