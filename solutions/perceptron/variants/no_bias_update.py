"""Bug: the bias is never updated (b stays 0).

The update tests fail ('b was not updated'); the data's separating hyperplane passes at least 3 from
the origin, so training never converges, the final weights and curves are wrong, and the held-out
accuracy falls more than 0.15 below the rule's."""

# %%
import numpy as np


# %%
def perceptron_predict(X, w, b):
    scores = X @ w + b
    return np.where(scores >= 0, 1, -1)


# %%
def perceptron_update(w, b, x, y, lr):
    if y * (np.dot(w, x) + b) <= 0:
        return w + lr * y * x, float(b)
    return w.copy(), float(b)


# %%
def train_perceptron(X, y, epochs, lr=1.0):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if np.any((y != -1) & (y != 1)):
        raise ValueError("labels must be -1 or +1; for 0/1 labels pass 2 * y - 1")
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
