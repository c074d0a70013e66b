"""Rows whose statistics change order and number from one row to the next, under MPI.

Rank r stores ``A = 10 row + r + i`` (i = 0, 1, 2) and ``B = 2 r + row`` in every row, except
that row 4 stores no A (its statistics are NaN). Each row logs the statistics in the order
given by ``LAYOUTS``; a key left out of a row keeps its values for the next row it is logged
in. Rank 0 writes ``out/progress.txt``.
"""

import warnings

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import proc_id

# (key, with_min_and_max) of each row, in log_tabular order
LAYOUTS = [
    [("A", True), ("B", False)],
    [("B", False), ("A", True)],  # same statistics, other order
    [("A", True)],  # B left out: its values wait for the next row
    [("A", True), ("B", False)],  # back to the first row's layout
    [("A", True), ("B", False)],  # A without values this row: NaN
]

rank = proc_id()
logger = EpochLogger(output_dir="out")
for row, layout in enumerate(LAYOUTS):
    if row != 4:
        for i in range(3):
            logger.store(A=float(10 * row + rank + i))
    logger.store(B=float(2 * rank + row))
    logger.log_tabular("Row", row)
    for key, with_min_and_max in layout:
        logger.log_tabular(key, with_min_and_max=with_min_and_max)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.dump_tabular()
    for w in caught:
        print(f"rank {rank} row {row} warning: {w.message}", flush=True)
