"""FlatBuffer raises the same error on every rank when one rank's decision table differs.

Two builds whose crossovers differ (x86 against aarch64, say) would choose different paths for
the same buffer under ``algorithm='auto'``. The last rank moves its table's crossover for this
number of ranks (the environment variable ``SPINFAST_FLAT_RULES``, read by the instances made
while it is set) so that it picks MPI's Allreduce where the others pick the engine's doubling or
ring (or, with ``mpi_upto=0``, the other way round). Each call writes ``OK label`` or
``ERR label ...`` to ``out{rank}.txt``; after the variable is unset a new instance works
(``VALUE``). (An instance made before keeps its table: ``kept-sum``, ``kept-mean``.)
"""

import os

import flat_attempt
import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
last = size - 1
local = comm.Split_type(MPI.COMM_TYPE_SHARED)
transport = "shared" if local.Get_size() == size else "network"
local.Free()
out = open(f"out{rank}.txt", "w")


def arrays():
    # 20 KB packed (float32) and a 400 KB float64 array in place
    return [np.ones(5000, np.float32), np.ones(50000)]


def attempt(label, fb, call):
    flat_attempt.attempt(out, comm, label, fb, call, arrays())


fb = FlatBuffer()  # algorithm='auto' (the tests run without SPINFAST_COLLECTIVES)
attempt("agreed", fb, "sum")
before = fb.paths
if rank == last:  # another build: everything up to 1 GiB goes to MPI's Allreduce
    upto = 0 if before.get("float32") == "mpi" else 1 << 30  # (3 ranks, 20 KB: MPI already)
    os.environ["SPINFAST_FLAT_RULES"] = f"{transport}:{size}:mpi_upto={upto},mean_mpi_upto={upto}"
attempt("kept-sum", fb, "sum")  # an instance made before keeps its table
attempt("kept-mean", fb, "mean")
for call in ("sum", "mean", "bcast"):
    attempt(f"fresh-{call}", FlatBuffer(), call)
os.environ.pop("SPINFAST_FLAT_RULES", None)
fb = FlatBuffer()
x = arrays()
fb.allreduce(comm, x, op="mean")
print(f"VALUE rank={rank} {float(x[0][0])!r} {float(x[1][0])!r} {fb.paths == before}", file=out,
      flush=True)
