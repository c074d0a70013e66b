"""Large sums, means and maxima through the engine's ring; writes ``ring{rank}.json``.

For each threshold (arrays reduced in place, or one large packed buffer) and op: the largest
error against numpy over the allgathered inputs and a hash of the result (equal on every rank);
results into separate arrays from read-only sources; broadcasts; a layout change mid-ring.
"""

import hashlib
import json

import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
ring_f32 = (1 << 16) // 4  # 64 KiB of float32: where the ring starts to win on two ranks
# Around the ring threshold, lengths that do not divide by the number of ranks, both dtypes.
SHAPES = [((ring_f32 - 1,), np.float32), ((ring_f32,), np.float32), ((100003,), np.float32),
          ((257, 301), np.float64), ((ring_f32 // 2 - 1,), np.float64), ((3,), np.float32)]
rng = np.random.default_rng(50 + rank)
mine = [rng.standard_normal(s).astype(dt) for s, dt in SHAPES]
everyone = comm.allgather(mine)           # pickled: independent of the engine
out = {}
for thr, label in ((1 << 16, "inplace"), (1 << 30, "packed")):   # large arrays / large pack
    fb = FlatBuffer(thr, algorithm="engine")  # the ring at any number of ranks
    inplace = {}
    for op in ("sum", "mean", "max"):
        for step in range(2):
            arrays = [a.copy() for a in mine]
            fb.allreduce(comm, arrays, op=op)
        inplace[op] = arrays
        out[f"{label} {op} paths"] = sorted(set(fb.paths.values()))
        for i, a in enumerate(arrays):
            stack = np.stack([r[i] for r in everyone])
            ref = {"sum": lambda s: s.sum(0), "mean": lambda s: s.sum(0) / s.dtype.type(size),
                   "max": lambda s: s.max(0)}[op](stack)
            err = float(np.max(np.abs(a.astype(np.float64) - ref)))
            out[f"{label} {op} {i}"] = (err, hashlib.sha1(a.tobytes()).hexdigest())
    # Results into separate arrays from read-only sources: the same values, sources intact.
    sources = [a.copy() for a in mine]
    for a in sources:
        a.flags.writeable = False
    for op in ("mean", "max"):
        into = [np.full_like(a, np.nan) for a in mine]
        fb.allreduce(comm, into, op=op, sources=sources)
        out[f"{label} into {op}"] = [
            bool(np.array_equal(a, b)) for a, b in zip(into, inplace[op])] + [
            bool(np.array_equal(a, b)) for a, b in zip(sources, mine)]
    for step in range(2):                   # broadcast from the last rank down the tree
        arrays = [a.copy() for a in mine]
        fb.bcast(comm, arrays, root=size - 1)
    out[f"{label} bcast"] = [bool(np.array_equal(a, b)) for a, b in zip(arrays, everyone[-1])]
# A rank changing its layout while the agreed first collective is a ring (large packed buffer):
# every rank raises, and the engine recovers.
fb = FlatBuffer(1 << 30, algorithm="engine")
fb.allreduce(comm, [a.copy() for a in mine], op="mean")
bad = [a.copy() for a in mine]
if rank == size - 1:
    bad[2] = bad[2][:-1].copy()
try:
    fb.allreduce(comm, bad, op="mean")
    out["mismatch"] = "no error"
except ValueError as exc:
    out["mismatch"] = str(exc)
again = [a.copy() for a in mine]
fb.allreduce(comm, again, op="sum")
out["recovered"] = float(np.max(np.abs(again[2] - sum(r[2] for r in everyone))))
with open(f"ring{rank}.json", "w") as f:
    json.dump(out, f)
