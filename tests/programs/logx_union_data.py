"""What each rank of ``logx_union.py`` stores in each epoch; the test merges it by hand."""

import numpy as np

EPOCHS = 2


def epoch_values(epoch, rank, size):
    """Rank ``rank``'s ``(Ret, Q, Sparse)`` samples in ``epoch``: lists of floats/arrays.

    Counts differ between ranks (5 + 7 rank steps); the last rank stores no ``Sparse``.
    """
    rng = np.random.default_rng(100 * epoch + rank)
    ret, q, sparse = [], [], []
    for t in range(5 + 7 * rank):
        ret.append(rng.normal(3.0, 2.0))
        q.append(rng.normal(size=(2, 3)).astype(np.float32))
        if rank != size - 1:
            sparse.append(float(t + rank))
    return ret, q, sparse
