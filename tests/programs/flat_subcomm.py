"""The ring on sub-communicators made, freed and made again; writes ``sub{rank}.txt``."""

import numpy as np
from mpi4py import MPI

from spinfast._flat import FlatBuffer

world = MPI.COMM_WORLD
rank = world.Get_rank()
fb = FlatBuffer(algorithm="engine")
n = 1 << 16  # float32: 256 KiB, a ring on every sub-communicator (algorithm="engine")
out = open(f"sub{rank}.txt", "w")
for color in (rank % 2, int(rank < 2), rank % 2):   # freed communicators' handles get reused
    comm = world.Split(color, rank)
    mine = np.random.default_rng(rank).standard_normal(n).astype(np.float32)
    arrays = [mine.copy()]
    fb.allreduce(comm, arrays, op="sum")
    expected = np.sum(comm.allgather(mine), axis=0)
    print(f"color {color} ok {bool(np.allclose(arrays[0], expected, atol=1e-5))}", file=out)
    comm.Free()
out.close()
