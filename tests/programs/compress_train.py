"""A short real training run: ``compress_train.py KIND``, float32 and KIND, over 3 seeds.

An MLP (64-256-256-10) learns a noisy 10-class problem with Adam for 300 steps on 2 ranks,
each on its own data, gradients averaged with ``mpi_avg_grads(compress=...)``. Rank 0 writes
``losses.json``: ``{"None": [final loss per seed], KIND: [...]}``, the final loss being the
mean training loss of the last 30 steps over ranks.
"""

import json
import sys

import numpy as np
import torch
from torch import nn

from spinfast import mpi_tools
from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi, sync_params

kind = sys.argv[1]
setup_pytorch_for_mpi()
rank = mpi_tools.proc_id()
centers = np.random.default_rng(123).standard_normal((10, 64)).astype(np.float32)


def run(seed, compress):
    rng = np.random.default_rng(1000 * seed + rank)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    sync_params(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tail = []
    for step in range(300):
        y = rng.integers(0, 10, 64)
        x = centers[y] + 5.0 * rng.standard_normal((64, 64)).astype(np.float32)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        mpi_avg_grads(model, compress=compress)
        opt.step()
        if step >= 270:
            tail.append(loss.item())
    return float(mpi_tools.mpi_avg(np.mean(tail)))


losses = {str(c): [run(seed, c) for seed in range(3)] for c in (None, kind)}
if rank == 0:
    with open("losses.json", "w") as f:
        json.dump(losses, f)
    print(losses)
