"""Rank 0 logs a key the others do not: dump_tabular raises on every rank, then recovers.

Each rank prints the ValueError it got; a second row is written after the failed one.
"""

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import proc_id

logger = EpochLogger(output_dir="out")
logger.store(A=1.0, B=2.0)
logger.log_tabular("A")
if proc_id() == 0:
    logger.log_tabular("B")
try:
    logger.dump_tabular()
except ValueError as exc:
    print(f"rank {proc_id()} ValueError: {exc}", flush=True)
# The run goes on: the failed row's statistics are dropped, the next row is written.
logger.store(A=5.0)
logger.log_tabular("A")
logger.dump_tabular()
