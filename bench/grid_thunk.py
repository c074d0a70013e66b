"""The experiment of ``bench_grid.py``, in a module that imports only ``os``.

Each experiment process imports its thunk's module; keeping it light keeps the measured time
the grid's own.
"""

import os


def make_folder(seed, logger_kwargs):
    """Make the run's output folder and return."""
    os.makedirs(logger_kwargs["output_dir"], exist_ok=True)
