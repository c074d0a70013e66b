"""Merge quantile sketches of all ranks with one Allreduce (run under mpiexec by a test).

Usage: ``mpiexec -n N python sketch_union.py OUT_DIR``. Rank r pushes ``values(r)`` and
``scalars(r)`` into an accumulator tracking quantiles; the sketch counts of all ranks are
summed with ``MPI_SUM``; each rank writes the quantiles of the summed counts and the number of
values they hold to ``OUT_DIR/sketch<rank>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from spinfast._stats import Welford, sketch_quantiles

QS = [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0]


def values(rank: int) -> np.ndarray:
    """Rank ``rank``'s values: a different size and distribution on each rank."""
    rng = np.random.default_rng(100 + rank)
    n = 20000 + 7919 * rank
    parts = [rng.standard_cauchy(n), -rng.lognormal(2.0, 1.5, n // 2), np.zeros(rank * 10)]
    return np.concatenate(parts).astype(np.float64 if rank % 2 else np.float32)


def scalars(rank: int) -> list[float]:
    """Values pushed one at a time (as ``store`` of a scalar would)."""
    rng = np.random.default_rng(200 + rank)
    return rng.normal(rank, 10.0, 500).tolist()


def main(out_dir: str) -> None:
    """Push this rank's values, merge all ranks' sketches, write the quantiles."""
    from mpi4py import MPI  # here, so that the test can import values() without MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    acc = Welford()
    acc.track_quantiles(0.01)
    acc.push(values(rank))
    for v in scalars(rank):
        acc.push(v)
    counts = acc.quantile_counts
    comm.Allreduce(MPI.IN_PLACE, counts, op=MPI.SUM)
    result = {"quantiles": sketch_quantiles(counts, 0.01, QS), "count": float(counts.sum())}
    Path(out_dir, f"sketch{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
