"""EpochLogger across real MPI ranks: statistics of the union of all ranks' values."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.mpi

PROGRAM = """
import sys
import numpy as np
from spinfast.logx import EpochLogger
from spinfast.mpi_tools import proc_id, num_procs

rank, size = proc_id(), num_procs()
logger = EpochLogger(output_dir="out", exp_name="mpi")
for epoch in range(2):
    rng = np.random.default_rng(100 * epoch + rank)
    # Different counts per rank; the last rank stores nothing for 'Sparse'.
    for t in range(5 + 7 * rank):
        logger.store(Ret=rng.normal(3.0, 2.0), Q=rng.normal(size=(2, 3)).astype(np.float32))
        if rank != size - 1:
            logger.store(Sparse=float(t + rank))
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("Ret", with_min_and_max=True)
    logger.log_tabular("Q", average_only=True)
    logger.log_tabular("Sparse", with_min_and_max=True)
    mean, std = logger.get_stats("Ret")  # after log_tabular: the key was reset
    print(f"rank {rank} reset-stats {mean} {std}", flush=True)
    logger.dump_tabular()
"""


def expected_rows(size):
    rows = []
    for epoch in range(2):
        ret, q, sparse = [], [], []
        for rank in range(size):
            rng = np.random.default_rng(100 * epoch + rank)
            for t in range(5 + 7 * rank):
                ret.append(rng.normal(3.0, 2.0))
                q.append(rng.normal(size=(2, 3)).astype(np.float32))
                if rank != size - 1:
                    sparse.append(float(t + rank))
        ret, q, sparse = np.array(ret), np.concatenate(q).astype(np.float64), np.array(sparse)
        rows.append([epoch, ret.mean(), ret.std(), ret.max(), ret.min(), q.mean(),
                     sparse.mean(), sparse.std(), sparse.max(), sparse.min()])
    return rows


@pytest.mark.parametrize("size", [2, 3])
def test_epoch_logger_union_statistics(run_mpi, tmp_path, size):
    proc = run_mpi(PROGRAM, n=size, timeout=120)
    lines = (tmp_path / "out" / "progress.txt").read_text().splitlines()
    assert lines[0].split("\t") == ["Epoch", "AverageRet", "StdRet", "MaxRet", "MinRet", "Q",
                                    "AverageSparse", "StdSparse", "MaxSparse", "MinSparse"]
    assert len(lines) == 3  # one header, one row per epoch: written once, by rank 0
    for line, expected in zip(lines[1:], expected_rows(size)):
        got = [float(v) for v in line.split("\t")]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Only rank 0 prints the table; every rank saw the key reset after log_tabular.
    assert proc.stdout.count("|      AverageRet |") == 2
    for rank in range(size):
        assert proc.stdout.count(f"rank {rank} reset-stats nan nan") == 2


def test_keys_differing_between_ranks_raise_everywhere(run_mpi, tmp_path):
    code = """
    from spinfast.logx import EpochLogger
    from spinfast.mpi_tools import proc_id
    logger = EpochLogger(output_dir="out")
    logger.store(A=1.0, B=2.0)
    logger.log_tabular("A")
    if proc_id() == 0:
        logger.log_tabular("B")
    try:
        logger.dump_tabular()
    except ValueError as exc:
        print(f"rank {proc_id()} ValueError: {exc}", flush=True)
    # The run goes on: the failed row's statistics are dropped, the next row is written.
    logger.store(A=5.0)
    logger.log_tabular("A")
    logger.dump_tabular()
    """
    proc = run_mpi(code, n=2, timeout=60)
    assert "rank 0 ValueError" in proc.stdout and "rank 1 ValueError" in proc.stdout
    assert "'B'" in proc.stdout
    lines = (tmp_path / "out" / "progress.txt").read_text().splitlines()
    assert lines == ["AverageA\tStdA\tAverageB\tStdB", "5.0\t0.0\t\t"]


def test_key_never_stored_anywhere_raises_keyerror_everywhere(run_mpi):
    code = """
    from spinfast.logx import EpochLogger
    from spinfast.mpi_tools import proc_id
    logger = EpochLogger(output_dir="out")
    logger.store(A=float(proc_id()))
    logger.log_tabular("A")
    logger.log_tabular("Typo")
    try:
        logger.dump_tabular()
    except KeyError as exc:
        print(f"rank {proc_id()} KeyError: {exc}", flush=True)
    """
    proc = run_mpi(code, n=2, timeout=60)
    for rank in (0, 1):
        assert f"rank {rank} KeyError: \"EpochLogger: key 'Typo' was never stored" in proc.stdout
