"""FlatBuffer raises the same error on every rank when one rank's layout, op or root differs.

Each attempt first agrees on a good layout, then one rank (the last) passes another; every rank
writes ``OK label`` or ``ERR label ...`` lines to ``out{rank}.txt``, and the value of a mean
after the errors (``VALUE``).
"""

import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
fb = FlatBuffer(1 << 10)
out = open(f"out{rank}.txt", "w")

def base():
    return [np.ones((4, 5), np.float32), np.ones(3000), np.ones(7)]

def attempt(label, arrays, op="sum", call="allreduce", root=0):
    # Agree on a good layout first, so that the mismatch is caught by the flag riding in the
    # first collective (the steady-state path), not by the hash exchange of a fresh layout.
    if call == "allreduce":
        fb.allreduce(comm, base(), op="sum")
    else:
        fb.bcast(comm, base(), root=0)
    try:
        if call == "allreduce":
            fb.allreduce(comm, arrays, op=op)
        else:
            fb.bcast(comm, arrays, root=root)
    except (ValueError, TypeError) as exc:
        print(f"ERR {label} rank={rank} {type(exc).__name__}: {exc}", file=out, flush=True)
    else:
        print(f"OK {label} rank={rank}", file=out, flush=True)

attempt("warmup", base())                       # agreed layout from here on
a = base()
if rank == last:
    a[0] = np.ones((5, 4), np.float32)
attempt("shape", a)
a = base()
if rank == last:
    a[1] = np.ones(3000, np.float32)
attempt("dtype", a)
a = base()
if rank == last:
    a.append(np.ones(2))
attempt("count", a)
attempt("op", base(), op="sum" if rank else "mean")
a = base()
if rank == last:
    a[2] = np.arange(7)
attempt("invalid", a)
a = base()
if rank == last:
    a[0] = np.asfortranarray(a[0])
attempt("order", a)
attempt("root", base(), call="bcast", root=0 if rank else 1)
attempt("recovered", base())                    # a failed call leaves the engine usable
fb = FlatBuffer(1 << 10)  # first call of a fresh instance: hash exchange
a = base()
if rank == last:
    a[0] = np.ones((5, 4), np.float32)
try:
    fb.allreduce(comm, a)
except ValueError as exc:
    print(f"ERR fresh rank={rank} {type(exc).__name__}: {exc}", file=out, flush=True)
x = base()
fb.allreduce(comm, x, op="mean")
print(f"VALUE rank={rank} {float(x[1][0])!r}", file=out, flush=True)
