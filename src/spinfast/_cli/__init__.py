"""The parts of the command line ``python -m spinfast.run`` (:mod:`spinfast.run`).

Private to spinfast. :mod:`spinfast.run` holds the help text and the dispatch; each command
lives here in its own module:

- :mod:`~spinfast._cli.common`: the usage error, close-name suggestions, flag checks;
- :mod:`~spinfast._cli.grid`: ``MODULE:FUNCTION`` grids (flag parsing, loading the function);
- :mod:`~spinfast._cli.executors`: ``--executor slurm|local`` (submitit);
- :mod:`~spinfast._cli.spinup`: Spinning Up's algorithm names and ``compat``;
- :mod:`~spinfast._cli.demo`: ``demo``;
- :mod:`~spinfast._cli.info`: ``info`` (versions, MPI library, launcher).

A new command is one module here, a line in ``COMMANDS`` and a branch in ``run._dispatch``.
"""
