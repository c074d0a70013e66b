"""What :mod:`spinfast.run_utils` is made of (private): experiments as jobs, run anywhere.

- ``naming``: output folders of experiments (``setup_logger_kwargs``);
- ``jobs``: the picklable job an executor runs, running it, status files, stopping;
- ``executors``: many jobs at once, the progress bar, the summary;
- ``experiment``: the process that runs one experiment (``python -m spinfast._grid.experiment``).
"""
