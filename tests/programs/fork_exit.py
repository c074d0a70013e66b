"""``mpi_fork(N)`` then exit with a code: ``fork_exit.py N CODE [more args...]``.

Each process writes ``fork{rank}.txt`` holding its rank, the number of ranks and its arguments,
so the test sees how many processes ran and with which command line, and ``env{rank}.txt``
with the variables mpi_fork sets.
"""

import os
import sys

from spinfast.mpi_tools import mpi_fork, num_procs, proc_id

mpi_fork(int(sys.argv[1]))
with open(f"fork{proc_id()}.txt", "w") as f:
    f.write(f"{proc_id()} {num_procs()} {' '.join(sys.argv[1:])}")
with open(f"env{proc_id()}.txt", "w") as f:
    f.write(" ".join(f"{k}={os.environ.get(k)}" for k in (
        "IN_MPI", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "THP_MEM_ALLOC_ENABLE")))
sys.exit(int(sys.argv[2]))
