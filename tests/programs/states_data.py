"""What each rank of ``stat_states.py`` pushes for key ``K{i}``; the test merges it by hand."""

import numpy as np

N_KEYS = 70  # more than one round of reduce_stat_states' fixed-size gather


def key_values(rank, i):
    """Rank ``rank``'s samples of key ``i``: counts differ by rank and key; some are empty."""
    rng = np.random.default_rng(1000 * rank + i)
    n = 0 if (rank == 1 and i % 3 == 0) else 1 + (i + rank) % 5
    return rng.normal(i, 1.0 + rank, size=n)
