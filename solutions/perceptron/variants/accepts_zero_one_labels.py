"""Bug: no label check; labels 0 and 1 are accepted silently.

Only the label test fails (10 points): everything else is the reference."""

# %%
import numpy as np


# %%
def perceptron_predict(X, w, b):
    scores = X @ w + b
    return np.where(scores >= 0, 1, -1)


# %%
def perceptron_update(w, b, x, y, lr):
    if y * (np.dot(w, x) + b) <= 0:
        return w + lr * y * x, float(b + lr * y)
    return w.copy(), float(b)


# %%
def train_perceptron(X, y, epochs, lr=1.0):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    w, b = np.zeros(X.shape[1]), 0.0
    mistakes_per_epoch = []
    for _ in range(epochs):
        mistakes = 0
        for x_i, y_i in zip(X, y, strict=True):
            if y_i * (np.dot(w, x_i) + b) <= 0:
                mistakes += 1
                w, b = perceptron_update(w, b, x_i, y_i, lr)
        mistakes_per_epoch.append(mistakes)
    return w, b, mistakes_per_epoch
