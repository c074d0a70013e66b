"""Gradients averaged with ``FlatGrads(overlap=True)`` against ``mpi_avg_grads`` on the same
model and data, over three training steps.

Each rank builds the same seeded MLP twice (one with an unused parameter that never gets a
gradient), computes its own batch's gradients in both, averages one with ``mpi_avg_grads`` and
the other with ``FlatGrads(overlap=True, bucket_bytes=BYTES)`` (``sys.argv[1]``, default
64 KiB: several buckets), takes the same SGD step in both, and writes ``out{rank}.json``: per
step whether every gradient is equal bit for bit and the largest relative difference, and
whether a second backward before ``average`` raised RuntimeError. Steps 2 and 3 clear the
gradients with ``zero_grad()`` (to None) and ``zero_grad(set_to_none=False)``.
"""

import json
import sys

import torch
from torch import nn

from spinfast.mpi_pytorch import FlatGrads, mpi_avg_grads, setup_pytorch_for_mpi
from spinfast.mpi_tools import proc_id

BYTES = int(sys.argv[1]) if len(sys.argv) > 1 else 64 << 10


def mlp():
    torch.manual_seed(0)
    model = nn.Module()
    model.body = nn.Sequential(nn.Linear(16, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(),
                               nn.Linear(256, 4))
    model.unused = nn.Linear(3, 2)  # no gradient ever: averaged as zeros by FlatGrads
    return model


def backward(model, x, y):
    ((model.body(x) - y) ** 2).mean().backward()


setup_pytorch_for_mpi()
rank = proc_id()
plain, over = mlp(), mlp()
flat = FlatGrads(over, overlap=True, bucket_bytes=BYTES)
opt_plain = torch.optim.SGD(plain.parameters(), lr=0.1)
opt_over = torch.optim.SGD(over.parameters(), lr=0.1)
steps = []
for step in range(3):
    g = torch.Generator().manual_seed(100 * step + rank)
    x, y = torch.randn(32, 16, generator=g), torch.randn(32, 4, generator=g)
    opt_plain.zero_grad()
    opt_over.zero_grad(set_to_none=step != 2)
    backward(plain, x, y)
    mpi_avg_grads(plain)
    backward(over, x, y)
    flat.average()
    pairs = [(p.grad, q.grad) for p, q in zip(plain.parameters(), over.parameters())
             if p.grad is not None]
    unused = [q.grad for q in over.unused.parameters()]
    steps.append({
        "equal": all(torch.equal(a, b) for a, b in pairs),
        "max_rel": max(float(((a - b).abs().max() / b.abs().max()).item()) for a, b in pairs),
        "compared": len(pairs),
        "unused_zero": all(u is not None and not u.any() for u in unused),
        "views": all(q.grad.data_ptr() == flat.views[q].data_ptr() for q in over.parameters()),
    })
    opt_plain.step()
    opt_over.step()
backward(over, x, y)
backward(over, x, y)
try:
    flat.average()
    twice = "no error"
except RuntimeError as exc:
    twice = str(exc)
json.dump({"steps": steps, "buckets": len(flat.buffers), "twice": twice},
          open(f"out{rank}.json", "w"))
