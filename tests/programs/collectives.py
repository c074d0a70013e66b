"""mpi_tools' collectives on data that differ between ranks: ``collectives.py C0,C1,...``.

``C{r}`` is how many samples rank ``r`` gives to mpi_statistics_scalar (0 allowed). Each rank
writes what every call returned to ``out{rank}.json`` (dtype name and values as a flat list).
"""

import json
import sys

import numpy as np
from collective_data import mixed, stat_values, v32, v64

from spinfast import mpi_tools as mt

lazy = "mpi4py" not in sys.modules  # nothing imported before the first call

counts = [int(c) for c in sys.argv[1].split(",")]
rank, size = mt.proc_id(), mt.num_procs()
MPI = __import__("mpi4py.MPI").MPI
x = stat_values(rank, counts)
out = {"lazy": lazy, "rank": rank, "size": size}
out["stats"] = [float(v) for v in mt.mpi_statistics_scalar(x, with_min_and_max=True)]
out["stats2"] = [float(v) for v in mt.mpi_statistics_scalar(x.ravel().tolist())]
results = [("avg32", mt.mpi_avg(v32(rank))), ("avg64", mt.mpi_avg(v64(rank))),
           ("sum32", mt.mpi_sum(v32(rank))), ("avgscalar", mt.mpi_avg(float(rank))),
           ("avgint", mt.mpi_avg(rank)), ("sumint", mt.mpi_sum(np.int64(10**rank))),
           ("min", mt.mpi_op(v64(rank), "min")),
           ("max", mt.mpi_op(v64(rank) * (-1) ** rank, "max")),
           ("mpimin", mt.mpi_op(v64(rank), MPI.MIN)),
           ("avg16", mt.mpi_avg(np.float16(rank + 1)))]
# Every op by name and as an mpi4py op, through the engine (float) and through MPI (int).
for dtype in ("float64", "float32", "int64", "int32", "float16"):
    for op in ("sum", "min", "max", "prod"):
        results.append((f"{op} {dtype}", mt.mpi_op(mixed(rank, dtype), op)))
        results.append((f"MPI.{op.upper()} {dtype}",
                        mt.mpi_op(mixed(rank, dtype), getattr(MPI, op.upper()))))
results.append(("MPI.BAND int64", mt.mpi_op(mixed(rank, "int64"), MPI.BAND)))
results.append(("scalar max", mt.mpi_op(float(mixed(rank, "float64")[1]), "max")))
for name, value in results:
    out[name] = [str(np.asarray(value).dtype), np.asarray(value, np.float64).ravel().tolist()]
b = np.full((2, 3), float(rank))
mt.broadcast(b, root=size - 1)
bi = np.full(4, rank, np.int32)
mt.broadcast(bi, root=size - 1)
strided = np.full(8, float(rank))[::2]
mt.broadcast(strided, root=size - 1)
pair = [np.full(3, float(rank), np.float32), np.full(2, float(rank))]
mt.broadcast(pair, root=size - 1)
out["bcast"] = [b.ravel().tolist(), bi.tolist(), strided.tolist(), pair[0].tolist(),
                pair[1].tolist()]
grads = [np.full(5, float(rank), np.float32), np.full((2, 2), float(rank))]
mt.allreduce_arrays(grads)
out["arrays"] = [grads[0].tolist(), grads[1].ravel().tolist()]
send = mixed(rank, "float64")
recv = np.zeros(4)
mt.allreduce(send, recv, op=MPI.SUM)
out["allreduce"] = recv.tolist()
try:
    mt.mpi_avg(np.ones(3 + rank))
except ValueError as exc:
    out["shape_error"] = str(exc)
with open(f"out{rank}.json", "w") as f:
    json.dump(out, f)
