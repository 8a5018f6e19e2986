"""A cnn submission that trains its logits with nn.NLLLoss, which expects log-probabilities.

NLLLoss only picks -output[label], so without a log-softmax the loss can fall without bound by
making the right logit large, whatever the others do: the reported losses go far below zero.
Expected: below full marks (losses that are not a cross-entropy; the accuracy may suffer).
"""

import torch
from torch import nn


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


def train(model, X, y, epochs=15, lr=3e-3, batch_size=32):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.NLLLoss()
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
