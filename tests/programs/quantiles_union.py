"""Quantiles over ranks: each rank stores its own part of every epoch's values.

Usage: quantiles_union.py EPOCHS. Rank 0 writes ``out/progress.txt``; the test compares its
quantile columns with one process's sketch of the union of the ranks' values.
"""

import sys

from quantiles_data import log_epoch

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import num_procs, proc_id

rank, size = proc_id(), num_procs()
logger = EpochLogger(output_dir="out")
logger.track_quantiles("Ret", "Q")
for epoch in range(int(sys.argv[1])):
    log_epoch(logger, epoch, rank, size)
    logger.dump_tabular()
