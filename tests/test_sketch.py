"""The quantile sketch (csrc/ddsketch.h), through ``Welford.track_quantiles`` and
``sketch_quantiles`` as the logger uses it: against numpy.quantile, merges, MPI, edge cases."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import load_mpi_module, rank_files

from spinfast._stats import Welford, sketch_quantiles, sketch_size

QS = [0.0, 0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999,
      1.0]


def tracked(alpha: float = 0.01, values=None) -> Welford:
    """An accumulator tracking quantiles at ``alpha``, holding ``values`` if given."""
    w = Welford()
    w.track_quantiles(alpha)
    if values is not None:
        w.push(values)
    return w


def quantiles(w: Welford, qs) -> list[float]:
    return sketch_quantiles(w.quantile_counts, w.relative_accuracy, qs)


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
        sketch = tracked(alpha, x)
        assert sketch.count == x.size == sketch.quantile_counts.sum()
        est = quantiles(sketch, QS)
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
        sketch = tracked(alpha)
        m = 200 if alpha < 1e-3 else 3000  # clearing 480k slots per value is slow
        for x in np.concatenate([mags[:m], -mags[-m:]]):
            sketch.reset()
            sketch.push(float(x))
            [est] = quantiles(sketch, [0.5])
            assert abs(est - x) <= alpha * abs(x), (alpha, x, est)
            worst[alpha] = max(worst.get(alpha, 0.0), abs(est - x) / abs(x))
    # the bound is nearly reached: buckets are as wide as the accuracy allows, no wider
    assert all(w > 0.9 * alpha for alpha, w in worst.items() if alpha >= 1e-3), worst


def test_counts_layout_and_memory():
    s = tracked(0.01)
    assert s.quantile_counts.dtype == np.float64 and s.quantile_counts.flags.c_contiguous
    nb = math.ceil(64 * 0.75 / math.log((1 + 0.01) / (1 - 0.01)))
    assert len(s.quantile_counts) == 2 * nb + 4 == 4804 == sketch_size(0.01)
    s.push(np.array([math.nan, -math.inf, -5.0, 0.0, 1e-300, 5.0, math.inf]))
    c = s.quantile_counts
    assert c[0] == 1 and c[1] == 1 and c[-1] == 1 and c[nb + 2] == 2  # NaN, -inf, +inf, zero
    assert c[2:nb + 2].sum() == 1 and c[nb + 3:2 * nb + 3].sum() == 1
    assert len(tracked(0.001).quantile_counts) == sketch_size(0.001) > 9 * len(c)
    c[:] = 0  # a copy: the sketch keeps its counts
    assert s.quantile_counts.sum() == 7


def test_scalar_and_array_pushes_count_alike():
    rng = np.random.default_rng(3)
    x = rng.standard_cauchy(20000)
    a, b, c = tracked(), tracked(), tracked()
    a.push(x)
    for v in x.tolist():
        b.push(v)
    for v in x.astype(np.float32):
        c.push(v)  # numpy float32 scalars
    np.testing.assert_array_equal(a.quantile_counts, b.quantile_counts)
    d = tracked(0.01, x.astype(np.float32))
    np.testing.assert_array_equal(c.quantile_counts, d.quantile_counts)
    # other dtypes, shapes, lists, non-contiguous views
    e, f = tracked(), tracked()
    ints = rng.integers(-50, 50, (40, 25))
    e.push(ints)
    e.push(x[::3])
    e.push([1, 2.5, True])
    f.push(ints.astype(np.float64).ravel())
    f.push(np.ascontiguousarray(x[::3]))
    f.push(np.array([1.0, 2.5, 1.0]))
    np.testing.assert_array_equal(e.quantile_counts, f.quantile_counts)


def test_merge_equals_sketch_of_union():
    rng = np.random.default_rng(5)
    parts = [rng.normal(-3, 1, 10000), rng.standard_cauchy(3000), np.zeros(17),
             -rng.lognormal(1, 2, 5000).astype(np.float32), np.array([])]
    union = tracked(0.01, np.concatenate([p.astype(np.float64) for p in parts]))
    merged = tracked()
    for p in parts:
        merged.merge(tracked(0.01, p))
    np.testing.assert_array_equal(merged.quantile_counts, union.quantile_counts)
    assert quantiles(merged, QS) == quantiles(union, QS)
    assert merged.count == union.count
    # summing the counts buffers is the same merge (what MPI_SUM does)
    summed = sum(tracked(0.01, p).quantile_counts for p in parts)
    np.testing.assert_array_equal(summed, union.quantile_counts)
    # a merge that would leave values out of the quantiles raises and merges nothing
    before = merged.state, merged.quantile_counts
    with pytest.raises(ValueError, match=r"relative accuracies differ \(0.01 here, 0.02"):
        merged.merge(tracked(0.02, [1.0]))
    with pytest.raises(ValueError, match="does not: its 2 values would be missing"):
        merged.merge(Welford.from_state((2, 1, 0, 1, 1)))
    assert merged.state == before[0]
    np.testing.assert_array_equal(merged.quantile_counts, before[1])
    merged.merge(Welford())  # nothing to leave out
    merged.merge(tracked(0.02))
    untracked = Welford.from_state(merged.state)
    untracked.merge(merged)  # no quantiles here to miss anything
    assert untracked.count == 2 * merged.count and untracked.quantile_counts is None


def test_edge_cases():
    s = tracked()
    assert math.isnan(quantiles(s, [0.5])[0]) and s.count == 0  # empty, as numpy's NaN
    s.push(np.array([], dtype=np.float32))
    assert s.count == 0
    s.push(3.0)
    assert all(abs(v - 3.0) <= 0.03 for v in quantiles(s, [0, 0.5, 1]))  # one value
    s.push(math.inf)
    s.push(-math.inf)
    assert quantiles(s, [0.0, 1.0]) == [-math.inf, math.inf]  # as numpy
    assert quantiles(s, [0.5]) == pytest.approx([3.0], rel=0.01)
    s.push(math.nan)
    assert math.isnan(quantiles(s, [0.5])[0])  # numpy.quantile propagates NaN
    t = tracked(0.01, np.array([0.0, -0.0, 1e-12, -1e-12]))
    assert quantiles(t, [0, 0.5, 1]) == [0.0, 0.0, 0.0]  # below 2**-32: the zero bucket
    t.reset()
    assert t.quantile_counts.sum() == 0
    t.push(np.array([1e12, -1e12]))  # beyond 2**32: clamped to the outermost buckets
    lo, hi = quantiles(t, [0.0, 1.0])
    assert 2.0**32 / 1.02 < hi < 2.0**32 * 1.02 and lo == -hi


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"track_quantiles\(\): relative_accuracy must be "
                                         r"in \[1e-4, 0.5\], got 0.0"):
        tracked(0.0)
    with pytest.raises(ValueError, match="relative_accuracy"):
        tracked(float("nan"))
    with pytest.raises(ValueError, match="relative_accuracy"):
        sketch_size(0.6)
    s = tracked()
    with pytest.raises(ValueError, match=r"sketch_quantiles\(\): quantiles must be in "
                                         r"\[0, 1\], got 1.5"):
        quantiles(s, [1.5])
    with pytest.raises(ValueError, match="quantiles must be in"):
        quantiles(s, [float("nan")])
    with pytest.raises(TypeError, match=r"Welford.push\(\): got a value of type str"):
        s.push("1.0")
    with pytest.raises(ValueError, match="4804 counts do not make a sketch of relative "
                                         "accuracy 0.02"):
        sketch_quantiles(np.zeros(4804), 0.02, [0.5])


def test_pickle_round_trip():
    s = tracked(0.005, np.random.default_rng(9).standard_cauchy(5000))
    t = pickle.loads(pickle.dumps(s))
    assert t.relative_accuracy == 0.005 and t.state == s.state
    np.testing.assert_array_equal(t.quantile_counts, s.quantile_counts)
    assert quantiles(t, QS) == quantiles(s, QS)
    t.push(1.0)  # the copy has its own buffer
    assert t.quantile_counts.sum() == s.quantile_counts.sum() + 1 == s.count + 1
    u = pickle.loads(pickle.dumps(Welford.from_state(s.state)))  # untracked: no sketch
    assert u.state == s.state and u.quantile_counts is None and u.relative_accuracy is None


def test_compiled():
    import spinfast._stats as mod

    assert Path(mod.__file__).suffix in {".so", ".pyd"}


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, 3])
def test_mpi_allreduce_of_counts_is_the_union(run_mpi, tmp_path, size):
    sketch_union = load_mpi_module("sketch_union")
    run_mpi("sketch_union", n=size, args=(tmp_path,), timeout=120)
    single = tracked(0.01)
    for r in range(size):
        single.push(sketch_union.values(r))
        for v in sketch_union.scalars(r):
            single.push(v)
    everything = np.concatenate([np.concatenate([sketch_union.values(r).astype(np.float64),
                                                 sketch_union.scalars(r)])
                                 for r in range(size)])
    for result in rank_files(tmp_path, size, "sketch"):
        assert result["count"] == single.count == everything.size
        assert result["quantiles"] == quantiles(single, sketch_union.QS)
        lower = np.quantile(everything, sketch_union.QS, method="lower")
        higher = np.quantile(everything, sketch_union.QS, method="higher")
        for e, lo, hi in zip(result["quantiles"], lower, higher):
            assert within(e, lo, hi, 0.01)
