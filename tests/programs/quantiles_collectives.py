"""The MPI calls each dump_tabular makes, with quantile columns in the row.

Usage: quantiles_collectives.py EPOCHS. The world communicator is wrapped in a proxy that
forwards every call to the real one and records the name of each method called; rank 0
writes ``calls.json``: one list of method names per epoch's ``dump_tabular``.
"""

import json
import sys

from quantiles_data import log_epoch
from recording import Recording

from spinfast import mpi_tools
from spinfast.logx import EpochLogger

comm, rank, size = mpi_tools._resolve()
recording = Recording(comm)
mpi_tools._world = (recording, rank, size)
logger = EpochLogger(output_dir="out")
logger.track_quantiles("Ret", "Q")
per_dump = []
for epoch in range(int(sys.argv[1])):
    log_epoch(logger, epoch, rank, size)
    recording.calls.clear()
    logger.dump_tabular()
    per_dump.append(list(recording.calls))
if rank == 0:
    with open("calls.json", "w") as f:
        json.dump(per_dump, f)
