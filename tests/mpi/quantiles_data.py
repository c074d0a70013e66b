"""The values each rank stores in quantiles_union.py (shared with the test's expectation)."""

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
