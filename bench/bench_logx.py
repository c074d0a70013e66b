"""EpochLogger hot paths against Spinning Up's data path (bench/reference.py), in one run.

Run: ``python -m pytest bench/bench_logx.py`` (add ``--check-targets`` to enforce the ratios).
Each test times its spinfast side and its reference in turns (``conftest.alternating``); a
``make(impl)`` builds each side's call.
"""

from __future__ import annotations

import contextlib
import io
import tracemalloc

import numpy as np
import pytest
from conftest import alternating
from reference import ReferenceEpochLogger

from spinfast._stats import Welford
from spinfast.logx import EpochLogger

IMPLS = ["spinfast", "reference"]


def sides(benchmark, group, target, rounds, make, prepare=None, warmup_rounds=2):
    """:func:`conftest.alternating` of ``make("spinfast")`` against ``make("reference")``."""
    alternating(benchmark, group, target, rounds, make("spinfast"), make("reference"),
                prepare=prepare, warmup_rounds=warmup_rounds)


@pytest.fixture
def make_logger(tmp_path):
    def make(impl):
        if impl == "reference":
            return ReferenceEpochLogger()
        with contextlib.redirect_stdout(io.StringIO()):
            return EpochLogger(output_dir=str(tmp_path / "log"))
    return make


# Store benchmarks time 1000 calls per round, so that the harness's own call overhead
# (~70 ns here, as much as a whole store) does not blur the ratio.
CALLS = 1000


def test_store_one_float(benchmark, make_logger):
    def make(impl):
        store = make_logger(impl).store

        def run():
            for _ in range(CALLS):
                store(Loss=0.5)
        return run
    sides(benchmark, "store x1000: 1 float key", 3, 300, make)


def test_store_four_keys(benchmark, make_logger):
    def make(impl):
        store = make_logger(impl).store

        def run():
            for _ in range(CALLS):
                store(LossPi=0.5, LossV=1.5, KL=0.01, Ent=0.7)
        return run
    sides(benchmark, "store x1000: 4 float keys", 4, 300, make)


class _EmptyMethod:
    def store(self, **kwargs):
        pass


def test_store_against_an_empty_python_method(benchmark, make_logger):
    # Issue 20's bound: `logger.store(Loss=0.5)` as users write it (looked up on the instance
    # each call: the table's compiled call, bound per instance) costs less than a call of an
    # empty Python method with **kwargs.
    logger, empty = make_logger("spinfast"), _EmptyMethod()

    def ours():
        for _ in range(CALLS):
            logger.store(Loss=0.5)

    def empty_calls():
        for _ in range(CALLS):
            empty.store(Loss=0.5)
    alternating(benchmark, "store x1000 vs an empty Python method", 1.0, 300, ours,
                empty_calls)


def test_timer_against_store_and_two_clock_reads(benchmark, make_logger):
    # The bound: a timed block costs at most 2x a store plus two clock reads.
    import time

    logger = make_logger("spinfast")
    store, clock = logger.store, time.perf_counter_ns

    def timed():  # as a user writes it: the timer looked up by key each time
        for _ in range(CALLS):
            with logger.timer("StepTime"):
                pass

    def stored():
        for _ in range(CALLS):
            clock()
            clock()
            store(StepTime=0.5)
    alternating(benchmark, "timer x1000 vs store + 2 clocks", 0.5, 200, timed, stored)


def test_store_numpy_scalar(benchmark, make_logger):
    v = np.float32(0.25)

    def make(impl):
        store = make_logger(impl).store

        def run():
            for _ in range(CALLS):
                store(V=v)
        return run
    sides(benchmark, "store x1000: numpy float32", 3, 300, make)


def test_store_array_then_log(benchmark, make_logger):
    # Ours: store consumes the array. Reference: store keeps it, log_tabular pays later.
    arr = np.random.default_rng(0).normal(size=1000).astype(np.float32)

    def make(impl):
        logger = make_logger(impl)
        if impl == "spinfast":
            return lambda: logger.store(Q=arr)

        def run():
            logger.store(Q=arr)
            logger.log_tabular("Q")
        return run
    sides(benchmark, "store 1000 float32 (+ref log)", 3, 500, make)


def test_push_million(benchmark):
    x = np.random.default_rng(1).normal(size=1_000_000).astype(np.float32)

    def ours():
        w = Welford()
        w.push(x)
        return w.mean, w.std, w.min, w.max

    def numpy():
        return np.mean(x), np.std(x), np.min(x), np.max(x)
    sides(benchmark, "stats of 1e6 float32", 2, 40, {"spinfast": ours, "reference": numpy}.get)


def test_log_tabular_after_million(benchmark, make_logger):
    # log_tabular resets what it summarises, so each round first puts back the epoch's
    # 1e6 stored values, in O(1) on both sides: the accumulator's state, or the list.
    def make(impl):
        logger = make_logger(impl)
        for i in range(1_000_000):
            logger.store(R=float(i))
        if impl == "spinfast":
            acc = logger.stats_accumulator("R")
            saved = acc.state

            def run():
                acc.state = saved
                logger.log_tabular("R", with_min_and_max=True)
                logger.log_current_row.clear()  # keep the first row open for the next round
            return run
        saved = logger.epoch_dict["R"]

        def run():
            logger.epoch_dict["R"] = saved
            logger.log_tabular("R", with_min_and_max=True)
            logger.row.clear()
        return run
    sides(benchmark, "log_tabular after 1e6 stores", 1000, 30, make)


def test_whole_epoch(benchmark, make_logger, tmp_path):
    rng = np.random.default_rng(2)
    rets = rng.normal(size=4000).tolist()
    vals = rng.normal(size=4000).astype(np.float32)

    def make(impl):
        logger = make_logger(impl)
        out = open(tmp_path / f"{impl}.txt", "w")

        def epoch():
            store = logger.store
            for t in range(4000):
                store(VVals=vals[t], Ret=rets[t], Len=t)
            logger.log_tabular("Epoch", 1)
            logger.log_tabular("Ret", with_min_and_max=True)
            logger.log_tabular("Len", average_only=True)
            logger.log_tabular("VVals", with_min_and_max=True)
            logger.log_tabular("Time", 0.5)
            with contextlib.redirect_stdout(io.StringIO()):
                if impl == "spinfast":
                    logger.dump_tabular()
                else:
                    logger.dump_tabular(out)
        return epoch
    sides(benchmark, "epoch: 4000 steps x 3 keys", 3, 30, make)


# The real cycle of a training loop: values stored over an epoch, then log_tabular of each
# key with its min and max, then dump_tabular (stdout table and progress.txt). The logger is
# fresh at the start, so the first epoch (first call, first row, header) counts too.
KEYS = [f"Key{i}" for i in range(10)]


def _cycle_logger(impl, tmp_path):
    if impl == "reference":
        tmp_path.mkdir(parents=True, exist_ok=True)
        return ReferenceEpochLogger(), open(tmp_path / "ref.txt", "w")
    with contextlib.redirect_stdout(io.StringIO()):
        return EpochLogger(output_dir=str(tmp_path / "log")), None


def _epoch(logger, out, values):
    store = logger.store
    for v in values:
        store(Key0=v, Key1=v, Key2=v, Key3=v, Key4=v, Key5=v, Key6=v, Key7=v, Key8=v, Key9=v)
    for key in KEYS:
        logger.log_tabular(key, with_min_and_max=True)
    with contextlib.redirect_stdout(io.StringIO()):
        if out is None:
            logger.dump_tabular()
        else:
            logger.dump_tabular(out)


def test_cycle(benchmark, tmp_path):
    """Ten epochs (1000 steps x 10 keys, log_tabular x10, dump_tabular) of a fresh logger."""
    values = np.random.default_rng(3).normal(size=1000).tolist()
    runs = iter(range(10**9))
    made = {}

    def prepare(impl):  # the logger is made untimed; its first store, row and dump are timed
        made[impl] = _cycle_logger(impl, tmp_path / str(next(runs)))

    def make(impl):
        def run():
            logger, out = made[impl]
            for _ in range(10):
                _epoch(logger, out, values)
        return run
    sides(benchmark, "cycle: 10 epochs of a fresh logger", 3, 15, make, prepare=prepare)


def test_log_tabular_in_cycle(benchmark, tmp_path):
    """The 10 log_tabular calls of an epoch alone, each round after a real store and dump."""
    values = np.random.default_rng(4).normal(size=1000).tolist()
    made = {}
    for impl in IMPLS:
        made[impl] = _cycle_logger(impl, tmp_path / impl)
        _epoch(*made[impl], values)  # the first row is written: steady state from here

    def prepare(impl):
        logger, out = made[impl]
        with contextlib.redirect_stdout(io.StringIO()):
            if logger.log_current_row if impl == "spinfast" else logger.row:
                logger.dump_tabular() if out is None else logger.dump_tabular(out)
        for v in values:
            logger.store(Key0=v, Key1=v, Key2=v, Key3=v, Key4=v, Key5=v, Key6=v, Key7=v,
                         Key8=v, Key9=v)

    def make(impl):
        logger = made[impl][0]

        def run():
            for key in KEYS:
                logger.log_tabular(key, with_min_and_max=True)
        return run
    sides(benchmark, "log_tabular x10 keys in the cycle", 10, 500, make, prepare=prepare,
          warmup_rounds=10)


def test_first_log_tabular(benchmark, tmp_path):
    """The first log_tabular of a fresh logger, for a key name never logged before."""
    names = (f"Fresh{i}" for i in range(10**9))
    folders = iter(range(10**9))
    calls = {}

    def prepare(impl):
        logger, _ = _cycle_logger(impl, tmp_path / str(next(folders)))
        key = next(names)
        logger.store(**{key: 1.0})
        logger.store(**{key: 2.0})
        calls[impl] = (logger, key)

    def make(impl):
        def run():
            logger, key = calls[impl]
            logger.log_tabular(key, with_min_and_max=True)
        return run
    sides(benchmark, "first log_tabular of a fresh logger", 1, 200, make, prepare=prepare)


def test_store_tracked_scalar(benchmark, make_logger):
    """A store of a key whose quantiles are tracked (spinfast), against the same store
    untracked (reference)."""
    def make(impl):
        logger = make_logger("spinfast")
        if impl == "spinfast":
            logger.track_quantiles("Loss")
        store = logger.store

        def run():
            for _ in range(CALLS):
                store(Loss=0.5)
        return run
    sides(benchmark, "store x1000: quantile-tracked vs plain", 1 / 1.5, 300, make)


def test_quantiles_of_million(benchmark, make_logger):
    """1e6 float32 stored into a tracked key (20 ns a value at most: 20 ms), against numpy's
    sort-based quantiles of the same array."""
    x = np.random.default_rng(5).normal(size=1_000_000).astype(np.float32)
    logger = make_logger("spinfast")
    logger.track_quantiles("Q")
    sides(benchmark, "quantiles of 1e6 float32 (store vs np.quantile)", 1, 30,
          {"spinfast": lambda: logger.store(Q=x),
           "reference": lambda: np.quantile(x, (0.05, 0.5, 0.95))}.get)


@pytest.mark.parametrize("impl", IMPLS)
def test_memory_per_key(make_logger, impl):
    """Memory for 1e6 stores of one key: O(1) for spinfast, ~32 MB for the reference."""
    logger = make_logger(impl)
    logger.store(M=0.0)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(1_000_000):
        logger.store(M=float(i))
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"\n{impl}: memory growth for 1e6 stores = {grown} bytes")
    if impl == "spinfast":
        assert grown < 1024
    else:
        assert grown > 8_000_000
