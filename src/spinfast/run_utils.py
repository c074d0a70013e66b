"""Launch experiments and hyperparameter grids, as ``spinup.utils.run_utils``.

:func:`call_experiment` runs a function in a fresh Python process (the function and its
arguments are serialized with cloudpickle to a file, not passed on the command line), with
logger settings from :func:`setup_logger_kwargs`, optionally split into MPI ranks.
:class:`ExperimentGrid` names and runs every combination of a set of parameter values; beyond
Spinning Up it can run several variants at once with a progress bar, per-variant log files,
a summary table, failures that do not stop the other variants, and skipping of variants that
already finished. Variants can also go to any executor (``concurrent.futures`` pools,
submitit's Slurm/local/debug executors, dask): each is handed over as an
:class:`ExperimentJob`, a small picklable record, and ``resume=True`` restarts unfinished
variants in their folders (as submitit does by itself after a preemption).

A variant (or any :func:`call_experiment` run) is **finished** when its output folder holds

1. ``progress.txt`` with a header line and at least one complete data row, and
2. ``spinfast_run.json`` (written by this module when the experiment process ends) recording
   exit status 0.

The status file is removed when a run starts, so a run that is interrupted, killed or fails
never counts as finished, even if it left rows in ``progress.txt``. Runs made by other tools
(e.g. Spinning Up itself) have no status file and are run again.

This module holds the public API. The job record, running it, status files and stopping
processes are in :mod:`spinfast._grid.jobs`; running many jobs at once (executors, progress bar,
summary table) in :mod:`spinfast._grid.executors`.
"""

from __future__ import annotations

import string
import subprocess
from textwrap import dedent

from spinfast import user_config
from spinfast._grid.executors import Variant, countdown, result_of, run_batch
from spinfast._grid.jobs import (
    DIV_LINE_WIDTH,
    STATUS_FILE,
    ExperimentJob,
    VariantResult,
    check_executor,
    check_resume,
    cpu_count,
    is_finished,
    make_job,
    resolve_num_cpu,
    skipped_if_finished,
)
from spinfast._grid.naming import setup_logger_kwargs
from spinfast._logger.console import colorize
from spinfast.serialization_utils import convert_json

__all__ = ["setup_logger_kwargs", "call_experiment", "ExperimentGrid", "VariantResult",
           "ExperimentJob", "is_finished", "valid_str", "all_bools", "DIV_LINE_WIDTH",
           "STATUS_FILE"]


# ---------------------------------------------------------------------------------------------
# Launching one experiment
# ---------------------------------------------------------------------------------------------

def _end_message(output_dir):
    plot_cmd = colorize("python -m spinfast.run plot " + str(output_dir), "green")
    test_cmd = colorize("python -m spinfast.run test_policy " + str(output_dir), "green")
    return ("\n" * 5 + "=" * DIV_LINE_WIDTH + "\n" + "End of experiment.\n\n\n"
            "Plot results from this run with:\n\n" + plot_cmd + "\n\n\n"
            "Watch the trained agent with:\n\n" + test_cmd + "\n\n\n"
            + "=" * DIV_LINE_WIDTH + "\n" * 5)


_ERROR_MESSAGE = "\n" * 3 + "=" * DIV_LINE_WIDTH + "\n" + dedent("""
    There appears to have been an error in your experiment.

    Check the traceback above to see what actually went wrong. The
    traceback below, included for completeness (but probably not useful
    for diagnosing the error), shows the stack leading up to the
    experiment launch.
    """) + "=" * DIV_LINE_WIDTH + "\n" * 3


def call_experiment(exp_name, thunk, seed=0, num_cpu=1, data_dir=None, datestamp=False,
                    executor=None, resume=False, **kwargs):
    """Run ``thunk(**kwargs)`` in a fresh Python process, with logger settings and MPI.

    ``seed`` and ``logger_kwargs`` (from :func:`setup_logger_kwargs`, unless given in
    ``kwargs``) are added to the thunk's keyword arguments. If ``env_name`` is among them it
    is replaced by ``env_fn``, a function making that gymnasium environment (gymnasium is
    imported only then); for a thunk from Spinning Up (``spinup.*``), which calls
    ``o = env.reset()``, the environment has gym's old API
    (:class:`spinfast.gym_compat.OldApiEnv`), and the experiment process installs
    :mod:`spinfast.compat`. The thunk (by reference when importable, else by value) and its
    arguments are serialized with cloudpickle into an :class:`ExperimentJob`, which runs
    ``python -m spinfast._grid.experiment``; that splits into ``num_cpu`` MPI processes with
    :func:`spinfast.mpi_tools.mpi_fork` before calling the thunk. Prints the experiment's
    name and kwargs before, and the commands to plot and test it after.

    Args:
        exp_name: experiment name.
        thunk: the function to run (picklable by cloudpickle).
        seed: seed passed to the thunk.
        num_cpu: MPI processes, or ``'auto'`` for one per available CPU.
        data_dir: where results go (default ``user_config.DEFAULT_DATA_DIR``).
        datestamp: add date and time to folder names.
        executor: None to run here, or anything with ``submit(fn)`` returning an object with
            ``.result()`` (a ``concurrent.futures`` pool, a submitit executor, a dask
            ``Client``): the job runs there and its output goes to ``<output_dir>.log``. A
            submitit Slurm job requeued by Slurm is waited for until its last attempt.
        resume: restart in the existing output folder: nothing runs if it holds a finished
            run, else the thunk's ``logger_kwargs`` dict gets ``resume=True`` (the thunk's
            logger must accept it). Needs ``datestamp=False``.
        **kwargs: keyword arguments of the thunk.

    Returns:
        the run's :class:`VariantResult` (status ``'skipped'`` when resuming a finished run).

    Raises:
        TypeError: ``exp_name`` not a string, ``thunk`` not callable or not serializable,
            ``executor`` without ``submit``.
        ValueError: bad ``num_cpu``; ``resume`` with datestamps.
        subprocess.CalledProcessError: the experiment process failed, or Slurm ended its job
            without a result (cancelled: ``returncode`` None).
        Exception: what the executor's ``result()`` raises when the job itself failed.
    """
    check_executor(executor, "call_experiment")
    if resume:
        check_resume("resume", datestamp, "call_experiment")
    job = make_job(exp_name, thunk, seed, num_cpu, data_dir, datestamp, kwargs,
                   "call_experiment", log=executor is not None, resume=resume)
    skipped = skipped_if_finished(exp_name, job.output_dir) if resume else None
    if skipped is not None:
        return skipped
    print(job.header, end="", flush=True)
    if executor is None:
        result = job()
    else:
        print(f"Submitted to {type(executor).__name__}; output goes to {job.log_path}",
              flush=True)
        result = result_of(executor.submit(job), exp_name, job.output_dir, job.log_path)
    if result.returncode != 0:
        print(_ERROR_MESSAGE + (f"\n{result.error}\n" if result.error else ""))
        raise subprocess.CalledProcessError(result.returncode,
                                            ["python", "-m", "spinfast._grid.experiment", exp_name])
    print(_end_message(job.output_dir), end="")
    return result


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def all_bools(vals):
    """Return True if every value in ``vals`` is a bool."""
    return all(isinstance(v, bool) for v in vals)


_VALID_CHARS = frozenset("-_" + string.ascii_letters + string.digits)
_ALNUM = frozenset(string.ascii_letters + string.digits)


def valid_str(v):
    """Return a filesystem-safe string for ``v``, as used in variant names.

    Objects with ``__name__`` (functions, classes) give their name; lists and tuples their
    items joined by ``-``; anything else ``str(v).lower()`` with every character other than
    ``-``, ``_``, ASCII letters and digits replaced by ``-``.
    """
    if hasattr(v, "__name__"):
        return valid_str(v.__name__)
    if isinstance(v, (tuple, list)):
        return "-".join(valid_str(x) for x in v)
    return "".join(c if c in _VALID_CHARS else "-" for c in str(v).lower())


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------

class ExperimentGrid:
    """Run many experiments over given hyperparameter ranges.

    Args:
        name: grid name; it starts every variant's name.
    """

    def __init__(self, name=""):
        self.keys = []
        self.vals = []
        self.shs = []
        self.in_names = []
        self.name(name)

    def name(self, _name):
        """Set the grid's name.

        Raises:
            TypeError: ``_name`` is not a string.
        """
        if not isinstance(_name, str):
            raise TypeError(f"ExperimentGrid.name(): name must be a string, got {_name!r}; "
                            f"pass a str")
        self._name = _name

    def print(self):
        """Print a report of the grid: each key, its shorthand and values, and the counts."""
        print("=" * DIV_LINE_WIDTH)
        base_msg = "ExperimentGrid %s runs over parameters:\n"
        name_insert = "[" + self._name + "]"
        if len(base_msg % name_insert) <= DIV_LINE_WIDTH:
            msg = base_msg % name_insert
        else:
            msg = base_msg % (name_insert + "\n")
        print(colorize(msg, "green", bold=True))
        for k, v, sh in zip(self.keys, self.vals, self.shs, strict=True):
            color_k = colorize(k.ljust(40), "cyan", bold=True)
            print("", color_k, "[" + sh + "]" if sh is not None else "", "\n")
            for val in v:
                print("\t" + str(convert_json(val)))
            print()
        nvars_total = 1
        for v in self.vals:
            nvars_total *= len(v)
        if "seed" in self.keys:
            nvars_seedless = nvars_total // len(self.vals[self.keys.index("seed")])
        else:
            nvars_seedless = nvars_total
        print(" Variants, counting seeds: ".ljust(40), nvars_total)
        print(" Variants, not counting seeds: ".ljust(40), nvars_seedless)
        print()
        print("=" * DIV_LINE_WIDTH)

    @staticmethod
    def _default_shorthand(key):
        """First three characters of each ``:``-separated term, letters and digits kept."""
        return "-".join("".join(c for c in term[:3] if c in _ALNUM) for term in key.split(":"))

    def add(self, key, vals, shorthand=None, in_name=False):
        """Add a parameter ``key`` with its possible values ``vals`` to the grid.

        Args:
            key: parameter name; ``a:b:c`` makes the nested ``{'a': {'b': {'c': v}}}``.
            vals: a value or a list of values.
            shorthand: short name used in variant names; default (with
                ``user_config.DEFAULT_SHORTHAND``) the first three letters and digits of each
                ``:``-separated term, joined by ``-``.
            in_name: put this parameter in variant names even with a single value.

        Raises:
            TypeError: ``key`` or ``shorthand`` is not a string.
            ValueError: ``vals`` is an empty list, or ``key`` is already in the grid.
        """
        if not isinstance(key, str):
            raise TypeError(f"ExperimentGrid.add(): key must be a string, got {key!r}; "
                            f"pass the parameter's name")
        if shorthand is not None and not isinstance(shorthand, str):
            raise TypeError(f"ExperimentGrid.add(): shorthand must be a string or None, got "
                            f"{shorthand!r}; pass a short name like 'lr'")
        if key in self.keys:
            raise ValueError(f"ExperimentGrid.add(): key {key!r} is already in the grid; add "
                             f"all its values in one call")
        if not isinstance(vals, list):
            vals = [vals]
        if not vals:
            raise ValueError(f"ExperimentGrid.add(): no values given for key {key!r}; pass at "
                             f"least one value")
        if user_config.DEFAULT_SHORTHAND and shorthand is None:
            shorthand = self._default_shorthand(key)
        self.keys.append(key)
        self.vals.append(vals)
        self.shs.append(shorthand)
        self.in_names.append(in_name)

    def variant_name(self, variant):
        """Return the exp_name of ``variant`` (a dict from :meth:`variants`).

        The grid name, then for each parameter with several values or ``in_name=True``
        (never ``seed``), in the order added: ``_<shorthand><value>``, or for all-boolean
        parameters ``_<shorthand>`` when True and nothing when False. Leading ``_`` stripped.

        Raises:
            KeyError: a grid parameter is missing from ``variant``.
        """
        def get_val(v, k):
            if k in v:
                return v[k]
            head, sep, rest = k.partition(":")
            if sep and isinstance(v.get(head), dict):
                return get_val(v[head], rest)
            raise KeyError(f"ExperimentGrid.variant_name(): variant has no value for {k!r}; "
                           f"pass a dict made by variants()")

        var_name = self._name
        for k, v, sh, inn in zip(self.keys, self.vals, self.shs, self.in_names, strict=True):
            if (len(v) > 1 or inn) and k != "seed":
                param_name = valid_str(sh if sh is not None else k)
                variant_val = get_val(variant, k)
                if all_bools(v):
                    var_name += ("_" + param_name) if variant_val else ""
                else:
                    var_name += "_" + param_name + valid_str(variant_val)
        return var_name.lstrip("_")

    def _flat_variants(self):
        """All combinations as flat dicts; the first key added varies slowest."""
        variants = [{}]
        for key, vals in zip(reversed(self.keys), reversed(self.vals), strict=True):
            variants = [{key: val, **rest} for val in vals for rest in variants]
        return variants

    def variants(self):
        """Return a list of dicts, one per combination of values in the grid.

        Keys of the form ``'a:b:c'`` become nested dicts: ``{'a': {'b': {'c': value}}}``.

        Raises:
            ValueError: two keys assign to the same nested name (e.g. ``'a'`` and ``'a:b'``).
        """
        def unflatten(var):
            new_var, nested = {}, set()
            for k, v in var.items():
                head, sep, rest = k.partition(":")
                if sep:
                    if head in new_var and head not in nested:
                        raise ValueError(f"ExperimentGrid.variants(): key {k!r} assigns inside "
                                         f"{head!r}, which already has a value; you can't "
                                         f"assign multiple values to the same key")
                    new_var.setdefault(head, {})[rest] = v
                    nested.add(head)
                else:
                    if k in new_var:
                        raise ValueError(f"ExperimentGrid.variants(): key {k!r} is assigned "
                                         f"twice; you can't assign multiple values to the "
                                         f"same key")
                    new_var[k] = v
            for k in nested:
                new_var[k] = unflatten(new_var[k])
            return new_var

        return [unflatten(var) for var in self._flat_variants()]

    # -- running ------------------------------------------------------------------------------

    def run(self, thunk, num_cpu=1, data_dir=None, datestamp=False, parallel=None,
            skip_finished=False, executor=None, resume=False):
        """Run each variant of the grid with ``thunk``, named by :meth:`variant_name`.

        With ``parallel=None`` and no executor (Spinning Up's way) variants run one after
        another through :func:`call_experiment`, printing to the terminal, and the first
        failure raises. With ``parallel=k`` up to ``k`` variants run at once on this machine
        (``'auto'``: as many as fit the available CPUs at ``num_cpu`` MPI processes each); with
        ``executor`` each variant is submitted to it as an :class:`ExperimentJob` (a small
        picklable record, nothing of the grid). In both cases each variant's output goes to
        the log file ``<output_dir>.log``, a progress bar counts finished variants, a failing
        variant is reported and the others go on, and a summary table (variant, seconds,
        status) ends the run.

        Args:
            thunk: a callable, or the name of a grid parameter whose values are callables.
            num_cpu: MPI processes per variant (int or ``'auto'``), started inside each job
                by ``srun`` under Slurm, else ``mpiexec``.
            data_dir: where results go (default ``user_config.DEFAULT_DATA_DIR``).
            datestamp: add date and time to folder names.
            parallel: None, an int >= 1, or ``'auto'``.
            skip_finished: skip variants whose output folder holds a finished run (see the
                module docstring); needs ``datestamp=False``.
            executor: anything with ``submit(fn)`` returning an object with ``.result()``:
                ``concurrent.futures.ProcessPoolExecutor``, submitit's ``AutoExecutor``,
                ``SlurmExecutor``, ``LocalExecutor``, ``DebugExecutor``, a dask ``Client``.
                A Slurm job that Slurm or submitit requeues (preemption, ``scontrol
                requeue``, time limit) is waited for until its last attempt, which resumes
                in its folder; the summary says ``requeued Nx``. A cancelled one is reported
                ``'cancelled'``, and the others go on.
            resume: skip finished variants and restart the others in their existing folders,
                with ``resume=True`` added to each thunk's ``logger_kwargs`` dict (the thunk's
                logger must accept it); needs ``datestamp=False``.

        Returns:
            list of :class:`VariantResult`, one per variant, in grid order.

        Raises:
            TypeError: ``thunk`` is neither callable nor a grid key; ``executor`` has no
                ``submit``.
            ValueError: bad ``parallel``/``num_cpu``, both ``parallel`` and ``executor``, or
                ``skip_finished``/``resume`` with datestamps.
            subprocess.CalledProcessError: a variant failed (``parallel=None`` without
                executor only).
        """
        if isinstance(thunk, str):
            if thunk not in self.keys:
                raise TypeError(f"ExperimentGrid.run(): thunk {thunk!r} is not a grid key; "
                                f"pass a callable or the name of a parameter holding "
                                f"callables (keys: {self.keys})")
        elif not callable(thunk):
            raise TypeError(f"ExperimentGrid.run(): thunk must be callable or a grid key, got "
                            f"{thunk!r}; pass the experiment function")
        ncpu = resolve_num_cpu(num_cpu, "ExperimentGrid.run")
        check_executor(executor, "ExperimentGrid.run")
        if parallel is not None:
            if executor is not None:
                raise ValueError(f"ExperimentGrid.run(): pass parallel or executor, not both "
                                 f"(parallel={parallel!r}, executor={executor!r}); the "
                                 f"executor decides how many variants run at once")
            if parallel == "auto":
                parallel = max(1, cpu_count() // ncpu)
            elif isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
                raise ValueError(f"ExperimentGrid.run(): parallel must be None, an int >= 1 or "
                                 f"'auto', got {parallel!r}; pass how many variants may run "
                                 f"at once")
        if skip_finished:
            check_resume("skip_finished", datestamp, "ExperimentGrid.run")
        if resume:
            check_resume("resume", datestamp, "ExperimentGrid.run")

        self.print()
        variants = self.variants()
        names = sorted({self.variant_name(var) for var in variants})
        line = "=" * DIV_LINE_WIDTH
        preparing = colorize("Preparing to run the following experiments...", "green",
                             bold=True)
        print(f"\n{preparing}\n\n" + "\n".join(names) + f"\n\n{line}")
        countdown(line)

        todo = []
        for var in variants:
            var = dict(var)
            exp_name = self.variant_name(var)
            thunk_ = var.pop(thunk) if isinstance(thunk, str) else thunk
            todo.append(Variant(exp_name, thunk_, var,
                                self._output_dir_of(exp_name, var, data_dir, datestamp)))
        if parallel is None and executor is None:
            return self._run_sequential(todo, num_cpu, data_dir, datestamp,
                                        skip_finished or resume, resume)
        return run_batch(todo, executor, parallel, ncpu, data_dir, datestamp,
                         skip_finished or resume, resume)

    @staticmethod
    def _output_dir_of(exp_name, var, data_dir, datestamp):
        lk = var.get("logger_kwargs")
        if isinstance(lk, dict):
            return lk.get("output_dir")
        return setup_logger_kwargs(exp_name, var.get("seed", 0), data_dir,
                                   datestamp)["output_dir"]

    @staticmethod
    def _run_sequential(variants, num_cpu, data_dir, datestamp, skip_finished, resume):
        results = []
        for exp_name, thunk_, var, out in variants:
            skipped = skipped_if_finished(exp_name, out) if skip_finished else None
            results.append(skipped or call_experiment(
                exp_name, thunk_, num_cpu=num_cpu, data_dir=data_dir, datestamp=datestamp,
                resume=resume, **var))
        return results
