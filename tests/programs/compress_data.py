"""Gradients of the compressed-averaging tests: each rank's, and the shapes of the model."""

import numpy as np

SHAPES = [(16, 4), (16,), (1, 16), (1,), (3000,), (0,), (257, 3)]


def grads(rank, shapes=SHAPES, seed=0):
    """Rank ``rank``'s float32 gradients: magnitudes from 1e-4 to 1e4, some exact zeros."""
    rng = np.random.default_rng(1000 * seed + rank)
    out = []
    for shape in shapes:
        g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 4, shape)
        g[rng.random(shape) < 0.05] = 0.0
        out.append(g.astype(np.float32))
    return out


def bound(kind):
    """Relative rounding bound of one 16-bit rounding: half an ulp."""
    return 2.0 ** -8 if kind == "bf16" else 2.0 ** -11
