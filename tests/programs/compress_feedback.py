"""Error feedback: ``compress_feedback.py KIND ...`` (``bf16``, ``fp16``), one after another.

Every rank's gradient is the same constant each step (different on every rank); 200 steps of
``mpi_avg_grads(compress=kind)`` and of ``compress=None``. Saves the sums of the averaged
gradients to ``sums{rank}_{kind}.npz`` (``compressed``, ``float32``) and one step's average
(``once``, ``once32``).
"""

import sys

import numpy as np
import torch

from spinfast import mpi_tools
from spinfast.mpi_pytorch import mpi_avg_grads

rank = mpi_tools.proc_id()
rng = np.random.default_rng(rank)
g = (rng.standard_normal(4000) * 10.0 ** rng.uniform(-2, 2, 4000)).astype(np.float32)
params = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(4000))])
param = params[0]
for kind in sys.argv[1:]:
    sums = {}
    for compress in (kind, None):
        total = np.zeros(4000, np.float64)
        for step in range(200):
            param.grad = torch.from_numpy(g.copy())
            mpi_avg_grads(params, compress=compress)
            total += param.grad.numpy()
            if step == 0:
                sums["once" if compress else "once32"] = param.grad.numpy().copy()
        sums["compressed" if compress else "float32"] = total
    np.savez(f"sums{rank}_{kind}.npz", **sums)
