"""QuantileSketch (csrc/ddsketch.h) against numpy.quantile, merges, MPI, edge cases."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import load_mpi_module, rank_files

from spinfast._sketch import QuantileSketch

QS = [0.0, 0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999,
      1.0]


def within(est: float, lower: float, higher: float, alpha: float) -> bool:
    """Whether est is within relative error alpha of some value in [lower, higher]."""
    return lower - alpha * abs(lower) <= est <= higher + alpha * abs(higher)


def distributions(n: int):
    rng = np.random.default_rng(42)
    yield "normal", rng.normal(0.0, 1.0, n)
    yield "negative returns", rng.normal(-200.0, 50.0, n)
    yield "lognormal", rng.lognormal(0.0, 2.0, n)
    yield "negative lognormal", -rng.lognormal(3.0, 1.0, n)
    yield "cauchy", rng.standard_cauchy(n)
    yield "pareto", rng.pareto(1.2, n) + 1.0
    yield "exponential with zeros", np.where(rng.random(n) < 0.3, 0.0, rng.exponential(1e-3, n))
    yield "integers", rng.integers(-1000, 1000, n).astype(np.float64)
    yield "uniform tiny", rng.uniform(1e-8, 1e-6, n)


@pytest.mark.parametrize("alpha", [0.01, 0.001])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_quantiles_against_numpy(alpha, dtype):
    for name, values in distributions(1_000_000):
        x = values.astype(dtype)
        sketch = QuantileSketch(alpha)
        sketch.push(x)
        assert sketch.count == x.size
        est = sketch.quantile(QS)
        lower = np.quantile(x, QS, method="lower")
        higher = np.quantile(x, QS, method="higher")
        for q, e, lo, hi in zip(QS, est, lower, higher):
            assert within(e, float(lo), float(hi), alpha), (name, q, e, lo, hi)


def test_single_values_within_alpha_over_the_whole_range():
    rng = np.random.default_rng(7)
    mags = np.exp2(rng.uniform(-32, 32, 20000))
    edges = np.exp2(np.arange(-32, 32, dtype=np.float64))
    mags = np.concatenate([mags, edges, np.nextafter(edges, 0)[1:], np.nextafter(edges, 1e300)])
    worst = {}
    for alpha in [1e-4, 0.001, 0.01, 0.05, 0.2, 0.5]:
        sketch = QuantileSketch(alpha)
        m = 200 if alpha < 1e-3 else 3000  # clearing 480k slots per value is slow
        for x in np.concatenate([mags[:m], -mags[-m:]]):
            sketch.clear()
            sketch.push(float(x))
            est = sketch.quantile(0.5)
            assert abs(est - x) <= alpha * abs(x), (alpha, x, est)
            worst[alpha] = max(worst.get(alpha, 0.0), abs(est - x) / abs(x))
    # the bound is nearly reached: buckets are as wide as the accuracy allows, no wider
    assert all(w > 0.9 * alpha for alpha, w in worst.items() if alpha >= 1e-3), worst


def test_counts_layout_and_memory():
    s = QuantileSketch(0.01)
    assert s.counts.dtype == np.float64 and s.counts.flags.c_contiguous
    nb = math.ceil(64 * 0.75 / math.log((1 + 0.01) / (1 - 0.01)))
    assert len(s.counts) == 2 * nb + 4 == 4804
    s.push(np.array([math.nan, -math.inf, -5.0, 0.0, 1e-300, 5.0, math.inf]))
    c = s.counts
    assert c[0] == 1 and c[1] == 1 and c[-1] == 1 and c[nb + 2] == 2  # NaN, -inf, +inf, zero
    assert c[2:nb + 2].sum() == 1 and c[nb + 3:2 * nb + 3].sum() == 1
    assert len(QuantileSketch(0.001).counts) > 9 * len(s.counts)


def test_scalar_and_array_pushes_count_alike():
    rng = np.random.default_rng(3)
    x = rng.standard_cauchy(20000)
    a, b, c = QuantileSketch(), QuantileSketch(), QuantileSketch()
    a.push(x)
    for v in x.tolist():
        b.push(v)
    for v in x.astype(np.float32):
        c.push(v)  # numpy float32 scalars
    np.testing.assert_array_equal(a.counts, b.counts)
    d = QuantileSketch()
    d.push(x.astype(np.float32))
    np.testing.assert_array_equal(c.counts, d.counts)
    # other dtypes, shapes, lists, non-contiguous views
    e, f = QuantileSketch(), QuantileSketch()
    ints = rng.integers(-50, 50, (40, 25))
    e.push(ints)
    e.push(x[::3])
    e.push([1, 2.5, True])
    f.push(ints.astype(np.float64).ravel())
    f.push(np.ascontiguousarray(x[::3]))
    f.push(np.array([1.0, 2.5, 1.0]))
    np.testing.assert_array_equal(e.counts, f.counts)


def test_merge_equals_sketch_of_union():
    rng = np.random.default_rng(5)
    parts = [rng.normal(-3, 1, 10000), rng.standard_cauchy(3000), np.zeros(17),
             -rng.lognormal(1, 2, 5000).astype(np.float32), np.array([])]
    union = QuantileSketch()
    union.push(np.concatenate([p.astype(np.float64) for p in parts]))
    merged = QuantileSketch()
    for p in parts:
        s = QuantileSketch()
        s.push(p)
        merged.merge(s)
    np.testing.assert_array_equal(merged.counts, union.counts)
    assert merged.quantile(QS) == union.quantile(QS)
    # summing the counts buffers is the same merge (what MPI_SUM does)
    summed = QuantileSketch.from_counts(sum(_sketch_of(p).counts for p in parts))
    np.testing.assert_array_equal(summed.counts, union.counts)
    with pytest.raises(ValueError, match="relative accuracies differ"):
        merged.merge(QuantileSketch(0.02))


def _sketch_of(values, alpha=0.01):
    s = QuantileSketch(alpha)
    s.push(values)
    return s


def test_edge_cases():
    s = QuantileSketch()
    assert math.isnan(s.quantile(0.5)) and s.count == 0  # empty, as numpy's NaN
    s.push(np.array([], dtype=np.float32))
    assert s.count == 0
    s.push(3.0)
    assert all(abs(v - 3.0) <= 0.03 for v in s.quantile([0, 0.5, 1]))  # one value
    s.push(math.inf)
    s.push(-math.inf)
    assert s.quantile([0.0, 1.0]) == [-math.inf, math.inf]  # as numpy
    assert s.quantile(0.5) == pytest.approx(3.0, rel=0.01)
    s.push(math.nan)
    assert math.isnan(s.quantile(0.5))  # numpy.quantile propagates NaN
    t = QuantileSketch()
    t.push(np.array([0.0, -0.0, 1e-12, -1e-12]))
    assert t.quantile([0, 0.5, 1]) == [0.0, 0.0, 0.0]  # below 2**-32: the zero bucket
    t.clear()
    t.push(np.array([1e12, -1e12]))  # beyond 2**32: clamped to the outermost buckets
    hi = t.quantile(1.0)
    assert 2.0**32 / 1.02 < hi < 2.0**32 * 1.02 and t.quantile(0.0) == -hi


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"QuantileSketch\(\): relative_accuracy must be "
                                         r"between 0.0001 and 0.5, got 0.0"):
        QuantileSketch(0.0)
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(float("nan"))
    s = QuantileSketch()
    with pytest.raises(ValueError, match=r"quantile\(\): q must be in \[0, 1\], got 1.5"):
        s.quantile(1.5)
    with pytest.raises(ValueError, match="q must be in"):
        s.quantile(float("nan"))
    with pytest.raises(TypeError, match=r"push\(\): expected a real number"):
        s.push("1.0")
    with pytest.raises(ValueError, match="4804 counts given"):
        QuantileSketch.from_counts(np.zeros(4804), 0.02)


def test_pickle_round_trip():
    s = _sketch_of(np.random.default_rng(9).standard_cauchy(5000), 0.005)
    t = pickle.loads(pickle.dumps(s))
    assert t.relative_accuracy == 0.005
    np.testing.assert_array_equal(t.counts, s.counts)
    assert t.quantile(QS) == s.quantile(QS)
    t.push(1.0)  # the copy has its own buffer
    assert t.count == s.count + 1


def test_counts_are_live():
    s = _sketch_of(np.arange(100.0))
    s.counts[:] += _sketch_of(np.arange(100.0, 200.0)).counts  # an in-place sum merges
    assert s.count == 200
    assert s.quantile(1.0) == pytest.approx(199.0, rel=0.01)


def test_compiled():
    import spinfast._sketch as mod

    assert Path(mod.__file__).suffix in {".so", ".pyd"}


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, 3])
def test_mpi_allreduce_of_counts_is_the_union(run_mpi, tmp_path, size):
    sketch_union = load_mpi_module("sketch_union")
    run_mpi("sketch_union", n=size, args=(tmp_path,), timeout=120)
    single = QuantileSketch(0.01)
    for r in range(size):
        single.push(sketch_union.values(r))
        for v in sketch_union.scalars(r):
            single.push(v)
    everything = np.concatenate([np.concatenate([sketch_union.values(r).astype(np.float64),
                                                 sketch_union.scalars(r)])
                                 for r in range(size)])
    for result in rank_files(tmp_path, size, "sketch"):
        assert result["count"] == single.count == everything.size
        assert result["quantiles"] == single.quantile(sketch_union.QS)
        lower = np.quantile(everything, sketch_union.QS, method="lower")
        higher = np.quantile(everything, sketch_union.QS, method="higher")
        for e, lo, hi in zip(result["quantiles"], lower, higher):
            assert within(e, lo, hi, 0.01)
