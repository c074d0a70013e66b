"""The compiled Welford core against independent references (math.fsum, fractions, numpy)."""

from __future__ import annotations

import importlib.machinery
import math
import pickle
import types
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spinfast import _stats
from spinfast._stats import EpochStats, Welford, merge_states


def exact_stats(values):
    """(mean, std, min, max) of float64 values from exactly rounded sums (math.fsum)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    mean = math.fsum(x) / x.size
    var = math.fsum((xi - mean) ** 2 for xi in x.tolist()) / x.size
    return mean, math.sqrt(var), float(x.min()), float(x.max())


def assert_matches(w, values, rel=1e-12):
    x = np.asarray(values, dtype=np.float64).ravel()
    mean, std, lo, hi = exact_stats(x)
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    assert w.count == x.size
    assert math.isclose(w.mean, mean, rel_tol=rel, abs_tol=rel * scale)
    assert math.isclose(w.std, std, rel_tol=rel, abs_tol=rel * scale)
    assert w.min == lo and w.max == hi


def test_compiled_module_is_imported():
    assert _stats.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert Welford.__module__ in ("spinfast._stats", "_stats")
    # A compiled extension type: its methods are not Python functions and its instances have
    # no __dict__ (a pure-Python stand-in would have both).
    assert not isinstance(Welford.__dict__["push"], types.FunctionType)
    assert not hasattr(Welford(), "__dict__")


DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]


def _elements(dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return hnp.from_dtype(dt, allow_nan=False, allow_infinity=False,
                              min_value=-1e4 if dt.itemsize == 2 else -1e6,
                              max_value=1e4 if dt.itemsize == 2 else 1e6)
    if dt.kind in "iu" and dt.itemsize == 8:  # keep int64 exact in float64
        return st.integers(0 if dt.kind == "u" else -2**52, 2**52)
    return hnp.from_dtype(dt)


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=70))
    arr = draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))
    layout = draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim:
        arr = arr[..., ::2]
    elif layout == "reversed" and arr.ndim:
        arr = arr[::-1]
    return arr


@settings(max_examples=300, deadline=None)
@given(arrays())
def test_push_array_matches_exact_reference(arr):
    w = Welford()
    w.push(arr)
    assert_matches(w, arr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200))
def test_scalar_pushes_match_exact_reference(values):
    w = Welford()
    for v in values:
        w.push(v)
    assert_matches(w, values, rel=1e-10)


@pytest.mark.parametrize("n", [1, 3, 2047, 2048, 2049, 100_003])
def test_block_boundaries(n):
    rng = np.random.default_rng(n)
    x = rng.normal(3.0, 2.0, size=n)
    for dtype in (np.float32, np.float64, np.int32):
        arr = (x * 100).astype(dtype)
        w = Welford()
        w.push(arr)
        assert_matches(w, arr)


def test_catastrophic_cancellation():
    rng = np.random.default_rng(0)
    x = 1e9 + rng.uniform(0.0, 1.0, size=10_000)
    # Exact reference with rational arithmetic.
    fr = [Fraction(v) for v in x.tolist()]
    mean = sum(fr) / len(fr)
    var = float(sum((v - mean) ** 2 for v in fr) / len(fr))
    # A naive sum of squares in float64 loses every digit here.
    naive = float(np.sum(x * x) / x.size - np.mean(x) ** 2)
    assert not math.isclose(naive, var, rel_tol=1e-2)
    w = Welford()
    w.push(x)  # blocked path, shifted by the running mean
    assert math.isclose(w.var, var, rel_tol=1e-12)
    assert math.isclose(w.mean, float(mean), rel_tol=1e-15)
    w2 = Welford()
    for v in x[:2000]:  # scalar Welford path
        w2.push(float(v))
    fr2 = fr[:2000]
    m2 = sum(fr2) / len(fr2)
    var2 = float(sum((v - m2) ** 2 for v in fr2) / len(fr2))
    assert math.isclose(w2.var, var2, rel_tol=1e-6)


def test_merge_of_splits_equals_whole():
    rng = np.random.default_rng(1)
    x = rng.normal(-5.0, 3.0, size=5000)
    parts = np.split(x, [0, 1, 17, 2500, 4999])  # includes empty and single-value parts
    ws = []
    for p in parts:
        w = Welford()
        w.push(p)
        ws.append(w)
    total = Welford()
    for w in ws:
        total.merge(w)
    assert_matches(total, x)
    # merge_states: the same merge on stacked states (as gathered from MPI ranks)
    gathered = np.array([[w.state] for w in ws], dtype=np.float64)
    merged = merge_states(gathered)
    assert merged.shape == (1, 5)
    assert tuple(merged[0]) == total.state


def test_merge_with_empty_sides():
    a, empty = Welford(), Welford()
    a.push([1.0, 2.0, 4.0])
    before = a.state
    a.merge(empty)
    assert a.state == before
    empty.merge(a)
    assert empty.state == before


def test_empty_accumulator_is_nan():
    w = Welford()
    assert w.count == 0
    assert all(math.isnan(v) for v in (w.mean, w.std, w.var, w.min, w.max))
    w.push(np.array([], dtype=np.float32))
    assert w.count == 0
    assert w.state == (0.0, 0.0, 0.0, math.inf, -math.inf)
    w.push([1.0, 3.0])
    assert (w.mean, w.std, w.min, w.max) == (2.0, 1.0, 1.0, 3.0)


def test_state_pickle_and_reset_round_trip():
    w = Welford()
    w.push(np.arange(10.0))
    w2 = pickle.loads(pickle.dumps(w))
    assert w2.state == w.state
    assert Welford.from_state(w.state).state == w.state
    assert w.state[0] == 10 and w.state[3] == 0 and w.state[4] == 9
    w.reset()
    assert w.count == 0 and math.isnan(w.mean)
    with pytest.raises(ValueError, match="count must be >= 0"):
        Welford.from_state((-1, 0, 0, 0, 0))


def test_named_positions_of_state_and_summary():
    # The state is (count, mean, M2, min, max), the summary (mean, std, max, min): every
    # reader indexes them by these names, checked here against the accumulator's properties
    # and numpy.
    x = np.random.default_rng(7).normal(3.0, 2.0, size=1001)
    w = Welford()
    w.push(x)
    state = w.state
    assert (_stats.STATE_SIZE, _stats.SUMMARY_SIZE) == (len(state), 4)
    assert state[_stats.STATE_COUNT] == len(x) == w.count
    assert state[_stats.STATE_MEAN] == w.mean == pytest.approx(x.mean(), rel=1e-12)
    assert state[_stats.STATE_M2] == pytest.approx(((x - x.mean()) ** 2).sum(), rel=1e-12)
    assert (state[_stats.STATE_MIN], state[_stats.STATE_MAX]) == (x.min(), x.max())
    summary = _stats.summarize(state)
    assert summary[_stats.SUMMARY_MEAN] == w.mean
    assert summary[_stats.SUMMARY_STD] == w.std == pytest.approx(np.std(x), rel=1e-12)
    assert (summary[_stats.SUMMARY_MAX], summary[_stats.SUMMARY_MIN]) == (x.max(), x.min())
    assert _stats.summarize(list(state)) == _stats.summarize(np.array(state)) == summary
    table = EpochStats()  # the batch's rows and the merge use the same positions
    table.store(K=x)
    table.take_into_batch("K")
    row = table.pop_batch()[0]
    assert tuple(row) == state
    merged = merge_states(np.array([[state], [_stats.EMPTY_STATE]]))[0]
    assert tuple(merged) == state
    assert _stats.EMPTY_STATE == Welford().state == (0.0, 0.0, 0.0, math.inf, -math.inf)


def test_summarize_empty_nonfinite_and_bad_states():
    assert all(math.isnan(v) for v in _stats.summarize(_stats.EMPTY_STATE))
    w = Welford()
    w.push([1.0, np.nan])
    assert all(math.isnan(v) for v in _stats.summarize(w.state)[:3])
    assert math.isnan(w.std) and math.isnan(_stats.summarize(w.state)[_stats.SUMMARY_STD])
    # a negative M2 (a state given from outside) has no std: NaN, not a math error
    assert math.isnan(_stats.summarize((2.0, 1.0, -1e-300, 0.0, 2.0))[_stats.SUMMARY_STD])
    with pytest.raises(ValueError, match=r"summarize\(\): a state is 5 numbers \(count, mean, "
                                         r"M2, min, max\), got 4"):
        _stats.summarize((1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ValueError, match=r"Welford.state: a state is 5 numbers"):
        Welford.from_state((1.0, 2.0, 3.0, 4.0, 5.0, 6.0))


NONFINITE_CASES = [
    [1.0, np.nan, 3.0],
    [np.inf, 1.0],
    [1.0, np.inf],
    [np.inf, -np.inf],
    [-np.inf, 2.0, -np.inf],
    [np.nan, np.inf],
    [np.inf],
]


@pytest.mark.parametrize("values", NONFINITE_CASES)
@pytest.mark.parametrize("how", ["scalars", "array", "big-array", "merge"])
def test_nonfinite_follow_numpy(values, how):
    x = np.array(values, dtype=np.float64)
    if how == "big-array":  # exercise the block kernel's fallback
        x = np.concatenate([np.linspace(0, 1, 3000), x, np.linspace(0, 1, 3000)])
    w = Welford()
    if how == "scalars":
        for v in x:
            w.push(float(v))
    elif how == "merge":
        for v in x:
            part = Welford()
            part.push(v)
            w.merge(part)
    else:
        w.push(x)
    with np.errstate(invalid="ignore"):
        expected = [np.mean(x), np.std(x), np.min(x), np.max(x)]
    got = [w.mean, w.std, w.min, w.max]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(np.array(got)[finite], np.array(expected)[finite], rtol=1e-12)


@pytest.mark.parametrize("value,expected", [
    (3, [3.0]), (True, [1.0]), (2.5, [2.5]), (np.float32(1.5), [1.5]), (np.int64(7), [7.0]),
    ([1, 2, 3], [1, 2, 3]), ((4.0, 5.0), [4.0, 5.0]), (np.ones((2, 2)), [1, 1, 1, 1]),
    (np.array([1, 2], dtype=">f8"), [1.0, 2.0]), (memoryview(np.arange(3.0)), [0, 1, 2]),
    (np.float16(0.5), [0.5]), (np.array(2.0), [2.0]),
])
def test_push_accepts_numbers(value, expected):
    w = Welford()
    w.push(value)
    assert_matches(w, expected)


@pytest.mark.parametrize("bad", ["1.0", None, {"a": 1}, b"ab", np.array(["x"]),
                                 np.array([1, "a"], dtype=object), 1j, object()])
def test_push_rejects_non_numeric(bad):
    w = Welford()
    w.push(1.0)
    with pytest.raises(TypeError, match=r"Welford.push\(\): .*type"):
        w.push(bad)
    assert w.count == 1 and w.mean == 1.0


def test_store_names_key_and_keeps_earlier_values():
    t = EpochStats()
    t.store(A=1.0, B=np.arange(3))
    with pytest.raises(TypeError, match=r"store\(\): key 'C'.*str"):
        t.store(A=5.0, C="oops")
    # Nothing of the failing call was stored; earlier values intact.
    assert t.stats_accumulator("A").state[:2] == (1.0, 1.0)
    assert t.stored_keys() == ["A", "B"]
    with pytest.raises(TypeError, match="key 'D'"):
        t.store(D=np.array([1, None], dtype=object))
    assert "D" not in t.stored_keys()


def test_store_consumes_values():
    t = EpochStats()
    arr = np.ones(4)
    t.store(X=arr)
    arr[:] = 100.0  # Spinning Up keeps a reference; ours must not care
    acc = t.stats_accumulator("X")
    assert acc.mean == 1.0 and acc.max == 1.0


def test_unknown_key_lists_stored_keys():
    t = EpochStats()
    t.store(EpRet=1.0, EpLen=2)
    with pytest.raises(KeyError, match=r"'Loss' was never stored.*\['EpLen', 'EpRet'\]"):
        t.stats_accumulator("Loss")


def test_store_memory_is_constant():
    import tracemalloc

    t = EpochStats()
    t.store(V=0.5)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        t.store(V=float(i))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 1024
    assert t.stats_accumulator("V").count == 100_001


def test_store_key_cache_with_many_and_dynamic_keys():
    t = EpochStats()
    keys = [f"key{i}" for i in range(300)]  # more keys than cache slots: collisions
    for rep in range(3):
        for i, k in enumerate(keys):
            t.store(**{"".join(list(k)): float(i + rep)})  # a new str object every time
    for i, k in enumerate(keys):
        acc = t.stats_accumulator(k)
        assert acc.count == 3 and acc.mean == i + 1.0
    assert t.stored_keys() == keys


def test_store_rejects_positional_arguments():
    t = EpochStats()
    with pytest.raises(TypeError, match=r"store\(\) takes keyword arguments only"):
        t.store(1.0)
    t.store()  # nothing to store is fine
    assert t.stored_keys() == []
    assert "Save something" in EpochStats.store.__doc__


def test_take_state_returns_and_resets():
    t = EpochStats()
    assert t.take_state("A") is None  # never stored: nothing taken, nothing created
    assert t.stored_keys() == []
    t.store(A=np.array([1.0, 2.0, 6.0]))
    exact = (3.0, 3.0, 14.0, 1.0, 6.0)  # count, mean, M2 = 4 + 1 + 9, min, max
    assert t.take_state("A", reset=False) == exact
    assert t.take_state("A") == exact
    assert t.take_state("A") == (0.0, 0.0, 0.0, math.inf, -math.inf)  # reset: empty state
    t.store(A=5.0)
    assert t.take_state("A") == (1.0, 5.0, 0.0, 5.0, 5.0)  # only the values since the reset



def test_take_into_batch_takes_resets_and_pops_in_order():
    table = EpochStats()
    table.store(A=1.0, B=np.arange(4, dtype=np.float32))
    table.store(A=3.0)
    table.track_sketch("B")
    table.store(B=10.0)
    assert table.take_into_batch("B") is True
    assert table.take_into_batch("Never") is False
    assert table.take_into_batch("A") is True
    table.store(A=7.0)  # after the take: the next batch's
    many = [f"K{i}" for i in range(70)]  # past the initial capacity
    for i, key in enumerate(many):
        table.store(**{key: float(i)})
    b = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    first = table.pop_batch()
    assert first.shape == (3, 5) and first.dtype == np.float64
    np.testing.assert_allclose(first[0], [5, b.mean(), ((b - b.mean()) ** 2).sum(), 0, 10])
    np.testing.assert_array_equal(first[1], [0, 0, 0, np.inf, -np.inf])
    np.testing.assert_array_equal(first[2], [2, 2, 2, 1, 3])
    assert table.take_state("B") == (0.0, 0.0, 0.0, math.inf, -math.inf)  # reset by the take
    assert table.take_sketch("B").sum() == 0.0  # and its quantile sketch cleared
    assert table.pop_batch().shape == (0, 5)  # popping empties the batch
    assert all(table.take_into_batch(key) for key in ["A", *many])
    second = table.pop_batch()
    np.testing.assert_array_equal(second[0], [1, 7, 0, 7, 7])
    np.testing.assert_array_equal(second[1:, 1], np.arange(70.0))


def test_store_is_a_getset_of_the_type_made_by_cython_not_written_later():
    import types

    # The type's dict holds 'store' as the getset descriptor PyType_Ready made from the class
    # body (a property), not a method descriptor written into the dict after the type was ready.
    descr = EpochStats.__dict__["store"]
    assert type(descr) is types.GetSetDescriptorType
    assert "Save something" in descr.__doc__
    with pytest.raises(AttributeError):  # read-only
        EpochStats().store = None
    t = EpochStats()
    bound = t.store
    assert type(bound) is types.BuiltinFunctionType and bound.__self__ is t
    assert bound.__name__ == "store" and bound.__doc__.startswith("store(**kwargs)\nSave")
    bound(A=1.0)
    bound(A=np.array([2.0, 3.0], dtype=np.float32))
    assert t.stats_accumulator("A").state[:2] == (3.0, 2.0)


def test_store_converts_what_the_compiled_path_does_not_read_and_names_its_owner():
    seen = []

    def convert(value):
        seen.append(value)
        return value

    t = EpochStats(convert, "Owner")
    t.store(A=1.0, B=np.arange(3), C=np.float32(2.0))  # numbers and readable buffers: compiled
    assert seen == []
    t.store(A=1.0, L=[1, 2])  # a list: converted (numpy's conversion after convert)
    assert seen == [[1, 2]] and t.stats_accumulator("L").mean == 1.5
    with pytest.raises(TypeError, match=r"^Owner.store\(\): key 'S': got a value of type str"):
        t.store(A=5.0, S="x")
    with pytest.raises(TypeError, match=r"^Owner.store\(\) takes keyword arguments only"):
        t.store(5)
    assert t.stats_accumulator("A").count == 2  # a failing call stored nothing
    with pytest.raises(TypeError, match=r"^EpochStats.store\(\): key 'S'"):
        EpochStats().store(S="x")
