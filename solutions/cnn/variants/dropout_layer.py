"""A correct cnn submission with an nn.Dropout layer, trained in training mode as it should be.

nn.Dropout is on in training mode and off in evaluation mode, so predictions depend on each
image alone. It also evaluates every epoch with predict() and switches back with model.train().
Expected: full marks.
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
        nn.Dropout(0.25),
        nn.Linear(32 * 2 * 2, 10),
    )


def predict(model, X):
    model.eval()
    with torch.no_grad():
        return model(X).argmax(dim=1)


def train(model, X, y, epochs=15, lr=3e-3, batch_size=32):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(epochs):
        model.train()
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
        accuracy = (predict(model, X) == y).float().mean().item()
        print(f"epoch {epoch + 1}: loss {losses[-1]:.4f}, training accuracy {accuracy:.3f}")
    return losses
