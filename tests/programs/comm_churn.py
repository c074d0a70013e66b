"""Short-lived sub-communicators, each used once and freed; writes ``churn{rank}.json``.

``comm_churn.py ITERATIONS ENGINE [finalize]``: ENGINE ``flat`` sums a float32 and a float64
array with a ``FlatBuffer``; ``torch`` averages a tiny torch module's gradient tensors through
the engine (as ``mpi_avg_grads`` does; that one only knows the world). Every 1,000 iterations
the same engine (for ``torch``: ``mpi_avg_grads``) runs on the world in between, whose link
lives until MPI_Finalize: at exit, or with ``finalize`` by ``MPI.Finalize()`` (then
``final{rank}.txt``). Consecutive communicators hold the same ranks in reverse order, so they
are not congruent. The resident set size is taken after 2,000 iterations and at the end; a
failure records the iteration it happened in.
"""

import json
import os
import sys

import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

iterations, engine = int(sys.argv[1]), sys.argv[2]
world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
fb = FlatBuffer()
page = os.sysconf("SC_PAGE_SIZE")


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20


if engine == "torch":
    import torch

    from spinfast.mpi_pytorch import mpi_avg_grads

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))

    def grads_of(r, i):
        model.zero_grad()
        model(torch.full((2, 3), float(r + 1)) * (i % 7 + 1)).sum().backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    # this rank's gradients and their mean over the ranks, for each input scale (backward
    # passes made once: the loop times the engine, not autograd)
    mine = [grads_of(rank, i) for i in range(7)]
    expected = [[np.mean(gs, axis=0) for gs in zip(*(grads_of(r, i) for r in range(size)))]
                for i in range(7)]


def once(comm, i):
    # One use of ``comm``: True if every rank got the expected result.
    if engine == "flat":
        a32 = np.full(5, rank + 1, np.float32)
        a64 = np.full(3, (rank + 1) * i, np.float64)
        fb.allreduce(comm, [a32, a64], op="sum")
        s = size * (size + 1) // 2
        return bool(np.all(a32 == s) and np.all(a64 == s * i))
    params = list(model.parameters())
    for p, g in zip(params, mine[i % 7]):  # this rank's gradients, as new tensors
        p.grad = torch.from_numpy(g.copy())
    grads = [p.grad.numpy() for p in params]
    if comm is world:
        mpi_avg_grads(model)
    else:
        fb.allreduce(comm, grads, op="mean")
    return all(np.allclose(g, e, rtol=1e-6, atol=1e-7) for g, e in zip(grads, expected[i % 7]))


out = {"iterations": iterations, "ok": True}
try:
    for i in range(iterations):
        key = rank if i % 2 == 0 else size - 1 - rank  # reversed order every other time
        comm = world.Split(0, key)
        out["ok"] &= once(comm, i)
        comm.Free()
        if i % 1000 == 0:
            out["ok"] &= once(world, i)
        if i + 1 == 2000:
            out["rss_2000"] = rss_mb()
    out["rss_end"] = rss_mb()
except MPI.Exception as e:
    out["failed_at"] = i
    out["error"] = str(e)
with open(f"churn{rank}.json", "w") as f:
    json.dump(out, f)
if sys.argv[3:] == ["finalize"]:
    MPI.Finalize()
    with open(f"final{rank}.txt", "w") as f:
        f.write("finalized")
