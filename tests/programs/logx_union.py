"""EpochLogger on every rank for two epochs; rank 0 writes ``out/progress.txt``.

Every rank prints ``rank R reset-stats MEAN STD``: get_stats of a key after its log_tabular.
"""

from logx_union_data import EPOCHS, epoch_values

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import num_procs, proc_id

rank, size = proc_id(), num_procs()
logger = EpochLogger(output_dir="out", exp_name="mpi")
for epoch in range(EPOCHS):
    ret, q, sparse = epoch_values(epoch, rank, size)
    for t in range(len(ret)):  # interleaved, as training code stores them
        logger.store(Ret=ret[t], Q=q[t])
        if t < len(sparse):
            logger.store(Sparse=sparse[t])
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("Ret", with_min_and_max=True)
    logger.log_tabular("Q", average_only=True)
    logger.log_tabular("Sparse", with_min_and_max=True)
    mean, std = logger.get_stats("Ret")  # after log_tabular: the key was reset
    print(f"rank {rank} reset-stats {mean} {std}", flush=True)
    logger.dump_tabular()
