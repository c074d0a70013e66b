"""Quantiles over ranks: each rank stores its own part of every epoch's values.

Usage: quantiles_union.py EPOCHS. Rank 0 writes ``out/progress.txt``; the test compares its
quantile columns with one process's sketch of the union of the ranks' values.
"""

import sys

from quantiles_data import QUANTILES, rank_values

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import num_procs, proc_id

rank, size = proc_id(), num_procs()
logger = EpochLogger(output_dir="out")
logger.track_quantiles("Ret", "Q")
for epoch in range(int(sys.argv[1])):
    ret, q = rank_values(epoch, rank, size)
    for v in ret:
        logger.store(Ret=v)
    logger.store(Q=q)
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("Ret", with_min_and_max=True, quantiles=QUANTILES)
    logger.log_tabular("Q", average_only=True, quantiles=QUANTILES)
    logger.dump_tabular()
