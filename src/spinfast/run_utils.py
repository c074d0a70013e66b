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
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import os.path as osp
import pickle
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from textwrap import dedent

from spinfast import user_config
from spinfast.serialization_utils import convert_json, dumps_config

__all__ = ["setup_logger_kwargs", "call_experiment", "ExperimentGrid", "VariantResult",
           "ExperimentJob", "is_finished", "valid_str", "all_bools", "DIV_LINE_WIDTH",
           "STATUS_FILE"]

DIV_LINE_WIDTH = 80
STATUS_FILE = "spinfast_run.json"


def _colorize(string_, color, bold=False):
    # logx is light to import, but keep run_utils importable on its own.
    from spinfast.logx import colorize

    return colorize(string_, color, bold=bold)


def setup_logger_kwargs(exp_name, seed=None, data_dir=None, datestamp=False):
    """Return ``dict(output_dir=..., exp_name=exp_name)`` for a Logger.

    Folder layout (``data_dir`` defaults to ``user_config.DEFAULT_DATA_DIR``):

    - no seed: ``data_dir/exp_name``
    - seed: ``data_dir/exp_name/exp_name_s<seed>``
    - datestamp (or ``user_config.FORCE_DATESTAMP``): ``data_dir/<Y-m-d>_exp_name`` and, with a
      seed, ``.../<Y-m-d_H-M-S>-exp_name_s<seed>`` inside it.

    Args:
        exp_name: experiment name.
        seed: seed of the run, or None.
        data_dir: folder holding all experiments.
        datestamp: prefix folder names with the date (and time).

    Returns:
        dict with keys ``output_dir`` and ``exp_name``.

    Raises:
        TypeError: ``exp_name`` is not a string.
    """
    if not isinstance(exp_name, str):
        raise TypeError(f"setup_logger_kwargs(): exp_name must be a string, got {exp_name!r}; "
                        f"pass the experiment's name")
    datestamp = datestamp or user_config.FORCE_DATESTAMP
    relpath = (time.strftime("%Y-%m-%d_") if datestamp else "") + exp_name
    if seed is not None:
        if datestamp:
            subfolder = time.strftime("%Y-%m-%d_%H-%M-%S") + "-" + exp_name + "_s" + str(seed)
        else:
            subfolder = exp_name + "_s" + str(seed)
        relpath = osp.join(relpath, subfolder)
    data_dir = os.fspath(data_dir) if data_dir else user_config.DEFAULT_DATA_DIR
    return dict(output_dir=osp.join(data_dir, relpath), exp_name=exp_name)


# ---------------------------------------------------------------------------------------------
# Launching one experiment
# ---------------------------------------------------------------------------------------------

def _resolve_num_cpu(num_cpu, func):
    if num_cpu == "auto":
        return _cpu_count()
    if isinstance(num_cpu, bool) or not isinstance(num_cpu, int) or num_cpu < 1:
        raise ValueError(f"{func}(): num_cpu must be an int >= 1 or 'auto', got {num_cpu!r}; "
                         f"pass the number of MPI processes")
    return num_cpu


def _cpu_count():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _thunk_ref(thunk):
    """Name ``thunk`` as ``'module:qualname'`` when importing that gives it back, else pickle it.

    Functions defined at module level travel by reference (a short string any worker
    imports); lambdas, closures, bound methods, partials and functions of ``__main__`` travel
    as cloudpickle bytes.
    """
    module = getattr(thunk, "__module__", None)
    qualname = getattr(thunk, "__qualname__", None)
    if (isinstance(module, str) and isinstance(qualname, str) and module != "__main__"
            and "<" not in qualname):
        from spinfast._experiment import resolve_thunk

        ref = f"{module}:{qualname}"
        try:
            if resolve_thunk(ref) is thunk:
                return ref
        except Exception:  # not importable by name: pickle it by value instead
            pass
    import cloudpickle

    return cloudpickle.dumps(thunk)


# Experiment processes started by jobs running in this process (thread pools), so that an
# interrupted grid can stop them; and the runs interrupted (Ctrl-C) in this process, whose
# jobs still queued here then start nothing.
_running: dict = {}
_running_lock = threading.Lock()
_interrupted: set = set()


@dataclass(frozen=True)
class ExperimentJob:
    """One experiment as a small picklable record; calling it runs the experiment.

    This is what :func:`call_experiment` and :meth:`ExperimentGrid.run` hand to an executor
    (``executor.submit(job)``): names, the thunk by reference (or pickled), its pickled
    kwargs and the output folder, nothing of the grid. Calling it, in any process on any
    machine that shares the output file system, writes the payload to a temporary folder
    beside the log file, runs ``python -m spinfast._experiment`` (which forks ``num_cpu`` MPI
    ranks through the site's launcher), records the exit status in the output folder and
    returns a :class:`VariantResult`.

    It is checkpointable for submitit: when Slurm preempts the job or its time runs out,
    submitit calls :meth:`checkpoint` and requeues the same job with ``resume=True``.

    Attributes:
        exp_name: the experiment's name.
        output_dir: its output folder, or None if the thunk's ``logger_kwargs`` has none.
        log_path: file receiving the experiment's stdout and stderr; None: this process's.
        header: what is written at the top of the log (name and kwargs).
        thunk: ``'module:qualname'`` or cloudpickle bytes of the function.
        kwargs: cloudpickle bytes of the thunk's keyword arguments (``seed`` and
            ``logger_kwargs`` included).
        num_cpu: MPI processes.
        resume: add ``resume=True`` to the thunk's ``logger_kwargs`` dict, and append to the
            log instead of replacing it.
        sys_path: the submitting process's ``sys.path``, appended in the experiment process.
        compat: install :mod:`spinfast.compat` in the experiment process (it was active when
            submitting, or the thunk is Spinning Up's).
        old_gym_api: ``env_name`` becomes an environment with gym's old API (a Spinning Up
            thunk), else a gymnasium one.
        run_id: the grid run (or call) the job belongs to; once a job of it is interrupted
            in a process (Ctrl-C), its other jobs queued in that process start nothing.
    """

    exp_name: str
    output_dir: str | None
    log_path: str | None
    header: str
    thunk: str | bytes
    kwargs: bytes
    num_cpu: int
    resume: bool = False
    sys_path: tuple = ()
    compat: bool = False
    old_gym_api: bool = False
    run_id: str = ""

    def __call__(self):
        """Run the experiment and return its :class:`VariantResult`."""
        try:
            return _run_job(self)
        except KeyboardInterrupt:
            if self.run_id:
                _interrupted.add(self.run_id)
            raise

    def checkpoint(self, *args, **kwargs):
        """Return this job with ``resume=True`` as a submitit ``DelayedSubmission``.

        submitit calls this (as on its ``helpers.Checkpointable``) when the job is preempted
        or times out, and requeues what it returns: the experiment restarts in its folder.
        """
        import dataclasses

        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(dataclasses.replace(self, resume=True), *args, **kwargs)


def _log_path_of(exp_name, output_dir, data_dir):
    if output_dir:
        return output_dir.rstrip(os.sep) + ".log"
    # the thunk got logger_kwargs without an output_dir
    return osp.join(data_dir or user_config.DEFAULT_DATA_DIR, exp_name + ".log")


def _make_job(exp_name, thunk, seed, num_cpu, data_dir, datestamp, kwargs, func, log=False,
              resume=False, run_id=""):
    """Check the arguments, serialize the thunk and kwargs, return an :class:`ExperimentJob`."""
    if not isinstance(exp_name, str):
        raise TypeError(f"{func}(): exp_name must be a string, got {exp_name!r}; "
                        f"pass the experiment's name")
    if not callable(thunk):
        raise TypeError(f"{func}(): thunk must be callable, got {thunk!r}; pass the function "
                        f"that runs the experiment")
    num_cpu = _resolve_num_cpu(num_cpu, func)
    import cloudpickle

    kwargs = dict(kwargs)
    kwargs["seed"] = seed
    header = (_colorize("Running experiment:\n", "cyan", bold=True) + "\n" + exp_name + "\n\n"
              + _colorize("with kwargs:\n", "cyan", bold=True) + "\n"
              + dumps_config(convert_json(kwargs)) + "\n\n\n")
    if "logger_kwargs" not in kwargs:
        kwargs["logger_kwargs"] = setup_logger_kwargs(exp_name, seed, data_dir, datestamp)
    else:
        header += "Note: Call experiment is not handling logger_kwargs.\n\n"
    logger_kwargs = kwargs["logger_kwargs"]
    output_dir = logger_kwargs.get("output_dir") if isinstance(logger_kwargs, dict) else None
    output_dir = os.fspath(output_dir) if output_dir else None

    from spinfast import compat

    # A Spinning Up algorithm needs compat in its process to import (spinup/__init__.py
    # would import every algorithm and TF1) and gets gym's old API for env_name.
    spinup_thunk = _from_spinup(thunk)
    try:
        thunk_ref = _thunk_ref(thunk)
        kwargs_bytes = cloudpickle.dumps(kwargs)
    except Exception as exc:
        raise TypeError(f"{func}(): could not serialize the experiment {exp_name!r} with "
                        f"cloudpickle ({type(exc).__name__}: {exc}); make the thunk and its "
                        f"kwargs picklable") from exc
    return ExperimentJob(exp_name=exp_name, output_dir=output_dir,
                         log_path=_log_path_of(exp_name, output_dir, data_dir) if log else None,
                         header=header, thunk=thunk_ref, kwargs=kwargs_bytes, num_cpu=num_cpu,
                         resume=bool(resume), sys_path=tuple(sys.path),
                         compat=compat.is_installed() or spinup_thunk,
                         old_gym_api=spinup_thunk, run_id=run_id)


def _stop_process(proc):
    """SIGTERM the experiment's process group; SIGKILL it if it outlives 10 seconds."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_running():
    """Stop every experiment process started by jobs of this process."""
    with _running_lock:
        procs = list(_running.values())
    for proc in procs:
        _stop_process(proc)


def _run_job(job):
    from spinfast.mpi_tools import _without_launch_vars

    out = job.output_dir
    if job.run_id and job.run_id in _interrupted:
        return VariantResult(job.exp_name, out, "failed", None, 0.0, job.log_path,
                             "interrupted")
    _clear_status(out)
    log_dir = None
    if job.log_path is not None:
        log_dir = osp.dirname(osp.abspath(job.log_path))
        os.makedirs(log_dir, exist_ok=True)
    payload_dir = tempfile.mkdtemp(prefix=".spinfast-job-", dir=log_dir)
    try:
        payload = osp.join(payload_dir, "experiment.pkl")
        with open(payload, "wb") as f:
            pickle.dump(dict(sys_path=list(job.sys_path), compat=job.compat,
                             exp_name=job.exp_name, old_gym_api=job.old_gym_api), f)
            pickle.dump(dict(thunk=job.thunk, kwargs=job.kwargs, num_cpu=job.num_cpu,
                             resume=job.resume), f)
        cmd = [sys.executable or "python", "-m", "spinfast._experiment", payload]
        # The experiment decides its own MPI world, even when this job was launched by srun.
        env = _without_launch_vars(os.environ)
        start = time.time()
        if job.log_path is None:
            returncode = subprocess.call(cmd, env=env)
        else:
            env["PYTHONUNBUFFERED"] = "1"
            with open(job.log_path, "a" if job.resume else "w") as log:
                log.write(job.header)
                log.flush()
                if job.run_id and job.run_id in _interrupted:
                    return VariantResult(job.exp_name, out, "failed", None, 0.0, job.log_path,
                                         "interrupted")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
                with _running_lock:
                    _running[proc.pid] = proc
                try:
                    returncode = proc.wait()
                except BaseException:  # interrupted, or preempted (submitit exits): stop it
                    _stop_process(proc)
                    raise
                finally:
                    with _running_lock:
                        _running.pop(proc.pid, None)
                log.write(f"\n[spinfast] experiment process exited with status {returncode} "
                          f"after {time.time() - start:.1f} s\n")
        seconds = time.time() - start
        _write_status(out, job.exp_name, returncode, seconds)
    finally:
        shutil.rmtree(payload_dir, ignore_errors=True)
    return VariantResult(job.exp_name, out, "ok" if returncode == 0 else "failed", returncode,
                         seconds, job.log_path)


def _from_spinup(thunk):
    """Return True if ``thunk`` (or the function of a ``functools.partial``) is Spinning Up's."""
    seen = 0
    while hasattr(thunk, "func") and seen < 10:  # functools.partial, possibly nested
        thunk, seen = thunk.func, seen + 1
    module = getattr(thunk, "__module__", None) or ""
    return module == "spinup" or module.startswith("spinup.")


def _end_message(output_dir):
    plot_cmd = _colorize("python -m spinfast.run plot " + str(output_dir), "green")
    test_cmd = _colorize("python -m spinfast.run test_policy " + str(output_dir), "green")
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


def _clear_status(output_dir):
    if output_dir:
        try:
            os.unlink(osp.join(output_dir, STATUS_FILE))
        except (FileNotFoundError, NotADirectoryError):
            pass


def _write_status(output_dir, exp_name, returncode, seconds):
    """Record how the experiment process ended (only if its output folder exists)."""
    if not output_dir or not osp.isdir(output_dir):
        return
    record = dict(exp_name=exp_name, exit_status=returncode, seconds=round(seconds, 3),
                  finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    tmp = osp.join(output_dir, f".{STATUS_FILE}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, osp.join(output_dir, STATUS_FILE))


def is_finished(output_dir):
    """Return True if the run in ``output_dir`` finished (see the module docstring).

    Args:
        output_dir: a run's output folder (path-like).

    Returns:
        True if ``progress.txt`` has a header and at least one complete row and
        ``spinfast_run.json`` records exit status 0.
    """
    output_dir = os.fspath(output_dir)
    try:
        with open(osp.join(output_dir, STATUS_FILE)) as f:
            status = json.load(f)
        if not isinstance(status, dict) or status.get("exit_status") != 0:
            return False
        with open(osp.join(output_dir, "progress.txt"), newline="") as f:
            lines = f.read().split("\n")
    except (OSError, ValueError):
        return False
    # A complete file ends with a newline: the last element is then empty.
    complete = lines[:-1]
    if len(complete) < 2:
        return False
    ncols = complete[0].count("\t")
    return any(line.count("\t") == ncols for line in complete[1:])


def _check_executor(executor, func):
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"{func}(): executor must have a submit(fn, *args) method returning a "
                        f"future, got {executor!r}; pass e.g. concurrent.futures."
                        f"ProcessPoolExecutor(2) or a submitit executor")


def _check_resume(flag_name, datestamp, func):
    if datestamp or user_config.FORCE_DATESTAMP:
        raise ValueError(f"{func}(): {flag_name}=True cannot find earlier runs when folder names "
                         f"carry a datestamp (datestamp={datestamp!r}, FORCE_DATESTAMP="
                         f"{user_config.FORCE_DATESTAMP!r}); turn datestamps off")


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
    ``python -m spinfast._experiment``; that splits into ``num_cpu`` MPI processes with
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
            ``Client``): the job runs there and its output goes to ``<output_dir>.log``.
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
        subprocess.CalledProcessError: the experiment process failed.
        Exception: what the executor's ``result()`` raises when the job itself failed.
    """
    _check_executor(executor, "call_experiment")
    if resume:
        _check_resume("resume", datestamp, "call_experiment")
    job = _make_job(exp_name, thunk, seed, num_cpu, data_dir, datestamp, kwargs,
                    "call_experiment", log=executor is not None, resume=resume)
    if resume and job.output_dir and is_finished(job.output_dir):
        print(_colorize(f"Skipping {exp_name}: {job.output_dir} holds a finished run.",
                        "yellow", bold=True))
        return VariantResult(exp_name, job.output_dir, "skipped", None, 0.0)
    print(job.header, end="", flush=True)
    if executor is None:
        result = job()
    else:
        print(f"Submitted to {type(executor).__name__}; output goes to {job.log_path}",
              flush=True)
        result = executor.submit(job).result()
    if result.returncode != 0:
        print(_ERROR_MESSAGE)
        raise subprocess.CalledProcessError(result.returncode,
                                            ["python", "-m", "spinfast._experiment", exp_name])
    print(_end_message(job.output_dir), end="")
    return result


def _completed(submitted):
    """Yield ``(future, index)`` pairs as their futures finish.

    ``concurrent.futures`` futures are waited on directly; other futures with ``done()``
    (submitit jobs, dask futures) are polled, every 10 ms at first, then less often up to
    once a second; anything else is waited on in order.
    """
    if all(isinstance(fut, concurrent.futures.Future) for fut, _ in submitted):
        index = {fut: i for fut, i in submitted}
        for fut in concurrent.futures.as_completed(index):
            yield fut, index[fut]
        return
    if not all(callable(getattr(fut, "done", None)) for fut, _ in submitted):
        yield from submitted
        return
    pending, delay = list(submitted), 0.01
    while pending:
        ready, still = [], []
        for pair in pending:
            (ready if pair[0].done() else still).append(pair)
        if ready:
            yield from ready
            delay = 0.01
        else:
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)
        pending = still


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

@dataclass
class VariantResult:
    """How one variant of :meth:`ExperimentGrid.run` went.

    Attributes:
        name: the variant's exp_name.
        output_dir: its output folder (None if the thunk was given its own logger_kwargs
            without one).
        status: ``'ok'``, ``'failed'`` or ``'skipped'`` (already finished).
        returncode: exit status of the experiment process (None if skipped).
        seconds: wall time of the run (0 if skipped).
        log_path: the per-variant log file (parallel mode and executors), else None.
        error: why a failed variant has no exit status (could not start, or the executor
            reported the job lost), else None.
    """

    name: str
    output_dir: str | None
    status: str
    returncode: int | None
    seconds: float
    log_path: str | None = None
    error: str | None = None


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
        print(_colorize(msg, "green", bold=True))
        for k, v, sh in zip(self.keys, self.vals, self.shs, strict=True):
            color_k = _colorize(k.ljust(40), "cyan", bold=True)
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
                Submitted jobs requeued by submitit after preemption resume in their folder.
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
        ncpu = _resolve_num_cpu(num_cpu, "ExperimentGrid.run")
        _check_executor(executor, "ExperimentGrid.run")
        if parallel is not None:
            if executor is not None:
                raise ValueError(f"ExperimentGrid.run(): pass parallel or executor, not both "
                                 f"(parallel={parallel!r}, executor={executor!r}); the "
                                 f"executor decides how many variants run at once")
            if parallel == "auto":
                parallel = max(1, _cpu_count() // ncpu)
            elif isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
                raise ValueError(f"ExperimentGrid.run(): parallel must be None, an int >= 1 or "
                                 f"'auto', got {parallel!r}; pass how many variants may run "
                                 f"at once")
        if skip_finished:
            _check_resume("skip_finished", datestamp, "ExperimentGrid.run")
        if resume:
            _check_resume("resume", datestamp, "ExperimentGrid.run")

        self.print()
        variants = self.variants()
        names = sorted({self.variant_name(var) for var in variants})
        line = "=" * DIV_LINE_WIDTH
        preparing = _colorize("Preparing to run the following experiments...", "green",
                              bold=True)
        print(f"\n{preparing}\n\n" + "\n".join(names) + f"\n\n{line}")
        self._wait_before_launch(line)

        jobs = []
        for var in variants:
            var = dict(var)
            exp_name = self.variant_name(var)
            if isinstance(thunk, str):
                thunk_ = var.pop(thunk)
            else:
                thunk_ = thunk
            jobs.append((exp_name, thunk_, var))

        if parallel is None and executor is None:
            return self._run_sequential(jobs, num_cpu, data_dir, datestamp,
                                        skip_finished or resume, resume)
        own_pool = None
        if executor is None:
            parallel = min(parallel, max(1, len(jobs)))
            if parallel * ncpu > _cpu_count():
                print(_colorize(f"Note: {parallel} variants x {ncpu} MPI processes exceed the "
                                f"{_cpu_count()} available CPUs; runs will share cores.",
                                "yellow", bold=True))
            # Threads suffice: each only waits for its experiment process.
            executor = own_pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)
        try:
            return self._run_batch(jobs, num_cpu, data_dir, datestamp, executor,
                                   skip_finished or resume, resume)
        finally:
            if own_pool is not None:
                own_pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _wait_before_launch(line):
        wait = user_config.WAIT_BEFORE_LAUNCH
        if wait <= 0:
            return
        from tqdm import trange

        print(_colorize(dedent("""
            Launch delayed to give you a few seconds to review your experiments.

            To customize or disable this behavior, set WAIT_BEFORE_LAUNCH in
            spinfast.user_config (environment variable SPINFAST_WAIT_BEFORE_LAUNCH).

            """), "cyan", bold=True) + line)
        steps = 100
        for _ in trange(steps, desc="Launching in...", leave=False, ncols=DIV_LINE_WIDTH,
                        mininterval=0.25, bar_format="{desc}: {bar}| {remaining} {elapsed}"):
            time.sleep(wait / steps)

    @staticmethod
    def _output_dir_of(exp_name, var, data_dir, datestamp):
        lk = var.get("logger_kwargs")
        if isinstance(lk, dict):
            return lk.get("output_dir")
        return setup_logger_kwargs(exp_name, var.get("seed", 0), data_dir,
                                   datestamp)["output_dir"]

    def _run_sequential(self, jobs, num_cpu, data_dir, datestamp, skip_finished, resume):
        results = []
        for exp_name, thunk_, var in jobs:
            out = self._output_dir_of(exp_name, var, data_dir, datestamp)
            if skip_finished and out and is_finished(out):
                print(_colorize(f"Skipping {exp_name}: {out} holds a finished run.", "yellow",
                                bold=True))
                results.append(VariantResult(exp_name, out, "skipped", None, 0.0))
                continue
            results.append(call_experiment(exp_name, thunk_, num_cpu=num_cpu,
                                           data_dir=data_dir, datestamp=datestamp,
                                           resume=resume, **var))
        return results

    def _run_batch(self, jobs, num_cpu, data_dir, datestamp, executor, skip_finished, resume):
        import uuid

        from tqdm import tqdm

        run_id = uuid.uuid4().hex
        results = [None] * len(jobs)
        ready, submitted = [], []  # (job, index), (future, index)
        bar = tqdm(total=len(jobs), desc="Variants", unit="variant", dynamic_ncols=True)

        def not_started(i, out, exc):
            results[i] = VariantResult(jobs[i][0], out, "failed", None, 0.0,
                                       error="did not start")
            bar.write(_colorize(f"Variant {jobs[i][0]} could not start: "
                                f"{type(exc).__name__}: {exc}", "red", bold=True))
            bar.update(1)

        try:
            for i, (exp_name, thunk_, var) in enumerate(jobs):
                out = self._output_dir_of(exp_name, var, data_dir, datestamp)
                if skip_finished and out and is_finished(out):
                    results[i] = VariantResult(exp_name, out, "skipped", None, 0.0)
                    bar.write(_colorize(f"Skipping {exp_name}: {out} holds a finished run.",
                                        "yellow", bold=True))
                    bar.update(1)
                    continue
                var = dict(var)
                seed = var.pop("seed", 0)
                try:
                    ready.append((_make_job(exp_name, thunk_, seed, num_cpu, data_dir,
                                            datestamp, var, "ExperimentGrid.run", log=True,
                                            resume=resume, run_id=run_id), i))
                except Exception as exc:  # could not even start: report, keep going
                    not_started(i, out, exc)
            # submitit submits a batch as one job array (one sbatch call under Slurm).
            batch = getattr(executor, "batch", None) if len(ready) > 1 and \
                type(executor).__module__.partition(".")[0] == "submitit" else None
            try:
                with batch() if callable(batch) else contextlib.nullcontext():
                    for job, i in ready:
                        try:
                            submitted.append((executor.submit(job), i))
                        except Exception as exc:
                            if callable(batch):
                                raise
                            not_started(i, job.output_dir, exc)
            except Exception as exc:  # the batch could not be submitted
                submitted = []
                for job, i in ready:
                    not_started(i, job.output_dir, exc)
            for fut, i in _completed(submitted):
                exp_name, _, var = jobs[i]
                try:
                    res = fut.result()
                except Exception as exc:  # the job itself was lost: report, keep going
                    out = self._output_dir_of(exp_name, var, data_dir, datestamp)
                    res = VariantResult(exp_name, out, "failed", None, 0.0,
                                        _log_path_of(exp_name, out, data_dir),
                                        error=f"job error: {type(exc).__name__}")
                    first = (str(exc).strip().splitlines() or [""])[0]
                    bar.write(_colorize(f"Variant {exp_name}: the executor reports "
                                        f"{type(exc).__name__}: {first}", "red", bold=True))
                else:
                    if res.status == "failed":
                        bar.write(_colorize(f"Variant {res.name} failed with exit status "
                                            f"{res.returncode}; see {res.log_path}", "red",
                                            bold=True))
                results[i] = res
                bar.update(1)
        except KeyboardInterrupt:
            _interrupted.add(run_id)
            for fut, _ in submitted:
                cancel = getattr(fut, "cancel", None)
                if callable(cancel):
                    try:
                        cancel()
                    except Exception:  # already finished, or the cluster is unreachable
                        pass
            _stop_running()
            raise
        finally:
            bar.close()
        self._print_summary(results)
        return results

    @staticmethod
    def _print_summary(results):
        # Seeds share an exp_name: show the run folder's name, which tells them apart.
        labels = [osp.basename(r.output_dir.rstrip(os.sep)) if r.output_dir else r.name
                  for r in results]
        width = max([len("variant")] + [len(label) for label in labels])
        line = "=" * max(DIV_LINE_WIDTH, width + 40)
        print(line)
        print(_colorize("Summary of the experiment grid", "green", bold=True))
        print(f"{'variant'.ljust(width)}  {'seconds':>9}  status")
        for label, r in zip(labels, results, strict=True):
            if r.status == "skipped":
                status = "skipped (finished before)"
            elif r.status == "ok":
                status = "ok (exit 0)"
            elif r.returncode is None:
                status = _colorize(f"failed ({r.error or 'did not start'})", "red") + (
                    f"  log: {r.log_path}" if r.log_path else "")
            else:
                status = _colorize(f"failed (exit {r.returncode})", "red") + (
                    f"  log: {r.log_path}" if r.log_path else "")
            print(f"{label.ljust(width)}  {r.seconds:9.1f}  {status}")
        nfail = sum(r.status == "failed" for r in results)
        nskip = sum(r.status == "skipped" for r in results)
        print(f"{len(results) - nfail - nskip} ok, {nfail} failed, {nskip} skipped")
        print(line, flush=True)
