"""Timers, a rate and system metrics over ranks: the last rank lags, rank 1 holds 200 MB more.

Usage: timing_ranks.py EPOCHS. Each epoch every rank times a rollout (0.02 s of sleep, 0.12 s
on the last rank) and an update (0.01 s); rank 1 allocates and touches 200 MB before the
first epoch. The world communicator records its calls (``recording.Recording``). Each rank
writes ``out<rank>.json``: the bounds of its rollout sleeps measured with perf_counter
around and inside each block, and the methods called on the communicator by each dump.
"""

import json
import sys
import time

import numpy as np
from recording import Recording

from spinfast import mpi_tools
from spinfast.logx import EpochLogger

comm, rank, size = mpi_tools._resolve()
recording = Recording(comm)
mpi_tools._world = (recording, rank, size)
logger = EpochLogger(output_dir="out", formats="txt,csv,jsonl,tensorboard",
                     system_metrics=True)
ballast = np.ones(200 * 2**20 // 8) if rank == 1 else None
rollout = 0.12 if rank == size - 1 else 0.02
bounds, per_dump = [], []
for epoch in range(int(sys.argv[1])):
    before = time.perf_counter()
    with logger.timer("RolloutTime"):
        start = time.perf_counter()
        time.sleep(rollout)
        inner = time.perf_counter() - start
    bounds.append((inner, time.perf_counter() - before))
    with logger.timer("UpdateTime"):
        time.sleep(0.01)
    logger.log_tabular("Epoch", epoch)
    logger.log_tabular("RolloutTime", with_min_and_max=True)
    logger.log_tabular("UpdateTime", with_min_and_max=True)
    logger.log_tabular("TotalEnvInteracts", 1000 * (epoch + 1))
    logger.log_tabular("SPS", rate="TotalEnvInteracts")
    recording.calls.clear()
    logger.dump_tabular()
    per_dump.append(list(recording.calls))
logger.close()
with open(f"out{rank}.json", "w") as f:
    json.dump({"bounds": bounds, "calls": per_dump, "ballast": float(ballast.sum())
               if ballast is not None else 0.0}, f)
