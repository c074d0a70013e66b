"""Six Adam steps with gradients averaged over ranks: ``torch_avg_grads.py MODE [MODE ...]``.

For each MODE, from a fresh model: ``grads`` averages with mpi_avg_grads, ``flat`` with
FlatGrads. Each rank saves its final parameters to ``{mode}_rank{rank}.npy``, then prints its
torch thread count.
"""

import sys

import numpy as np
import torch
from torch_model import loss_fn, make_model

from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, setup_pytorch_for_mpi, sync_params
from spinfast.mpi_tools import proc_id

setup_pytorch_for_mpi()
rank = proc_id()
for mode in sys.argv[1:]:
    model = make_model(seed=rank)  # different on every rank until synced
    sync_params(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    flat = FlatGrads(model) if mode == "flat" else None
    for step in range(6):
        opt.zero_grad()  # set_to_none=True: FlatGrads must re-bind its views
        loss_fn(model, rank).backward()
        if flat is None:
            mpi_avg_grads(model)
        else:
            flat.average()
        opt.step()
    assert model.unused.grad is None or mode == "flat"
    flat_params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.save(f"{mode}_rank{rank}.npy", flat_params)
print("threads", torch.get_num_threads())
