"""A correct cnn submission that augments each batch with random shifts of up to one pixel.

Each image of a batch is padded by one pixel of zeros and cropped back to 8x8 at a random
offset, so the model sees slightly moved digits. Expected: full marks.
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


def shift_randomly(xb):
    """Each image moved by up to one pixel in each direction (zeros shifted in)."""
    padded = nn.functional.pad(xb, (1, 1, 1, 1))
    out = torch.empty_like(xb)
    offsets = torch.randint(0, 3, (len(xb), 2))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + 8, dx : dx + 8]
    return out


def train(model, X, y, epochs=20, lr=3e-3, batch_size=32):
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
            loss = loss_fn(model(shift_randomly(X[idx])), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses
