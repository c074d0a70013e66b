"""Grid overhead per variant: an executor (``ProcessPoolExecutor(2)``) against ``parallel=2``.

Both run the same 8 variants of a function that only makes its output folder, so the time is
the grid's own overhead: building each job, handing it to a worker, starting the experiment
process, recording its status, the progress bar and summary. The executor's pool is created
inside the timed region, as a user would create one per grid.

Run: ``python -m pytest bench/bench_grid.py -p no:cacheprovider`` (add ``--check-targets``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import itertools

from conftest import alternating
from grid_thunk import make_folder

from spinfast import user_config
from spinfast.run_utils import ExperimentGrid

VARIANTS = 8


def test_grid_overhead(benchmark, tmp_path, monkeypatch):
    # The target allows for timing noise: the two sides start the same processes.
    monkeypatch.setattr(user_config, "WAIT_BEFORE_LAUNCH", 0)
    grid = ExperimentGrid("b")
    grid.add("seed", list(range(VARIANTS)))
    rounds = itertools.count()

    def run_grid(impl):
        data_dir = str(tmp_path / str(next(rounds)))
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            if impl == "spinfast":
                with concurrent.futures.ProcessPoolExecutor(2) as pool:
                    results = grid.run(make_folder, data_dir=data_dir, executor=pool)
            else:
                results = grid.run(make_folder, data_dir=data_dir, parallel=2)
        assert [r.status for r in results] == ["ok"] * VARIANTS

    alternating(benchmark, f"grid of {VARIANTS} variants, 2 at once (executor vs parallel=)",
                0.9, 7, lambda: run_grid("spinfast"), lambda: run_grid("reference"),
                warmup_rounds=1)
