"""EpochLogger across real MPI ranks: statistics of the union of all ranks' values."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_mpi_module
from helpers import read_progress

pytestmark = pytest.mark.mpi

# Programs: tests/programs/logx_union.py (data in logx_union_data.py), logx_keys_differ.py,
# logx_never_stored.py, logx_twice.py.

DATA = load_mpi_module("logx_union_data")


def expected_rows(size):
    rows = []
    for epoch in range(DATA.EPOCHS):
        ret, q, sparse = [], [], []
        for rank in range(size):
            r, qq, sp = DATA.epoch_values(epoch, rank, size)
            ret += r
            q += qq
            sparse += sp
        ret, q, sparse = np.array(ret), np.concatenate(q).astype(np.float64), np.array(sparse)
        rows.append([epoch, ret.mean(), ret.std(), ret.max(), ret.min(), q.mean(),
                     sparse.mean(), sparse.std(), sparse.max(), sparse.min()])
    return rows


@pytest.mark.parametrize("size", [2, 3])
def test_epoch_logger_union_statistics(run_mpi, tmp_path, size):
    proc = run_mpi("logx_union", n=size, timeout=120)
    progress = read_progress(tmp_path / "out")
    assert progress.header == ["Epoch", "AverageRet", "StdRet", "MaxRet", "MinRet", "Q",
                               "AverageSparse", "StdSparse", "MaxSparse", "MinSparse"]
    assert len(progress.cells) == 2  # one row per epoch: written once, by rank 0
    for got, expected in zip(progress.rows, expected_rows(size)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Only rank 0 prints the table; every rank saw the key reset after log_tabular.
    assert proc.stdout.count("|      AverageRet |") == 2
    for rank in range(size):
        assert proc.stdout.count(f"rank {rank} reset-stats nan nan") == 2


def test_keys_differing_between_ranks_raise_everywhere(run_mpi, tmp_path):
    proc = run_mpi("logx_keys_differ", n=2, timeout=60)
    assert "rank 0 ValueError" in proc.stdout and "rank 1 ValueError" in proc.stdout
    assert "'B'" in proc.stdout
    assert read_progress(tmp_path / "out").table == [["AverageA", "StdA", "AverageB", "StdB"],
                                                     ["5.0", "0.0", "", ""]]


def test_key_never_stored_anywhere_raises_keyerror_everywhere(run_mpi):
    proc = run_mpi("logx_never_stored", n=2, timeout=60)
    for rank in (0, 1):
        assert f"rank {rank} KeyError: \"EpochLogger: key 'Typo' was never stored" in proc.stdout


def test_key_logged_twice_in_a_row_refused_everywhere(run_mpi, tmp_path):
    """The second call for a column is refused on every rank (first row and later rows), and
    each row holds only the values stored since the key's previous log_tabular."""
    proc = run_mpi("logx_twice", n=2, timeout=60)
    for rank in (0, 1):
        for row in (0, 1, 2):
            for key in ("AverageA", "Epoch"):
                assert (f"rank {rank} row {row} ValueError: You already set {key} this "
                        f"iteration") in proc.stdout, proc.stdout
    progress = read_progress(tmp_path / "out")
    assert progress.header == ["Epoch", "AverageA", "StdA", "MaxA", "MinA", "B"]
    assert len(progress.cells) == 3
    # Row 0: A is 0 and 1 (ranks 0 and 1); row r > 0: 100 stored after the previous row's
    # log_tabular (both ranks), then 10 r and 10 r + 1.
    for row, got in enumerate(progress.rows):
        a = np.array([0.0, 1.0] if row == 0 else [100.0, 100.0, 10.0 * row, 10.0 * row + 1])
        np.testing.assert_allclose(got, [row, a.mean(), a.std(), a.max(), a.min(), 1.0],
                                   rtol=1e-12)


def test_rows_with_statistics_in_another_order_or_left_out(run_mpi, tmp_path):
    """Each row's merged values land in their own columns whatever the order and number of
    the statistics logged (the layout of a row is cached from the previous one)."""
    proc = run_mpi("logx_layouts", n=2, timeout=60)
    progress = read_progress(tmp_path / "out")
    assert progress.header == ["Row", "AverageA", "StdA", "MaxA", "MinA", "AverageB", "StdB"]
    assert len(progress.cells) == 5

    def stats(values, with_min_and_max):
        v = np.array(values, dtype=np.float64)
        out = [v.mean(), v.std()]
        return out + [v.max(), v.min()] if with_min_and_max else out

    def a(row):  # A of both ranks in that row
        return [10.0 * row + rank + i for rank in (0, 1) for i in range(3)]

    def b(*rows):  # B of both ranks, stored in those rows
        return [2.0 * rank + row for rank in (0, 1) for row in rows]

    expected = [
        [0, *stats(a(0), True), *stats(b(0), False)],
        [1, *stats(a(1), True), *stats(b(1), False)],
        [2, *stats(a(2), True), None, None],
        [3, *stats(a(3), True), *stats(b(2, 3), False)],
        [4, *[np.nan] * 4, *stats(b(4), False)],
    ]
    for cells, want in zip(progress.cells, expected):
        got = [float(v) if v else None for v in cells]
        assert [g is None for g in got] == [w is None for w in want], cells
        np.testing.assert_allclose([g for g in got if g is not None],
                                   [w for w in want if w is not None], rtol=1e-12)
    # Only rank 0 warns, once, about A in row 4.
    assert proc.stdout.count("warning: log_tabular(): no values stored for 'A'") == 1
    assert "rank 0 row 4 warning" in proc.stdout
