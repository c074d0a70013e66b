"""Settings that differ between ranks: ``compress_mismatch.py none|kind|layout|range``.

``none``: rank 0 averages with compress='bf16', the others with None; ``kind``: rank 0 with
'bf16', the others 'fp16'; ``layout``: rank 1's gradient has another shape; ``range``: fp16,
rank 1's gradient is beyond float16's range. Every rank prints the ValueError it got, then
averages once more correctly (the state is usable after the error). Each rank writes the
message to ``msg{rank}.txt`` too (printed lines of two ranks may interleave).
"""

import sys

import torch

from spinfast import mpi_tools
from spinfast.mpi_pytorch import mpi_avg_grads

case = sys.argv[1]
rank = mpi_tools.proc_id()
kind = {"none": "bf16" if rank == 0 else None, "kind": "bf16" if rank == 0 else "fp16",
        "layout": "bf16", "range": "fp16"}[case]
shape = (4, 3 + (case == "layout" and rank == 1))
model = torch.nn.Linear(*shape)
for p in model.parameters():
    p.grad = torch.full_like(p, 1e5 if case == "range" and rank == 1 else 1.0)
try:
    mpi_avg_grads(model, compress=kind)
    print(f"rank {rank} no error", flush=True)
except ValueError as exc:
    print(f"rank {rank} ValueError: {exc}", flush=True)
    with open(f"msg{rank}.txt", "w") as f:
        f.write(str(exc))
if case == "range":  # the residuals were reset; a good step works
    for p in model.parameters():
        p.grad = torch.full_like(p, float(rank))
    mpi_avg_grads(model, compress=kind)
    assert all((p.grad == 0.5).all() for p in model.parameters()), "bad average after error"
    print(f"rank {rank} recovered", flush=True)
