"""EpochLogger hot paths against Spinning Up's data path (bench/reference.py), in one run.

Run: ``python -m pytest bench/bench_logx.py`` (add ``--check-targets`` to enforce the ratios).
"""

from __future__ import annotations

import contextlib
import io
import tracemalloc

import numpy as np
import pytest

from reference import ReferenceEpochLogger
from spinfast._stats import Welford
from spinfast.logx import EpochLogger

IMPLS = ["spinfast", "reference"]


@pytest.fixture
def make_logger(tmp_path):
    def make(impl):
        if impl == "reference":
            return ReferenceEpochLogger()
        with contextlib.redirect_stdout(io.StringIO()):
            return EpochLogger(output_dir=str(tmp_path / "log"))
    return make


@pytest.mark.parametrize("impl", IMPLS)
def test_store_one_float(benchmark, paired, make_logger, impl):
    paired(benchmark, "store: 1 float key", impl, 3)
    logger = make_logger(impl)
    store = logger.store
    benchmark(lambda: store(Loss=0.5))


@pytest.mark.parametrize("impl", IMPLS)
def test_store_four_keys(benchmark, paired, make_logger, impl):
    paired(benchmark, "store: 4 float keys", impl, 4)
    logger = make_logger(impl)
    store = logger.store
    benchmark(lambda: store(LossPi=0.5, LossV=1.5, KL=0.01, Ent=0.7))


@pytest.mark.parametrize("impl", IMPLS)
def test_store_numpy_scalar(benchmark, paired, make_logger, impl):
    paired(benchmark, "store: numpy float32 scalar", impl, 3)
    logger = make_logger(impl)
    store, v = logger.store, np.float32(0.25)
    benchmark(lambda: store(V=v))


@pytest.mark.parametrize("impl", IMPLS)
def test_store_array_then_log(benchmark, paired, make_logger, impl):
    # Ours: store consumes the array. Reference: store keeps it, log_tabular pays later.
    paired(benchmark, "store 1000 float32 (+ref log)", impl, 3)
    logger = make_logger(impl)
    arr = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    if impl == "spinfast":
        benchmark(lambda: logger.store(Q=arr))
    else:
        def run():
            logger.store(Q=arr)
            logger.log_tabular("Q")
        benchmark(run)


@pytest.mark.parametrize("impl", IMPLS)
def test_push_million(benchmark, paired, impl):
    paired(benchmark, "stats of 1e6 float32", impl, 2)
    x = np.random.default_rng(1).normal(size=1_000_000).astype(np.float32)
    if impl == "spinfast":
        def run():
            w = Welford()
            w.push(x)
            return w.mean, w.std, w.min, w.max
    else:
        def run():
            return np.mean(x), np.std(x), np.min(x), np.max(x)
    benchmark(run)


@pytest.mark.parametrize("impl", IMPLS)
def test_log_tabular_after_million(benchmark, paired, make_logger, impl):
    paired(benchmark, "log_tabular after 1e6 stores", impl, 1000)
    logger = make_logger(impl)

    def setup():
        logger.log_current_row.clear() if impl == "spinfast" else logger.row.clear()
        for i in range(1_000_000):
            logger.store(R=float(i))

    def run():
        logger.log_tabular("R", with_min_and_max=True)
        if impl == "spinfast":
            logger.log_current_row.clear()  # keep the row free for the next round
            logger.log_headers.clear()

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)


@pytest.mark.parametrize("impl", IMPLS)
def test_whole_epoch(benchmark, paired, make_logger, impl, tmp_path):
    paired(benchmark, "epoch: 4000 steps x 3 keys", impl, 3)
    logger = make_logger(impl)
    out = open(tmp_path / "ref.txt", "w")
    rng = np.random.default_rng(2)
    rets = rng.normal(size=4000).tolist()
    vals = rng.normal(size=4000).astype(np.float32)

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

    benchmark(epoch)


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
