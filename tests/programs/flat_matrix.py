"""Every collectives algorithm x op x dtype; writes ``matrix{rank}.json``.

For ``algorithm`` in auto, mpi, engine, each op (sum, mean, min, max, prod, bcast from the last
rank) and a list of float32 and float64 arrays (small ones packed, larger ones in place, sizes
that do not divide by the number of ranks), the second call (steady state) records per array:
the largest relative error against numpy over the allgathered inputs, a hash of the result's
bytes, and the paths the call took (``FlatBuffer.paths``) next to what ``choose()`` predicts
for the same buffers, and the transport the ranks see (``network`` when each rank is its own
node). Run it on shared memory and over the library's network module (conftest.network_path).
"""

import hashlib
import json

import numpy as np
from flat_data import steady
from mpi4py import MPI

from spinfast._flat import FlatBuffer, choose

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
local = comm.Split_type(MPI.COMM_TYPE_SHARED)
transport = "shared" if local.Get_size() == size else "network"
local.Free()
# packed (< 64 KiB) and in place; 20011 float32 = 80 KB, 9001 float64 = 72 KB
SHAPES = [((5, 7), np.float32), ((3,), np.float64), ((20011,), np.float32),
          ((9001,), np.float64), ((1000,), np.float32), ((3, 3001), np.float64)]
rng = np.random.default_rng(90 + rank)
# prod over 8 ranks stays finite and exact enough with factors near 1
mine = [(1 + 0.1 * rng.standard_normal(s)).astype(dt) for s, dt in SHAPES]
everyone = comm.allgather(mine)  # pickled: independent of the engine
REFS = {
    "sum": lambda s: s.sum(0),
    "mean": lambda s: s.sum(0) / s.dtype.type(size),
    "min": lambda s: s.min(0),
    "max": lambda s: s.max(0),
    "prod": lambda s: s.prod(0),
    "bcast": lambda s: s[size - 1],
}


def predicted(fb, op, algo):
    """What choose() says for the buffers of this call (the layout FlatBuffer makes)."""
    small = [a for a in mine if a.nbytes < fb.fusion_threshold]
    if op == "bcast":
        kinds = {a.dtype for a in small}
        lone = [a for a in small if sum(b.dtype == a.dtype for b in small) == 1]
        packed = {k: sum(a.nbytes for a in small if a.dtype == k) for k in kinds
                  if not any(a.dtype == k for a in lone)}
        count = len(packed) + len(mine) - sum(len([a for a in small if a.dtype == k])
                                              for k in packed)
        return {"bcast": choose("bcast", size, sum(a.nbytes for a in mine), transport, algo,
                                buffers=count)}
    out = {}
    flag = "float32" if any(a.dtype == np.float32 for a in small) else "float64"
    for name, dt in (("float32", np.float32), ("float64", np.float64)):
        nbytes = sum(a.nbytes for a in small if a.dtype == dt)
        if nbytes:
            nbytes += np.dtype(dt).itemsize if name == flag else 0
            out[name] = choose(op, size, nbytes, transport, algo, packed=True)
    for i, a in enumerate(mine):
        if a.nbytes >= fb.fusion_threshold:
            out[str(i)] = choose(op, size, a.nbytes, transport, algo)
    return out


out = {"transport": transport}
for algo in ("auto", "mpi", "engine"):
    fb = FlatBuffer(algorithm=algo)
    for op in REFS:
        arrays = steady(fb, comm, mine, op, root=size - 1)
        errors, digests = [], []
        for i, a in enumerate(arrays):
            ref = REFS[op](np.stack([r[i] for r in everyone]))
            assert a.dtype == ref.dtype and a.shape == ref.shape
            errors.append(float(np.max(np.abs(a.astype(np.float64) - ref) / np.abs(ref))))
            digests.append(hashlib.sha1(a.tobytes()).hexdigest())
        out[f"{algo} {op}"] = {"errors": errors, "digests": digests,
                               "paths": {str(k): v for k, v in fb.paths.items()},
                               "predicted": predicted(fb, op, algo)}
with open(f"matrix{rank}.json", "w") as f:
    json.dump(out, f)
