"""A cnn submission whose forward() applies F.dropout without training=self.training.

F.dropout defaults to training=True, so dropout stays on in eval mode: predictions are random
and the same image gets different logits on every pass. Expected: below full marks (the
prediction-integrity test sees the two passes disagree).
"""

import torch
from torch import nn
from torch.nn import functional as F


class DigitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.dropout(x.flatten(1), p=0.25)  # regularisation
        return self.fc(x)


def build_model() -> nn.Module:
    return DigitNet()


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
