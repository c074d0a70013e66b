"""The data and initial weights of the TensorFlow programs; the test trains them in one process."""

import numpy as np


def data(rank):
    """Rank ``rank``'s batch ``(X, Y)``: 16 samples, float32."""
    rng = np.random.default_rng(rank)
    return (rng.normal(size=(16, 3)).astype(np.float32),
            rng.normal(size=(16, 1)).astype(np.float32))


def init(seed):
    """Initial weights ``(W0 (3, 8), W1 (8, 1))``; the programs seed them by rank."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32)
