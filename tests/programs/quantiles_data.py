"""The values each rank stores in quantiles_union.py and quantiles_collectives.py (shared with
the tests' expectations), and the row they log."""

import numpy as np

QUANTILES = (0.05, 0.5, 0.95, 0.999)


def rank_values(epoch, rank, size):
    """(scalars of Ret, a float32 array of Q) of one rank in one epoch: counts differ by rank,
    Ret is heavy-tailed and mostly negative, Q holds zeros; the last rank stores no Ret."""
    rng = np.random.default_rng(1000 * epoch + rank)
    n = 0 if rank == size - 1 else 200 + 50 * rank
    ret = (-np.abs(rng.standard_cauchy(n)) * 10.0).tolist()
    q = np.where(rng.random(3000) < 0.2, 0.0, rng.normal(5.0, 3.0, 3000)).astype(np.float32)
    return ret, q


def log_epoch(logger, epoch, rank, size):
    """Store this rank's values of ``epoch`` and log the row's columns (not dumped yet)."""
    ret, q = rank_values(epoch, rank, size)
    for v in ret:
        logger.store(Ret=v)
    logger.store(Q=q)
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("Ret", with_min_and_max=True, quantiles=QUANTILES)
    logger.log_tabular("Q", average_only=True, quantiles=QUANTILES)
