"""The experiment of tests/test_slurm.py: a few epochs whose rows depend only on seed and ranks.

``train(seed, logger_kwargs, epochs=4, sleep=0.0)`` (as ``python -m spinfast.run
slurm_train:train``, with this folder on ``PYTHONPATH``, or as a grid's thunk): each epoch
every rank stores numbers drawn from a generator seeded by (seed, epoch, rank), then the row
holds ``Epoch``, ``Value`` (their mean over ranks), ``Ranks`` (``num_procs()``) and
``MeanRank`` (``mpi_avg`` of the rank: (n - 1) / 2 for n ranks); a checkpoint follows each row,
and a run given ``resume=True`` goes on from the last one. Each epoch sleeps ``sleep`` seconds
first. Rank 0 appends ``"<resume> <first epoch> <SLURM_RESTART_COUNT or ->"`` to
``attempts.txt`` in the output folder when it starts.

``python slurm_train.py OUT_DIR`` is one rank launched by a test's own ``srun``: it calls
``mpi_fork(2)`` and trains into ``OUT_DIR``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time

import numpy as np

from spinfast.logx import EpochLogger
from spinfast.mpi_tools import mpi_avg, mpi_fork, num_procs, proc_id


def train(seed, logger_kwargs, epochs=4, sleep=0.0):
    """Train: see the module's docstring."""
    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(formats="txt", **logger_kwargs)
    first = (logger.load_state() or {"next_epoch": 0})["next_epoch"]
    if proc_id() == 0:
        with open(os.path.join(logger_kwargs["output_dir"], "attempts.txt"), "a") as f:
            f.write(f"{bool(logger_kwargs.get('resume'))} {first} "
                    f"{os.environ.get('SLURM_RESTART_COUNT', '-')}\n")
    for epoch in range(first, epochs):
        time.sleep(sleep)
        rng = np.random.default_rng([seed, epoch, proc_id()])
        for value in rng.normal(size=5):
            logger.store(Value=value)
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Value", average_only=True)
        logger.log_tabular("Ranks", num_procs())
        logger.log_tabular("MeanRank", float(mpi_avg(float(proc_id()))))
        with contextlib.redirect_stdout(io.StringIO()):
            logger.dump_tabular()
        logger.save_state({"next_epoch": epoch + 1})
    logger.close()


if __name__ == "__main__":
    mpi_fork(2)
    train(0, {"output_dir": sys.argv[1]})
