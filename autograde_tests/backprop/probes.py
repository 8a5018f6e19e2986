"""Probes for the backprop assignment: code that runs in the sandbox, next to the student module."""

import numpy as np


def _checked(value, what, shape):
    """Return value as a float64 array, or raise ValueError if its shape is not `shape`."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what} has shape {array.shape}, expected {shape}")
    return array


def _scores(module, x, w1, b1, w2, b2):
    """Run the forward pass of the two-layer net; return (hidden pre-activation, hidden, scores)."""
    n, hidden_size, classes = x.shape[0], w1.shape[1], w2.shape[1]
    hidden_in = _checked(
        module.linear_forward(x, w1, b1), "linear_forward output", (n, hidden_size)
    )
    hidden = _checked(module.relu_forward(hidden_in), "relu_forward output", (n, hidden_size))
    scores = _checked(module.linear_forward(hidden, w2, b2), "linear_forward output", (n, classes))
    return hidden_in, hidden, scores


def train_two_layer_net(
    module, x_train, y_train, x_test, hidden=64, epochs=20, lr=0.2, batch_size=32, seed=0
):
    """Train a two-layer net with the student's functions; return int64 labels for x_test.

    Minibatch SGD, He-initialised weights, zero biases, learning rate decayed linearly from
    `lr` to 0 over the run, a fresh shuffle of the training set every epoch. Everything random
    comes from np.random.default_rng(seed), so a given submission always gives the same result.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.int64)
    x_test = np.asarray(x_test, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n, features = x_train.shape
    classes = int(y_train.max()) + 1
    w1 = rng.normal(0.0, np.sqrt(2.0 / features), size=(features, hidden))
    b1 = np.zeros(hidden)
    w2 = rng.normal(0.0, np.sqrt(2.0 / hidden), size=(hidden, classes))
    b2 = np.zeros(classes)

    steps_per_epoch = -(-n // batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            xb, yb = x_train[batch], y_train[batch]
            hidden_in, hidden_out, scores = _scores(module, xb, w1, b1, w2, b2)
            _, dscores = module.softmax_cross_entropy(scores, yb)
            dscores = _checked(dscores, "dlogits", scores.shape)

            dhidden, dw2, db2 = module.linear_backward(dscores, hidden_out, w2)
            dhidden = _checked(dhidden, "dx of linear_backward", hidden_out.shape)
            dhidden_in = _checked(
                module.relu_backward(dhidden, hidden_in), "relu_backward output", hidden_in.shape
            )
            _, dw1, db1 = module.linear_backward(dhidden_in, xb, w1)

            rate = lr * (1.0 - step / total_steps)
            w1 = w1 - rate * _checked(dw1, "dw of linear_backward", w1.shape)
            b1 = b1 - rate * _checked(db1, "db of linear_backward", b1.shape)
            w2 = w2 - rate * _checked(dw2, "dw of linear_backward", w2.shape)
            b2 = b2 - rate * _checked(db2, "db of linear_backward", b2.shape)
            step += 1

    scores = _scores(module, x_test, w1, b1, w2, b2)[2]
    return np.asarray(np.argmax(scores, axis=1), dtype=np.int64)
