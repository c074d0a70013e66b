"""Rank 1 raises after MPI is up while the other ranks wait in a collective for it."""

import numpy as np

from spinfast import mpi_tools as mt

rank = mt.proc_id()
mt.mpi_avg(np.ones(3))  # MPI is up on every rank
if rank == 1:
    raise ZeroDivisionError("rank 1 failed on purpose")
mt.mpi_avg(np.ones(3))  # the others wait here for rank 1
