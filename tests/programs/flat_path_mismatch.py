"""FlatBuffer raises the same error on every rank when one rank's decision table differs.

Two builds whose crossovers differ (x86 against aarch64, say) would choose different paths for
the same buffer under ``algorithm='auto'``. The last rank moves its table's crossover for this
number of ranks (``spinfast._flat._set_rule``, a private test hook) before its first call, so
that it picks MPI's Allreduce where the others pick the engine's doubling or ring (or, with
``mpi_upto=0``, the other way round). Each call writes ``OK label`` or ``ERR label ...`` to
``out{rank}.txt``; after the table is restored a new instance works (``VALUE``). (A plan the
ranks agreed on before the change is kept until the call changes: ``kept-sum``.)
"""

import flat_attempt
import numpy as np
from mpi4py import MPI

from spinfast import _flat
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
old = None
if rank == last:  # another build: everything up to 1 GiB goes to MPI's Allreduce
    old = _flat._set_rule(transport, size, mpi_upto=1 << 30, mean_mpi_upto=1 << 30)
    if before.get("float32") == "mpi":  # (3 ranks, 20 KB: MPI already) the other way round
        _flat._set_rule(transport, size, mpi_upto=0, mean_mpi_upto=0)
attempt("kept-sum", fb, "sum")  # the plan all ranks agreed on is kept: no new choice
attempt("changed-mean", fb, "mean")  # a new plan: chosen by the changed table
for call in ("sum", "mean", "bcast"):
    attempt(f"fresh-{call}", FlatBuffer(), call)
if old is not None:
    _flat._set_rule(transport, size, **old)
fb = FlatBuffer()
x = arrays()
fb.allreduce(comm, x, op="mean")
print(f"VALUE rank={rank} {float(x[0][0])!r} {float(x[1][0])!r} {fb.paths == before}", file=out,
      flush=True)
