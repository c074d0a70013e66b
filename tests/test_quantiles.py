"""Quantiles of stored values: EpochLogger.track_quantiles + log_tabular(quantiles=...)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import read_progress

from spinfast._stats import EpochStats, Welford, sketch_quantiles, sketch_size
from spinfast.logx import EpochLogger

QS = (0.0, 0.001, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999, 1.0)


def within(estimate, values, q, alpha):
    """The estimate is within relative error alpha of a value between numpy's lower and
    higher q-quantiles of values."""
    lo = np.quantile(values, q, method="lower")
    hi = np.quantile(values, q, method="higher")
    bounds = sorted([lo * (1 - alpha), lo * (1 + alpha), hi * (1 - alpha), hi * (1 + alpha)])
    return bounds[0] <= estimate <= bounds[-1]


DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(3.0, 2.0, n),
    "negative lognormal": lambda rng, n: -rng.lognormal(2.0, 1.5, n),
    "cauchy (heavy tails)": lambda rng, n: rng.standard_cauchy(n),
    "pareto": lambda rng, n: rng.pareto(1.5, n) + 1.0,
    "returns with zeros": lambda rng, n: np.where(rng.random(n) < 0.3, 0.0,
                                                   rng.normal(-50.0, 80.0, n)),
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("alpha", [0.01, 0.001])
def test_quantiles_within_relative_error_of_numpy(tmp_path, name, alpha):
    rng = np.random.default_rng(sum(map(ord, name)))
    values = DISTRIBUTIONS[name](rng, 1_000_000)
    values = values[np.abs(values) < 2.0 ** 32]  # the sketch's documented range
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.track_quantiles("R", relative_accuracy=alpha)
    logger.store(R=values[:1000].astype(np.float32))  # arrays of any dtype...
    for v in values[1000:1100]:
        logger.store(R=float(v))  # ...and scalars count alike
    logger.store(R=values[1100:])
    union = np.concatenate([values[:1000].astype(np.float32).astype(np.float64),
                            values[1000:]])
    logger.log_tabular("R", quantiles=QS)
    row = logger.log_current_row
    assert row["AverageR"] == pytest.approx(union.mean(), rel=1e-9, abs=1e-9)
    for q in QS:
        est = row["P%gR" % (100 * q)]
        assert within(est, union, q, alpha), (q, est)


def test_columns_order_names_and_errors(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.track_quantiles("Ret")
    logger.store(Ret=np.arange(1.0, 101.0), Other=1.0)
    logger.log_tabular("Ret", with_min_and_max=True, quantiles=(0.05, 0.5, 0.999))
    assert list(logger.log_current_row) == ["AverageRet", "StdRet", "MaxRet", "MinRet",
                                            "P5Ret", "P50Ret", "P99.9Ret"]
    # floor((n - 1) q) ranks: 4, 49, 98 -> values 5, 50, 99 within 1%
    assert logger.log_current_row["P50Ret"] == pytest.approx(50.0, rel=0.01)
    assert logger.log_current_row["P5Ret"] == pytest.approx(5.0, rel=0.01)
    with pytest.raises(ValueError, match=r"quantiles of 'Other' are not tracked; call "
                                         r"logger.track_quantiles\('Other'\)"):
        logger.log_tabular("Other", quantiles=(0.5,))
    with pytest.raises(ValueError, match=r"quantiles must be in \[0, 1\], got 50.0"):
        logger.log_tabular("Ret", quantiles=(50,))
    assert "Other" not in str(list(logger.log_current_row))  # refused calls changed nothing
    logger.log_tabular("Other", average_only=True)
    logger.dump_tabular()
    header = read_progress(tmp_path).header
    assert header[4:7] == ["P5Ret", "P50Ret", "P99.9Ret"]


def test_sketch_resets_with_the_key_and_empty_epoch_is_nan(tmp_path):
    t = EpochStats()
    t.track_sketch("X")
    t.store(X=[1000.0, 2000.0])
    t.take_state("X")  # log_tabular without quantiles: the epoch's values are taken all the same
    assert t.take_sketch("X").sum() == 0
    logger = EpochLogger(output_dir=str(tmp_path))
    logger.track_quantiles("X")
    logger.store(X=[1.0, 2.0, 3.0])
    logger.log_tabular("X", quantiles=(1.0,))
    assert logger.log_current_row["P100X"] == pytest.approx(3.0, rel=0.01)
    logger.dump_tabular()
    with pytest.warns(RuntimeWarning, match="no values stored for 'X'"):
        logger.log_tabular("X", quantiles=(1.0,))
    assert math.isnan(logger.log_current_row["P100X"])


def test_nan_makes_quantiles_nan_and_merge_adds_counts():
    a, b = Welford(), Welford()
    a.track_quantiles(0.01)
    b.track_quantiles(0.01)
    a.push(np.arange(10.0))
    b.push(np.arange(10.0, 20.0))
    a.merge(b)
    union = Welford()
    union.track_quantiles(0.01)
    union.push(np.arange(20.0))
    np.testing.assert_array_equal(a.quantile_counts, union.quantile_counts)
    assert sketch_quantiles(a.quantile_counts, 0.01, [0.5]) == pytest.approx([9.0], rel=0.01)
    a.push(float("nan"))
    assert math.isnan(sketch_quantiles(a.quantile_counts, 0.01, [0.5])[0])
    with pytest.raises(ValueError, match="relative_accuracy must be in"):
        sketch_size(0.9)
    with pytest.raises(ValueError, match="do not make a sketch"):
        sketch_quantiles(np.zeros(10), 0.01, [0.5])


def test_tracked_store_takes_every_kind_of_value():
    t = EpochStats()
    t.track_sketch("K")
    t.store(K=1)
    t.store(K=np.int16(-3))
    t.store(K=np.array([[2, 5]], dtype=np.uint8))
    t.store(K=[4.0, -1.5])
    counts = t.take_sketch("K")
    assert counts.sum() == 6
    q = sketch_quantiles(counts, 0.01, [0.0, 1.0])
    assert q == pytest.approx([-3.0, 5.0], rel=0.01)
    assert t.take_sketch("K").sum() == 0  # taken: cleared
    assert t.take_sketch("never") is None


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, 3])
def test_quantiles_over_ranks_equal_one_process_on_the_union(run_mpi, tmp_path, size):
    from conftest import load_mpi_module

    data = load_mpi_module("quantiles_data")
    run_mpi("quantiles_union", n=size, args=(2,), timeout=120)
    progress = read_progress(tmp_path / "out")
    header = progress.header
    assert header == ["Epoch", "AverageRet", "StdRet", "MaxRet", "MinRet", "P5Ret", "P50Ret",
                      "P95Ret", "P99.9Ret", "Q", "P5Q", "P50Q", "P95Q", "P99.9Q"]
    for epoch, row in enumerate(progress.rows):
        got = dict(zip(header, row))
        one = EpochLogger(output_dir=str(tmp_path / f"one{epoch}"))
        one.track_quantiles("Ret", "Q")
        for rank in range(size):
            ret, q = data.rank_values(epoch, rank, size)
            one.store(Ret=np.array(ret), Q=q)
        one.log_tabular("Ret", with_min_and_max=True, quantiles=data.QUANTILES)
        one.log_tabular("Q", average_only=True, quantiles=data.QUANTILES)
        for name, value in one.log_current_row.items():
            if name.startswith("P"):
                assert got[name] == value, name  # the sketch of the union: the same bits
            else:
                assert got[name] == pytest.approx(value, rel=1e-12), name


@pytest.mark.mpi
def test_one_collective_per_dump_with_quantiles(run_mpi, tmp_path):
    # the states of every key and the sketches' counts travel in one Allgather, first dump
    # included (the program records the calls on the real world communicator)
    run_mpi("quantiles_collectives", n=2, args=(3,), timeout=120)
    calls = json.loads((tmp_path / "calls.json").read_text())
    assert calls == [["Allgather"]] * 3
    assert len((tmp_path / "out" / "progress.txt").read_text().splitlines()) == 4


def test_quantiles_given_as_a_list_work_like_a_tuple(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path), formats="txt")
    logger.track_quantiles("X")
    values = np.arange(1.0, 101.0)
    for quantiles in ([0.5, 0.9], (0.5, 0.9)):
        logger.store(X=values)
        logger.log_tabular("X", average_only=True, quantiles=quantiles)
        row = dict(logger.log_current_row)
        logger.dump_tabular()
        assert row["P50X"] == pytest.approx(np.quantile(values, 0.5), rel=0.02)
        assert row["P90X"] == pytest.approx(np.quantile(values, 0.9), rel=0.02)
