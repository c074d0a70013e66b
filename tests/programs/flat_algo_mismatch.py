"""FlatBuffer raises the same error on every rank when one rank's algorithm differs.

Run with ``SPINFAST_COLLECTIVES=engine``; the last rank sets the variable to ``mpi`` (a wrong
environment) before making its instances. Each call writes ``OK label`` or ``ERR label ...``
to ``out{rank}.txt``; afterwards instances with equal settings still work (``VALUE``).
"""

import os

import flat_attempt
import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
out = open(f"out{rank}.txt", "w")


def arrays():
    return [np.ones((4, 5), np.float32), np.ones(30000), np.ones(7)]


def attempt(label, fb, call):
    flat_attempt.attempt(out, comm, label, fb, call, arrays())


if rank == last:
    os.environ["SPINFAST_COLLECTIVES"] = "mpi"
for call in ("sum", "mean", "max", "bcast"):
    attempt(f"env-{call}", FlatBuffer(), call)
attempt("argument", FlatBuffer(algorithm="mpi" if rank == last else "engine"), "sum")
attempt("auto-engine", FlatBuffer(algorithm="auto" if rank == last else "engine"), "sum")
fb = FlatBuffer(algorithm="mpi")  # the argument wins over the variable: equal everywhere
attempt("agreed", fb, "sum")
x = arrays()
fb.allreduce(comm, x, op="mean")
print(f"VALUE rank={rank} {float(x[1][0])!r} {fb.algorithm}", file=out, flush=True)
