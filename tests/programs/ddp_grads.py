"""spinfast's averaged gradients against PyTorch DDP's (gloo) on the same model and data.

Each rank builds the same seeded MLP twice, one plain and one in ``DistributedDataParallel``,
computes its own batch's gradients in both, averages the plain one with ``mpi_avg_grads`` and
writes ``out{rank}.json``: whether every gradient equals DDP's bit for bit, and the largest
relative difference. gloo meets at ``MASTER_ADDR:MASTER_PORT`` where the launch sets them
(tests/test_netcluster.py), else on a free loopback port of rank 0.
"""

import json
import os
import socket
import sys

import torch
import torch.distributed as dist
from mpi4py import MPI
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi
from spinfast.mpi_tools import comm_world, num_procs, proc_id


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(),
                         nn.Linear(256, 4))


def gradients(model, x, y):
    model.zero_grad()
    ((model(x) - y) ** 2).mean().backward()


setup_pytorch_for_mpi()
rank, comm = proc_id(), comm_world()
if "MASTER_ADDR" in os.environ:  # set by the launch (bench/netcluster.py: node 0's address)
    init = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
else:
    port = None
    if rank == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    init = f"tcp://127.0.0.1:{comm.bcast(port, root=0)}"
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=num_procs())
g = torch.Generator().manual_seed(100 + rank)
x, y = torch.randn(32, 16, generator=g), torch.randn(32, 4, generator=g)
plain, ddp = mlp(), DistributedDataParallel(mlp())
gradients(plain, x, y)
mpi_avg_grads(plain)
gradients(ddp, x, y)
pairs = [(p.grad, q.grad) for p, q in zip(plain.parameters(), ddp.module.parameters())]
equal = all(torch.equal(a, b) for a, b in pairs)
rel = max(float(((a - b).abs().max() / b.abs().max()).item()) for a, b in pairs)
json.dump({"equal": equal, "max_rel": rel}, open(f"out{rank}.json", "w"))
# Every rank done with gloo before any tears it down: a rank whose peer closed the connection
# first may abort in gloo's receive thread ("terminate called without an active exception").
dist.barrier()
dist.destroy_process_group()
comm.Barrier()
# gloo's worker threads may still call into Python while the interpreter finalizes, which
# aborts the process ("terminate called without an active exception", seen under Open MPI
# 4.1 in 2 of 7 runs). The results are written: end MPI, then leave without finalizing.
sys.stdout.flush()
sys.stderr.flush()
MPI.Finalize()
os._exit(0)
