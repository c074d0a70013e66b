"""Every rank logs a key nobody stored: dump_tabular raises KeyError on every rank."""

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import proc_id

logger = EpochLogger(output_dir="out")
logger.store(A=float(proc_id()))
logger.log_tabular("A")
logger.log_tabular("Typo")
try:
    logger.dump_tabular()
except KeyError as exc:
    print(f"rank {proc_id()} KeyError: {exc}", flush=True)
