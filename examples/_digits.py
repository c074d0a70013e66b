"""A generated digits-like dataset, so the examples need no download.

Ten classes, each a fixed random 8x8 "glyph" plus pixel noise, flattened to 64 features in
[0, 1]: small enough to train in seconds, hard enough that accuracy climbs over epochs.
"""

import numpy as np


def make_digits(n=6000, noise=1.2, seed=0):
    """Return ``(x, y)``: ``x`` float32 of shape (n, 64), ``y`` int32 labels in 0..9."""
    rng = np.random.default_rng(12345)          # the same glyphs for every caller
    glyphs = (rng.random((10, 64)) > 0.5).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    x = np.clip(glyphs[y] + noise * rng.standard_normal((n, 64)), 0.0, 1.0).astype(np.float32)
    return x, y
