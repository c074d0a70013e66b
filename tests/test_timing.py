"""Phase timers, throughput columns and system metrics of EpochLogger (one process).

Expectations are bounds read off ``time.perf_counter`` around the same blocks: a timer's
value lies between the time measured inside its block and the time measured around it.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
from conftest import rank_files

from spinfast.logx import EpochLogger


def logger_in(tmp_path, **kwargs):
    return EpochLogger(output_dir=str(tmp_path), formats="txt", **kwargs)


def timed_sleep(logger, key, seconds):
    """Sleep inside ``logger.timer(key)``; return (inner, outer) perf_counter bounds."""
    before = time.perf_counter()
    with logger.timer(key):
        start = time.perf_counter()
        time.sleep(seconds)
        inner = time.perf_counter() - start
    return inner, time.perf_counter() - before


def test_timer_stores_the_seconds_of_its_block(tmp_path):
    logger = logger_in(tmp_path)
    bounds = [timed_sleep(logger, "SleepTime", s) for s in (0.02, 0.05, 0.03)]
    acc = logger.stats_accumulator("SleepTime")
    assert acc.count == 3
    assert acc.min >= min(b[0] for b in bounds) and acc.max <= max(b[1] for b in bounds)
    assert sum(b[0] for b in bounds) <= acc.mean * 3 <= sum(b[1] for b in bounds)
    logger.log_tabular("SleepTime", with_min_and_max=True)
    row = logger.log_current_row
    assert list(row) == ["AverageSleepTime", "StdSleepTime", "MaxSleepTime", "MinSleepTime"]
    assert 0.05 <= row["MaxSleepTime"] <= bounds[1][1]
    assert bounds[0][0] <= row["MinSleepTime"] <= bounds[0][1]


def test_nested_and_repeated_timers(tmp_path):
    logger = logger_in(tmp_path)
    t0 = time.perf_counter()
    with logger.timer("OuterTime"):
        with logger.timer("InnerTime"):
            time.sleep(0.02)
        with logger.timer("OuterTime"):  # the same key, nested: two values
            time.sleep(0.01)
    total = time.perf_counter() - t0
    outer = logger.stats_accumulator("OuterTime")
    inner = logger.stats_accumulator("InnerTime")
    assert outer.count == 2 and inner.count == 1
    assert 0.03 <= outer.max <= total
    assert 0.01 <= outer.min < outer.max
    assert 0.02 <= inner.max < outer.max
    assert logger.timer("OuterTime") is logger.timer("OuterTime")
    deep = logger.timer("DeepTime")
    for _ in range(20):  # deeper than the timer's inline stack
        deep.__enter__()
    for _ in range(20):
        deep.__exit__(None, None, None)
    assert logger.stats_accumulator("DeepTime").count == 20
    with pytest.raises(RuntimeError, match="'DeepTime' exited more often than entered"):
        deep.__exit__(None, None, None)


def test_timer_stores_the_time_of_a_block_left_by_an_exception(tmp_path):
    logger = logger_in(tmp_path)
    with pytest.raises(KeyError, match="boom"):
        with logger.timer("FailTime"):
            time.sleep(0.01)
            raise KeyError("boom")
    acc = logger.stats_accumulator("FailTime")
    assert acc.count == 1 and acc.min >= 0.01


def test_timer_as_a_decorator(tmp_path):
    logger = logger_in(tmp_path)

    @logger.timer("StepTime")
    def step(x, scale=2):
        """Double x."""
        time.sleep(0.005)
        return x * scale

    assert [step(i, scale=3) for i in range(4)] == [0, 3, 6, 9]
    assert step.__name__ == "step" and step.__doc__ == "Double x."
    acc = logger.stats_accumulator("StepTime")
    assert acc.count == 4 and acc.min >= 0.005
    with pytest.raises(TypeError, match="timer\\(\\): key must be str, got 3"):
        logger.timer(3)


def test_rate_is_the_counter_change_per_second_between_dumps(tmp_path):
    before = time.perf_counter()
    logger = logger_in(tmp_path)
    after = time.perf_counter()
    time.sleep(0.05)
    # First row: from 0, over the time since the logger was made.
    logger.log_tabular("SPS", rate="TotalEnvInteracts")  # before its counter: fine
    logger.log_tabular("TotalEnvInteracts", 1000)
    t0 = time.perf_counter()
    row = dict(logger.log_current_row)
    logger.dump_tabular()
    t1 = time.perf_counter()
    assert math.isnan(row["SPS"])  # filled in by the dump
    first = _last_row(tmp_path)
    assert 1000 / (t1 - before) <= first["SPS"] <= 1000 / (t0 - after)
    for counter in (1500, 2700):
        time.sleep(0.03)
        logger.log_tabular("SPS", rate="TotalEnvInteracts")
        logger.log_tabular("TotalEnvInteracts", counter)
        t2 = time.perf_counter()
        logger.dump_tabular()
        t3 = time.perf_counter()
        got = _last_row(tmp_path)["SPS"]
        prev = 1000 if counter == 1500 else 1500
        assert (counter - prev) / (t3 - t0) <= got <= (counter - prev) / (t2 - t1)
        t0, t1 = t2, t3


def test_rate_of_a_statistic_and_of_a_missing_counter(tmp_path):
    logger = logger_in(tmp_path)
    logger.store(Steps=np.array([10.0, 30.0]))
    logger.log_tabular("Steps", average_only=True)  # column "Steps", value 20
    logger.log_tabular("StepsPerSec", rate="Steps")
    logger.log_tabular("Lost", rate="Nowhere")
    with pytest.warns(RuntimeWarning, match="'Lost' follows 'Nowhere', but the row has no "
                                            "column 'Nowhere'"):
        logger.dump_tabular()
    row = _last_row(tmp_path)
    assert row["StepsPerSec"] > 0 and math.isnan(row["Lost"])
    with pytest.raises(ValueError, match="give 'X' a value or rate=, not both"):
        logger.log_tabular("X", 1, rate="Steps")
    with pytest.raises(TypeError, match="rate= must name a column of the row"):
        logger.log_tabular("Y", rate=5)
    assert "X" not in logger.log_current_row and "Y" not in logger.log_current_row


def test_resumed_rate_restarts_the_clock_and_continues_the_counter(tmp_path):
    logger = logger_in(tmp_path)
    for epoch in range(3):
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("TotalEnvInteracts", 100 * (epoch + 1))
        logger.log_tabular("SPS", rate="TotalEnvInteracts")
        logger.dump_tabular()
        logger.save_state({"epoch": epoch})
    logger.log_tabular("Epoch", 3)  # dumped, never checkpointed: dropped by the resume
    logger.log_tabular("TotalEnvInteracts", 400)
    logger.log_tabular("SPS", rate="TotalEnvInteracts")
    logger.dump_tabular()
    logger.close()
    time.sleep(0.2)  # downtime: not counted

    before = time.perf_counter()
    resumed = logger_in(tmp_path, resume=True)
    after = time.perf_counter()
    assert resumed.load_state() == {"epoch": 2}
    time.sleep(0.02)
    resumed.log_tabular("Epoch", 3)
    resumed.log_tabular("TotalEnvInteracts", 450)
    resumed.log_tabular("SPS", rate="TotalEnvInteracts")
    t0 = time.perf_counter()
    resumed.dump_tabular()
    t1 = time.perf_counter()
    rows = _rows(tmp_path)
    assert [r["Epoch"] for r in rows] == [0, 1, 2, 3]
    assert 150 / (t1 - before) <= rows[-1]["SPS"] <= 150 / (t0 - after)


def _rows(folder):
    lines = (folder / "progress.txt").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, map(float, line.split("\t")))) for line in lines[1:]]


def _last_row(folder):
    return _rows(folder)[-1]


def test_system_metrics_columns_in_one_process(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path), formats="txt,csv,jsonl,tensorboard",
                         system_metrics=True)
    for epoch in range(2):
        logger.store(X=1.0)
        ballast = np.ones(40_000_000 // 8) if epoch == 1 else None  # +40 MB in epoch 1
        end = time.process_time() + 0.05
        while time.process_time() < end:  # busy: ~100% of one core
            pass
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("X")
        logger.dump_tabular()
        del ballast
    rows = _rows(tmp_path)
    assert list(rows[0]) == ["Epoch", "AverageX", "StdX", "SysRSSMaxMB", "SysRSSMaxRank",
                             "SysCPUMean", "SysCPUMax", "SysRanks"]
    statm = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert 10 < rows[0]["SysRSSMaxMB"] < statm + 1
    assert rows[1]["SysRSSMaxMB"] >= rows[0]["SysRSSMaxMB"] + 35
    for row in rows:
        assert row["SysRSSMaxRank"] == 0 and row["SysRanks"] == 1
        assert row["SysCPUMean"] == row["SysCPUMax"]
    assert 20 < rows[1]["SysCPUMean"] <= 105  # busy-waited most of the epoch
    jsonl = (tmp_path / "progress.jsonl").read_text().splitlines()
    assert all('"SysRSSMaxMB"' in line for line in jsonl)
    logger.close()
    from spinfast.tfevents import read_scalars
    tags = {s.tag for s in read_scalars(tmp_path / "tb")}
    assert {"SysRSSMaxMB", "SysCPUMean", "SysRanks"} <= tags


@pytest.mark.mpi
@pytest.mark.parametrize("size", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_timers_and_system_metrics_over_ranks_in_the_dump_collective(run_mpi, tmp_path, size):
    run_mpi("timing_ranks", n=size, args=(3,), timeout=120)
    res = rank_files(tmp_path, size)
    rows = _rows(tmp_path / "out")
    assert len(rows) == 3
    for rank in range(size):
        assert res[rank]["calls"] == [["Allgather"]] * 3  # the row's one collective
    lagging = res[size - 1]["bounds"]
    for epoch, row in enumerate(rows):
        inner, outer = lagging[epoch]
        assert inner <= row["MaxRolloutTime"] <= outer  # the straggler's time
        fast = [res[r]["bounds"][epoch] for r in range(size - 1)]
        assert min(b[0] for b in fast) <= row["MinRolloutTime"] <= max(b[1] for b in fast)
        assert row["AverageRolloutTime"] == pytest.approx(
            (sum(b[0] for b in fast) + inner) / size, abs=0.02)
        assert row["SysRSSMaxRank"] == 1 and row["SysRanks"] == size
        assert row["SysRSSMaxMB"] > 200
        assert row["SysCPUMax"] >= row["SysCPUMean"] >= 0
        assert row["SPS"] > 0


def test_system_metrics_add_no_row_when_nothing_was_logged(tmp_path):
    logger = EpochLogger(output_dir=str(tmp_path), formats="txt", system_metrics=True)
    with pytest.warns(RuntimeWarning, match="nothing was logged since the last dump"):
        logger.dump_tabular()
    logger.log_tabular("Epoch", 0)
    logger.dump_tabular()
    assert [list(row) for row in _rows(tmp_path)] == [["Epoch", "SysRSSMaxMB", "SysRSSMaxRank",
                                                       "SysCPUMean", "SysCPUMax", "SysRanks"]]
