"""Settings that differ between ranks: ``compress_mismatch.py CASE ...``, cases one after
another in one launch.

``none``: rank 0 averages with compress='bf16', the others with None; ``kind``: rank 0 with
'bf16', the others 'fp16'; ``layout``: rank 1's gradient has another shape; ``range``: fp16,
rank 1's gradient is beyond float16's range. Every rank prints the ValueError it got and
writes it to ``msg{rank}_{case}.txt`` (printed lines of several ranks may interleave), then
averages once more with one setting on every rank (the same module, except for ``layout``),
checks the result and prints ``recovered``: the state is usable after the error.
"""

import sys

import torch

from spinfast import mpi_tools
from spinfast.mpi_pytorch import mpi_avg_grads

rank, size = mpi_tools.proc_id(), mpi_tools.num_procs()
for case in sys.argv[1:]:
    kind = {"none": "bf16" if rank == 0 else None, "kind": "bf16" if rank == 0 else "fp16",
            "layout": "bf16", "range": "fp16"}[case]
    model = torch.nn.Linear(4, 3 + (case == "layout" and rank == 1))
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e5 if case == "range" and rank == 1 else 1.0)
    try:
        mpi_avg_grads(model, compress=kind)
        print(f"rank {rank} {case}: no error", flush=True)
    except ValueError as exc:
        print(f"rank {rank} {case}: ValueError: {exc}", flush=True)
        with open(f"msg{rank}_{case}.txt", "w") as f:
            f.write(str(exc))
    if case == "layout":
        model = torch.nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = torch.full_like(p, float(rank))
    mpi_avg_grads(model, compress="fp16" if case == "range" else "bf16")
    assert all((p.grad == (size - 1) / 2).all() for p in model.parameters()), case
    print(f"rank {rank} {case}: recovered", flush=True)
