"""Compressed averages, one per case: ``compress_avg.py [--piece N] PATH:KIND ...``.

For each case (PATH ``kernels``, ``grads`` or ``flat``; KIND ``bf16`` or ``fp16``) each rank
averages ``compress_data.grads(rank)`` (``kernels``: the arrays themselves through a
``Compressor``; ``grads``: a torch module's gradients through ``mpi_avg_grads``, one of them
present on rank 0 only and one float64; ``flat``: through ``FlatGrads``) and saves what it got
to ``avg{rank}_{PATH}_{KIND}.npz`` (one entry per array, in order). The cases run one after
another in one launch. ``--piece N`` sets the largest message in values (default 2**30), so
that small messages exercise the cutting of large ones.
"""

import sys

import numpy as np
from compress_data import SHAPES, grads

from spinfast import mpi_tools
from spinfast._mpi import compression as _compression

args = sys.argv[1:]
if args[0] == "--piece":
    _compression._PIECE = int(args[1])
    args = args[2:]
rank = mpi_tools.proc_id()


def average(path, kind):
    mine = grads(rank)
    if path == "kernels":
        arrays = [g.copy() for g in mine]
        _compression.average_arrays(_compression.Compressor(kind), mpi_tools.comm_world(),
                                    arrays)
        return arrays
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
        assert params[-1].grad is None
    else:
        flat.average()
    return [p.grad.numpy() if p.grad is not None else np.array([]) for p in params]


for case in args:
    path, kind = case.split(":")
    np.savez(f"avg{rank}_{path}_{kind}.npz", *average(path, kind))
