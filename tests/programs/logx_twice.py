"""A key logged twice in one row, first row and later row: every rank refuses the second call.

Each refused call prints ``rank R row N ValueError: ...``; the rows are then written as if
the second call had not been made (the first call's statistics, values stored since).
"""

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import proc_id

rank = proc_id()
logger = EpochLogger(output_dir="out")
for row in range(3):
    logger.store(A=float(rank + 10 * row), B=1.0)
    logger.log_tabular("Epoch", row)
    logger.log_tabular("A", with_min_and_max=True)
    for key, val in (("A", None), ("Epoch", row + 5)):
        try:
            logger.log_tabular(key, val)
        except ValueError as exc:
            print(f"rank {rank} row {row} ValueError: {exc}", flush=True)
    logger.store(A=100.0)  # after log_tabular: counts toward the next row only
    logger.log_tabular("B", average_only=True)
    logger.dump_tabular()
