"""Collectives of more than 2**31 bytes: ``large_counts.py CASE``, on every algorithm.

``tensor``: one float32 array of 2**29 + 12345 elements (2.05 GiB) averaged and broadcast in
place by ``FlatBuffer(algorithm=...)`` for 'engine', 'mpi' and 'auto'. ``packed``: 16 arrays
whose packed buffer holds 2**29 + 16 * 77 float32 (fusion threshold above every array),
averaged and broadcast. ``torch``: ``mpi_avg_grads`` and ``sync_params`` on a module with one
parameter of 2**29 + 12345 elements. Rank r's values are (r + 1) except for a pattern of
marked elements, so every rank can check the result exactly without a second copy; each
writes ``out{rank}.json`` with the cases it checked.
"""

import json
import sys

import numpy as np

from spinfast._flat import FlatBuffer
from spinfast.mpi_tools import comm_world, num_procs, proc_id

case = sys.argv[1]
comm, rank, size = comm_world(), proc_id(), num_procs()
N = 2**29 + 12345
MARKS = np.array([0, 1, 4093, 2**28 - 1, 2**28, 2**29 - 1, 2**29, N - 2, N - 1])
mean_value = sum(range(1, size + 1)) / size          # of the (r + 1) filling
mark_mean = sum(10.0 * r for r in range(size)) / size  # marked elements hold 10 r


def fill(parts):
    """Write rank ``rank``'s values into ``parts`` (a list of arrays seen as one sequence)."""
    offset = 0
    for a in parts:
        a.fill(rank + 1)
        local = MARKS[(MARKS >= offset) & (MARKS < offset + a.size)] - offset
        a[local] = 10.0 * rank
        offset += a.size


def check(parts, expect_rest, expect_marks, what):
    offset = 0
    for a in parts:
        local = MARKS[(MARKS >= offset) & (MARKS < offset + a.size)] - offset
        assert np.all(a[local] == expect_marks), (what, a[local], expect_marks)
        a[local] = expect_rest
        # min and max read the array without a temporary of its size (a NaN fails both)
        assert a.min() == expect_rest == a.max(), (what, np.flatnonzero(a != expect_rest)[:10])
        offset += a.size


checked = []
if case in ("tensor", "packed"):
    if case == "tensor":
        parts, threshold = [np.empty(N, np.float32)], 2**16
    else:
        sizes = [(2**29 + 16 * 77) // 16] * 16
        parts, threshold = [np.empty(n, np.float32) for n in sizes], 2**31
    assert sum(a.nbytes for a in parts) > 2**31
    for algorithm in ("engine", "mpi", "auto"):
        engine = FlatBuffer(fusion_threshold=threshold, algorithm=algorithm)
        fill(parts)
        engine.allreduce(comm, parts, op="mean")
        check(parts, np.float32(mean_value), np.float32(mark_mean), f"{algorithm} mean")
        fill(parts)
        engine.bcast(comm, parts, root=size - 1)
        check(parts, np.float32(size), np.float32(10.0 * (size - 1)), f"{algorithm} bcast")
        checked.append(algorithm)
        del engine
elif case == "torch":
    import torch

    from spinfast.mpi_pytorch import mpi_avg_grads, setup_pytorch_for_mpi, sync_params

    setup_pytorch_for_mpi()
    module = torch.nn.Module()
    module.w = torch.nn.Parameter(torch.empty(N))
    module.w.grad = torch.empty(N)
    grad, param = module.w.grad.numpy(), module.w.detach().numpy()
    fill([grad])
    mpi_avg_grads(module)
    check([grad], np.float32(mean_value), np.float32(mark_mean), "mpi_avg_grads")
    fill([param])
    sync_params(module)
    check([param], np.float32(1), np.float32(0), "sync_params")  # rank 0's values
    checked.append("torch")
json.dump({"case": case, "checked": checked}, open(f"out{rank}.json", "w"))
