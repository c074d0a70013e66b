"""sync_params on models of different shapes: every rank prints the ValueError it got."""

import torch

from spinfast.mpi_pytorch import sync_params
from spinfast.mpi_tools import proc_id

model = torch.nn.Linear(3, 2 + proc_id())
try:
    sync_params(model)
except ValueError as exc:
    print(f"rank {proc_id()} ValueError: {exc}", flush=True)
