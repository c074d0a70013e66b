"""One process without a launch: importing mpi_tools and asking it questions starts no MPI.

Prints, one per line: the heavy modules imported by the import (none), rank / size / world
communicator, an average and statistics, and whether mpi4py got imported after all.
"""

import sys

import spinfast.mpi_tools as mt

print(sorted(m for m in ("mpi4py", "numpy") if m in sys.modules))
print(mt.proc_id(), mt.num_procs(), mt.comm_world())
print(float(mt.mpi_avg(2.5)), mt.mpi_statistics_scalar([1.0, 3.0]))
print("mpi4py" in sys.modules)
