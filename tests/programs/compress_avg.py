"""One compressed average: ``compress_avg.py kernels|grads|flat bf16|fp16 [PIECE]``.

Each rank averages ``compress_data.grads(rank)`` (``kernels``: the arrays themselves through a
``Compressor``; ``grads``: a torch module's gradients through ``mpi_avg_grads``, one of them
present on rank 0 only and one float64; ``flat``: through ``FlatGrads``) and saves what it got
to ``avg{rank}.npz`` (one entry per array, in order). ``PIECE`` sets the largest message in
values (default 2**30), so that small messages exercise the cutting of large ones.
"""

import sys

import numpy as np
from compress_data import SHAPES, grads

from spinfast import mpi_tools

path, kind = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:
    from spinfast import _compression

    _compression._PIECE = int(sys.argv[3])
rank = mpi_tools.proc_id()
mine = grads(rank)
if path == "kernels":
    from spinfast._compression import Compressor, average_arrays

    arrays = [g.copy() for g in mine]
    average_arrays(Compressor(kind), mpi_tools.comm_world(), arrays)
    result = arrays
else:
    import torch

    from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads

    params = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(s)) for s in SHAPES])
    params.append(torch.nn.Parameter(torch.zeros(5, dtype=torch.float64)))  # uncompressed
    params.append(torch.nn.Parameter(torch.zeros(7)))  # a gradient on rank 0 only
    params.append(torch.nn.Parameter(torch.zeros(2)))  # no gradient anywhere
    flat = FlatGrads(params, compress=kind) if path == "flat" else None
    for p, g in zip(params, mine):
        p.grad = torch.from_numpy(g.copy())
    params[len(SHAPES)].grad = torch.full((5,), rank + 0.25, dtype=torch.float64)
    if rank == 0:
        params[len(SHAPES) + 1].grad = torch.arange(7, dtype=torch.float32)
    if flat is None:
        mpi_avg_grads(params, compress=kind)
    else:
        flat.average()
    result = [p.grad.numpy() if p.grad is not None else np.array([]) for p in params]
    if flat is None:
        assert params[-1].grad is None
np.savez(f"avg{rank}.npz", *result)
