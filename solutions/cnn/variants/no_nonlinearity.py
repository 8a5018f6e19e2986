"""A cnn submission whose network has no nonlinearity at all: two convolutions and a linear layer.

No activation function and no pooling, so the whole network is one affine function of the pixels
(a linear classifier with extra steps). Linear classifiers do well on 8x8 digits, so accuracy
alone does not show the mistake. Expected: below full marks, because the model is affine.
"""

import torch
from torch import nn


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


def train(model, X, y, epochs=15, lr=3e-3, batch_size=32):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses
