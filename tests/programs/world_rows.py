"""Three epochs of rows from every rank: ``world_rows.py OUTPUT_DIR``.

Each row holds the epoch, the number of ranks and the ranks' mean rank (``mpi_avg``). Launched
right, rank 0 writes 3 rows of ``Ranks`` N; launched wrong (each rank a world of one), every
process would be a rank 0 writing its own 3 rows into one folder, unless the world check stops
it first.
"""

import sys

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import mpi_avg, num_procs, proc_id

logger = EpochLogger(output_dir=sys.argv[1])
for epoch in range(3):
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("Ranks", num_procs())
    logger.log_tabular("MeanRank", mpi_avg(proc_id()))
    logger.dump_tabular()
