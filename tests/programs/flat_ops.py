"""FlatBuffer's reductions and broadcasts on every rank; writes ``results{rank}.json``.

Each entry is a list of arrays (flattened in memory order, as float64 lists): the inputs, the
result of every op in steady state, a renewed agreement, broadcasts, all-packed and
nothing-packed means, and reductions of Fortran-order arrays and memoryviews.
"""

import json

import numpy as np
from flat_data import THRESHOLD, data, views
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
results = {}


def report(name, arrays):
    results[name] = [np.asarray(a, np.float64).ravel(order="K").tolist() for a in arrays]


mine = data(rank)
report("input", mine)
fb = FlatBuffer(THRESHOLD)
for step in range(3):  # steady state: the same layout again and again
    for op in ("sum", "mean", "min", "max", "prod"):
        arrays = [a.copy(order="K") for a in mine]
        fb.allreduce(comm, arrays, op=op)
        for a, b in zip(arrays, mine):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.flags.f_contiguous == b.flags.f_contiguous
        if step == 2:
            report(op, arrays)
# One instance per use: the same op every call (no re-agreement), results unchanged.
fb_mean = FlatBuffer(THRESHOLD)
for step in range(4):
    arrays = [a.copy(order="K") for a in mine]
    fb_mean.allreduce(comm, arrays, op="mean")
report("mean_steady", arrays)
# A layout and op that change on every rank at once: agreement renewed, not an error.
small = [np.full(3, float(rank))]
fb_mean.allreduce(comm, small, op="sum")
report("relayout_sum", small)
# Broadcast from the last rank, twice (steady state).
for step in range(2):
    arrays = [a.copy(order="K") for a in mine]
    fb.bcast(comm, arrays, root=size - 1)
report("bcast", arrays)
# Everything packed, and nothing packed.
for thr, name in ((1 << 30, "mean_allpacked"), (0, "mean_nopacked")):
    arrays = [a.copy(order="K") for a in mine]
    FlatBuffer(thr).allreduce(comm, arrays, op="mean")
    report(name, arrays)
# A Fortran-order array and a memoryview are reduced in place like any array.
for op in ("sum", "max"):
    f, mv = views(rank)
    FlatBuffer().allreduce(comm, [f, mv], op=op)
    report(f"views_{op}", [np.asarray(f).ravel(order="C"), np.asarray(mv)])
with open(f"results{rank}.json", "w") as f:
    json.dump(results, f)
print("DONE", rank, fb.nbytes > 0, flush=True)
