"""FlatBuffer's ops under each collectives algorithm; writes ``algo{rank}.json``.

Run with ``SPINFAST_COLLECTIVES=mpi`` in the environment. For each algorithm given as the
argument (``engine``, ``mpi``, ``auto``) or read from that variable (``env``, argument None),
each fusion threshold (small arrays packed and large ones in place, or everything packed into
large buffers) and each op, the second call of the op (the agreed, steady-state path) records
per array: the largest error against numpy over the allgathered inputs, whether it equals numpy
exactly, a hash of the result's bytes (equal on every rank) and its largest difference from the
engine's result; the paths the call took (``FlatBuffer.paths``); whether results into other
arrays from read-only ``sources`` equal the in-place ones; and the bytes each instance holds in
the end.
"""

import hashlib
import json

import numpy as np
from flat_data import steady
from mpi4py import MPI

from spinfast._flat import FlatBuffer

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
# Small (packed under the default threshold) and large (>= 64 KiB: the ring under engine
# path) arrays of both dtypes, at lengths that do not divide by the number of ranks.
SHAPES = [((3, 4), np.float32), ((1,), np.float64), ((777,), np.float32), ((101,), np.float64),
          (((1 << 16) // 4 + 5,), np.float32), ((100003,), np.float32),
          ((257, 131), np.float64), (((1 << 16) // 8,), np.float64)]
rng = np.random.default_rng(70 + rank)
mine = [rng.standard_normal(s).astype(dt) for s, dt in SHAPES]
everyone = comm.allgather(mine)  # pickled: independent of the engine
sources = [a.copy() for a in mine]
for a in sources:
    a.flags.writeable = False
REFS = {
    "sum": lambda s: s.sum(0),
    "mean": lambda s: s.sum(0) / s.dtype.type(size),
    "min": lambda s: s.min(0),
    "max": lambda s: s.max(0),
    "bcast": lambda s: s[size - 1],
}
out = {"algorithms": {}}
engine = {}
for algo in ("engine", "mpi", "auto", "env"):
    for thr in (1 << 16, 1 << 30):
        fb = FlatBuffer(thr, algorithm=None if algo == "env" else algo)
        results = {}
        out["algorithms"][algo] = fb.algorithm
        for op in REFS:
            arrays = steady(fb, comm, mine, op, root=size - 1)
            if algo == "engine":
                engine[(thr, op)] = arrays
            out[f"{algo} {thr} {op} paths"] = {str(k): v for k, v in fb.paths.items()}
            for i, a in enumerate(arrays):
                ref = REFS[op](np.stack([r[i] for r in everyone]))
                assert a.dtype == ref.dtype and a.shape == ref.shape
                out[f"{algo} {thr} {op} {i}"] = (
                    float(np.max(np.abs(a.astype(np.float64) - ref))),
                    bool(np.array_equal(a, ref)),
                    hashlib.sha1(a.tobytes()).hexdigest(),
                    float(np.max(np.abs(a.astype(np.float64) - engine[(thr, op)][i]))),
                )
            results[op] = arrays
        # Results into separate arrays from read-only sources: the bits of the in-place call.
        for op in ("sum", "mean", "max"):
            into = [np.full_like(a, np.nan) for a in mine]
            fb.allreduce(comm, into, op=op, sources=sources)
            out[f"{algo} {thr} into {op}"] = all(
                np.array_equal(a, b) for a, b in zip(into, results[op])) and all(
                np.array_equal(a, b) for a, b in zip(sources, mine))
        out[f"{algo} {thr} nbytes"] = fb.nbytes  # the engine's algorithms grow a scratch buffer
with open(f"algo{rank}.json", "w") as f:
    json.dump(out, f)
