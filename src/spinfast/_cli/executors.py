"""``--executor slurm|local``: the submitit executor a grid's variants are submitted to."""

from __future__ import annotations

import os.path as osp

from spinfast._cli.common import UsageError, suggest

__all__ = ["EXECUTORS", "SLURM_PREFIX", "slurm_parameters", "make_executor"]

#: ``--executor`` values; ``--slurm_KEY V`` flags set submitit's Slurm parameter KEY.
EXECUTORS = ("slurm", "local")
SLURM_PREFIX = "slurm_"


def slurm_parameters(grid_name, num_cpu, options):
    """Return the parameters of submitit's ``SlurmExecutor.update_parameters`` for a grid.

    One job per variant: one node, one task holding ``cpus_per_task`` CPUs (default
    ``num_cpu``, at least 1), in which the experiment starts its ``num_cpu`` MPI ranks with
    ``srun`` (see :func:`spinfast.mpi_tools.mpi_fork`); ``time`` 60 minutes unless given.
    ``options`` (from ``--slurm_KEY V``) override any of them and add others (``partition``,
    ``mem_gb``, ``gpus_per_node``, ``account``, ``qos``, ``constraint``, ...).
    """
    params = dict(job_name=grid_name or "spinfast", nodes=1, ntasks_per_node=1,
                  cpus_per_task=num_cpu if isinstance(num_cpu, int) and num_cpu > 1 else 1,
                  time=60)
    params.update(options)
    return params


def make_executor(kind, data_dir, num_cpu, grid_name, options):
    """Build the submitit executor named by ``--executor``; return ``(executor, num_cpu)``.

    ``slurm``: a ``submitit.SlurmExecutor`` with :func:`slurm_parameters`; ``local``: a
    ``submitit.LocalExecutor`` whose time limit is ``options['time']`` minutes (default 60).
    Job logs go to ``DATA_DIR/submitit/<job id>``. ``num_cpu='auto'`` becomes the job's
    ``cpus_per_task`` under Slurm (one rank per CPU of the job).

    Raises:
        UsageError: unknown kind, submitit missing, no Slurm here, or a parameter submitit
            does not know.
    """
    from spinfast import user_config

    if kind not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}"
                         + suggest(str(kind), EXECUTORS))
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--executor {kind} needs submitit: pip install 'spinfast[cluster]'") \
            from None
    folder = osp.join(data_dir or user_config.DEFAULT_DATA_DIR, "submitit", "%j")
    try:
        if kind == "slurm":
            params = slurm_parameters(grid_name, num_cpu, options)
            if num_cpu == "auto":
                num_cpu = params["cpus_per_task"]
            executor = submitit.SlurmExecutor(folder=folder)
            executor.update_parameters(**params)
        else:
            options = dict(options)
            minutes = options.pop("time", 60)
            if options:
                raise UsageError(f"--executor local takes only --{SLURM_PREFIX}time, got "
                                 + ", ".join(f"--{SLURM_PREFIX}{k}" for k in options))
            executor = submitit.LocalExecutor(folder=folder)
            executor.update_parameters(timeout_min=minutes)
    except RuntimeError as exc:  # no srun: not on a Slurm cluster
        raise UsageError(f"--executor {kind}: {exc}; submit from a Slurm login node, or use "
                         f"--executor local or --parallel K on this machine") from None
    except ValueError as exc:  # a parameter submitit does not know
        raise UsageError(f"--executor {kind}: {str(exc).splitlines()[0]}") from None
    return executor, num_cpu

