"""CUDA tensors meet spinfast: the checks a machine with a GPU runs (CI has none).

``mpiexec -n 2 python tests/programs/cuda_check.py`` (or one process) on a machine where
``torch.cuda.is_available()``. Each rank checks, and writes what it saw to
``cuda{rank}.json`` in the current directory:

- ``EpochLogger.store`` takes CUDA tensors (float32 in an autograd graph, bfloat16, a 0-d loss,
  a million values) and logs the statistics numpy computes from their values on the host,
  over every rank;
- ``mpi_avg_grads``, ``sync_params`` and ``FlatGrads`` refuse a module on the GPU with a
  ValueError that names its device, on every rank, before any collective (under MPI; one
  process averages nothing, as in Spinning Up, and only ``FlatGrads`` checks);
- the same module moved to the CPU then averages its gradients to the mean over the ranks:
  the refusals left nothing half-done.

Exits non-zero at the first check that fails.
"""

import json
import os
import sys

import numpy as np
import torch

from spinfast.logx import EpochLogger
from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, setup_pytorch_for_mpi, sync_params
from spinfast.mpi_tools import comm_world, num_procs, proc_id

if not torch.cuda.is_available():
    sys.exit("cuda_check.py: no CUDA device here")
setup_pytorch_for_mpi()
rank, size = proc_id(), num_procs()
cuda = torch.device("cuda", 0)
seen = {"rank": rank, "size": size, "device": torch.cuda.get_device_name(0)}

# 1. store() with CUDA tensors: the table holds the host values, over every rank.
w = torch.tensor([[1.0, 2.0], [3.0, 4.0]], device=cuda, requires_grad=True)
graph = w * (rank + 1)                      # in an autograd graph
half = torch.tensor([0.1, 0.2, 0.3], device=cuda, dtype=torch.bfloat16) * (rank + 1)
loss = (graph ** 2).mean()                  # a 0-d tensor
big = torch.arange(10**6, device=cuda, dtype=torch.float32) / 10**6 + rank
local = {"T": graph.detach().cpu().numpy().ravel(),
         "H": half.float().cpu().numpy(),   # bfloat16 -> float32 is exact
         "L": loss.detach().cpu().numpy().reshape(1),
         "B": big.cpu().numpy()}
logger = EpochLogger(output_dir=f"cuda_log{rank}" if size > 1 else "cuda_log")
logger.store(T=graph, H=half, L=loss, B=big)
everyone = comm_world().allgather(local) if size > 1 else [local]
seen["store"] = {}
for key in local:
    values = np.concatenate([d[key] for d in everyone]).astype(np.float64)
    expected = [values.mean(), values.std(), values.min(), values.max()]
    np.testing.assert_allclose(logger.get_stats(key), expected[:2], rtol=1e-9, atol=1e-12,
                               err_msg=key)  # Spinning Up's get_stats: mean and std
    seen["store"][key] = [float(v) for v in expected]
    logger.log_tabular(key, with_min_and_max=True)
logger.dump_tabular()
if rank == 0:  # the row written holds the statistics, min and max too
    header, row = (line.split("\t") for line in
                   open(os.path.join(logger.output_dir, "progress.txt")).read().splitlines())
    written = dict(zip(header, map(float, row)))
    for key, (mean, std, low, high) in seen["store"].items():
        np.testing.assert_allclose([written["Average" + key], written["Std" + key],
                                    written["Min" + key], written["Max" + key]],
                                   [mean, std, low, high], rtol=1e-6, err_msg=key)
logger.close()

# 2. A module on the GPU is refused, on every rank, naming the device.
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
model.to(cuda)
x = torch.full((5, 3), float(rank + 1), device=cuda)
model(x).sum().backward()
errors = {}
calls = {"FlatGrads": lambda: FlatGrads(model)}
if size > 1:
    calls.update(mpi_avg_grads=lambda: mpi_avg_grads(model),
                 mpi_avg_grads_bf16=lambda: mpi_avg_grads(model, compress="bf16"),
                 sync_params=lambda: sync_params(model))
for name, call in calls.items():
    try:
        call()
    except ValueError as exc:
        errors[name] = str(exc)
    assert name in errors and "cuda:0" in errors[name], (name, errors.get(name))
seen["refused"] = errors

# 3. The same module on the CPU averages to the mean of the ranks' gradients.
model.to("cpu")
grads = [p.grad.clone() for p in model.parameters()]
mpi_avg_grads(model)
mine = [g.numpy() for g in grads]
all_grads = comm_world().allgather(mine) if size > 1 else [mine]
for i, p in enumerate(model.parameters()):
    mean = np.mean([g[i] for g in all_grads], axis=0)
    np.testing.assert_allclose(p.grad.numpy(), mean, rtol=1e-6, atol=1e-7)
seen["averaged_on_cpu"] = True

with open(f"cuda{rank}.json", "w") as f:
    json.dump(seen, f, indent=1)
print(f"rank {rank}: every CUDA check passed", flush=True)
