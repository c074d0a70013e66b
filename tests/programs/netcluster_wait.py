"""A launch to be killed: each rank starts MPI, writes ``ready{rank}`` and sleeps.

tests/test_netcluster.py kills the launch (or the process that made the cluster) with SIGKILL
once every rank is ready, and checks that nothing of the cluster survives.
"""

import time
from pathlib import Path

from spinfast import mpi_tools

comm = mpi_tools.comm_world()
comm.Barrier()
Path(f"ready{mpi_tools.proc_id()}").touch()
time.sleep(300)
