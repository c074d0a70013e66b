"""Shared parts of the train_mnist examples: generated data and the command line.

The dataset is digits-like and generated, so the examples need no download.

Ten classes, each a fixed random 8x8 "glyph" plus pixel noise, flattened to 64 features in
[0, 1]: small enough to train in seconds, hard enough that accuracy climbs over epochs.
"""

import argparse

import numpy as np


def make_digits(n=6000, noise=1.2, seed=0):
    """Return ``(x, y)``: ``x`` float32 of shape (n, 64), ``y`` int32 labels in 0..9."""
    rng = np.random.default_rng(12345)          # the same glyphs for every caller
    glyphs = (rng.random((10, 64)) > 0.5).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    x = np.clip(glyphs[y] + noise * rng.standard_normal((n, 64)), 0.0, 1.0).astype(np.float32)
    return x, y


def main(train_mnist, description, exp_name):
    """Parse the examples' command line, fork MPI ranks, then run ``train_mnist``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cpu", type=int, default=1, help="MPI processes")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps_per_epoch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exp_name", default=exp_name)
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()

    from spinfast.mpi_tools import mpi_fork
    from spinfast.run_utils import setup_logger_kwargs

    mpi_fork(args.cpu)
    train_mnist(steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, seed=args.seed,
                logger_kwargs=setup_logger_kwargs(args.exp_name, args.seed, args.data_dir))
