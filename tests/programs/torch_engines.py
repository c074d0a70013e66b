"""mpi_avg_grads keeps one engine per module: MPI calls counted by a PMPI library
(pmpi_count.c, loaded through mpi4py.profile from $PMPI_COUNT_DIR), and two threads averaging
two modules at once.

Writes ``THREAD_MULTIPLE <bool>``, ``COUNTS <repeat pi> <repeat q> <alternate>`` (collectives
and point-to-point calls per call, on any communicator) and ``THREADS <errors>`` to
``engines{rank}.txt``.
"""

import ctypes
import os
import threading

import mpi4py

mpi4py.profile("pmpi_count", path=[os.environ["PMPI_COUNT_DIR"]])

import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

from spinfast.mpi_pytorch import mpi_avg_grads  # noqa: E402

counter = ctypes.CDLL(os.path.join(os.environ["PMPI_COUNT_DIR"], "libpmpi_count.so"))
counter.pmpi_count_collectives.restype = counter.pmpi_count_messages.restype = ctypes.c_long
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
out = open(f"engines{rank}.txt", "w")
torch.manual_seed(0)
pi = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Linear(64, 4))  # 836 floats
q = torch.nn.Linear(100, 100)  # 10100 floats


def fill(module, value):
    for p in module.parameters():
        p.grad = torch.full_like(p, float(rank + value))


def per_call(modules, calls=20):
    c0, m0 = counter.pmpi_count_collectives(), counter.pmpi_count_messages()
    for i in range(calls):
        fill(modules[i % len(modules)], i)
        mpi_avg_grads(modules[i % len(modules)])
    return ((counter.pmpi_count_collectives() - c0) / calls,
            (counter.pmpi_count_messages() - m0) / calls)


def check(module, value, errors):
    want = (size - 1) / 2 + value  # the mean of rank + value over the ranks
    for p in module.parameters():
        if not torch.equal(p.grad, torch.full_like(p, want)):
            errors.append(f"{value}: {p.grad.flatten()[:3].tolist()} != {want}")


print(f"THREAD_MULTIPLE {MPI.Query_thread() == MPI.THREAD_MULTIPLE}", file=out, flush=True)
mpi_avg_grads(pi)  # each module's first call makes its engines
mpi_avg_grads(q)
one, other, both = per_call([pi]), per_call([q]), per_call([pi, q])
print(f"COUNTS {one[0]} {one[1]} {other[0]} {other[1]} {both[0]} {both[1]}", file=out,
      flush=True)

errors: list = []


def train(module, offset):
    for i in range(50):
        fill(module, offset + i)
        mpi_avg_grads(module)
        check(module, offset + i, errors)


threads = [threading.Thread(target=train, args=(pi, 0)),
           threading.Thread(target=train, args=(q, 1000))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"THREADS {len(errors)} {errors[:2]}", file=out, flush=True)
