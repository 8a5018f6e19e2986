"""Train the explainability assignment's fixed CNN once and save its weights (the assignment's data).

Run from the repository root: `.venv/bin/python solutions/explainability/make_weights.py`. It
trains DigitsCNN (the class given in the template, copied from autograde_tests/explainability/
probes.py) on 1347 of scikit-learn's 8x8 digits with a fixed seed on one thread, prints the
accuracy on the other 450, and writes the state_dict (float32, about 17 KB) to
assignments/explainability/data/digits_cnn.pt, which the sandbox sees as /data/digits_cnn.pt and
which everyone loads with `torch.load(..., weights_only=True)`. The committed file is what is
graded; rerunning this script is only needed to change the model (then recalibrate NOTES.md).
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBES = REPO_ROOT / "autograde_tests" / "explainability" / "probes.py"
WEIGHTS = REPO_ROOT / "assignments" / "explainability" / "data" / "digits_cnn.pt"
SEED, EPOCHS, BATCH_SIZE, LR = 0, 20, 32, 3e-3


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    digits_cnn = runpy.run_path(str(PROBES))["DigitsCNN"]
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor((images / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.tensor(labels, dtype=torch.int64)
    train_idx, test_idx = train_test_split(np.arange(len(x)), test_size=450, stratify=labels, random_state=SEED)
    model = digits_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_train, y_train = x[train_idx], y[train_idx]
    for _ in range(EPOCHS):
        order = torch.randperm(len(x_train))
        for start in range(0, len(x_train), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    state = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, WEIGHTS)
    print(
        f"held-out accuracy {accuracy:.4f} on {len(test_idx)} digits; wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes)"
    )


if __name__ == "__main__":
    main()
