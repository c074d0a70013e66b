"""What each rank of ``collectives.py`` starts from; the test computes its expectations from it.

Every value differs between ranks, so that each reduction (sum, min, max, prod, a bitwise op)
has its own answer and none of them equals any one rank's input: a swapped, constant or
rank-0-only implementation gives a wrong number somewhere.
"""

import numpy as np


def stat_values(rank, counts):
    """The ``(counts[rank], 2)`` float64 samples rank ``rank`` gives to mpi_statistics_scalar."""
    return np.random.default_rng(rank).normal(2.0, 3.0, size=(counts[rank], 2))


def v32(rank):
    """Six float32 values, scaled by the rank."""
    return (np.arange(6, dtype=np.float32) + 0.25) * (rank + 1)


def v64(rank):
    """Six float64 values, scaled by the rank."""
    return np.arange(6, dtype=np.float64) / 3 * (rank + 1)


def mixed(rank, dtype):
    """Values whose sum, min, max and product over ranks all differ, element by element."""
    return np.array([3 + 2 * rank, 7 - 5 * rank, (rank + 2) ** 2, 2 + 3 * rank * rank], dtype)
