"""The model, data and loss of ``torch_avg_grads.py``; the test trains it in one process too."""

import numpy as np
import torch


def make_model(seed):
    """A small MLP plus parameters whose gradients are None, rank-0-only, large or frozen."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model.unused = torch.nn.Parameter(torch.zeros(3))  # grad stays None everywhere
    model.side = torch.nn.Parameter(torch.ones(2))  # grad only on rank 0
    model.big = torch.nn.Parameter(torch.full((40000,), 0.5))  # above the fusion threshold
    model.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    return model


def data(rank):
    """Rank ``rank``'s batch ``(X, y)``: 32 samples, float32."""
    rng = np.random.default_rng(rank)
    return (torch.tensor(rng.normal(size=(32, 4)), dtype=torch.float32),
            torch.tensor(rng.normal(size=(32, 1)), dtype=torch.float32))


def loss_fn(model, rank):
    """Rank ``rank``'s loss: squared error, a rank-weighted penalty, ``side`` on rank 0 only."""
    X, y = data(rank)
    loss = ((model(X) - y) ** 2).mean() + 1e-3 * (model.big ** 2).sum() * (rank + 1)
    if rank == 0:
        loss = loss + (model.side ** 2).sum()
    return loss
