"""Experiment jobs: the picklable record an executor runs, running it, status files, stopping.

Private to spinfast; :mod:`spinfast.run_utils` re-exports the public names
(:class:`ExperimentJob`, :class:`VariantResult`, :func:`is_finished`, :data:`STATUS_FILE`).

A job is an :class:`ExperimentJob`: names, the thunk by reference or pickled, its pickled
kwargs and the output folder, nothing of the grid. Calling it (in this process, a
``concurrent.futures`` worker, a submitit job on a Slurm node...) writes the payload beside
its log, runs ``python -m spinfast._grid.experiment`` in its own process group, records how that
process ended in ``spinfast_run.json`` (:func:`write_status`) and returns a
:class:`VariantResult`. A run is finished when that file says exit status 0 and
``progress.txt`` holds a complete row (:func:`is_finished`). Processes started here are
tracked so that an interrupted grid can stop them (:func:`stop_running`).

A new executor needs nothing from this module beyond ``executor.submit(job)``: the job is a
zero-argument callable returning a :class:`VariantResult`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import os.path as osp
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from spinfast import user_config
from spinfast._grid import slurm
from spinfast._grid.naming import setup_logger_kwargs
from spinfast._logger.console import colorize
from spinfast._mpi.launch import without_launch_vars
from spinfast.serialization_utils import convert_json, dumps_config

__all__ = ["DIV_LINE_WIDTH", "STATUS_FILE", "VariantResult", "ExperimentJob",
           "check_executor", "check_resume", "make_job", "log_path_of", "resolve_num_cpu",
           "cpu_count", "run_job", "stop_process", "stop_running", "interrupted",
           "clear_status", "write_status", "is_finished", "skipped_if_finished"]

DIV_LINE_WIDTH = 80
STATUS_FILE = "spinfast_run.json"


@dataclass
class VariantResult:
    """How one variant of :meth:`ExperimentGrid.run` went.

    Attributes:
        name: the variant's exp_name.
        output_dir: its output folder (None if the thunk was given its own logger_kwargs
            without one).
        status: ``'ok'``, ``'failed'``, ``'cancelled'`` (its Slurm job was cancelled) or
            ``'skipped'`` (already finished).
        returncode: exit status of the experiment process (None if skipped).
        seconds: wall time of the run (0 if skipped); of its last attempt if requeued.
        log_path: the per-variant log file (parallel mode and executors), else None.
        error: why a failed variant has no exit status (could not start, or the executor
            reported the job lost), else None.
        requeues: times Slurm requeued the variant's job (preemption, ``scontrol requeue``,
            time limit) before its last attempt.
    """

    name: str
    output_dir: str | None
    status: str
    returncode: int | None
    seconds: float
    log_path: str | None = None
    error: str | None = None
    requeues: int = 0


def resolve_num_cpu(num_cpu, func):
    """Return ``num_cpu`` checked, ``'auto'`` as :func:`cpu_count`.

    Raises:
        ValueError: not an int >= 1 nor ``'auto'`` (the message names ``func``).
    """
    if num_cpu == "auto":
        return cpu_count()
    if isinstance(num_cpu, bool) or not isinstance(num_cpu, int) or num_cpu < 1:
        raise ValueError(f"{func}(): num_cpu must be an int >= 1 or 'auto', got {num_cpu!r}; "
                         f"pass the number of MPI processes")
    return num_cpu


def cpu_count():
    """Return the number of CPUs this process may run on (at least 1)."""
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
        from spinfast._grid.experiment import resolve_thunk

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
interrupted: set = set()


@dataclass(frozen=True)
class ExperimentJob:
    """One experiment as a small picklable record; calling it runs the experiment.

    This is what :func:`call_experiment` and :meth:`ExperimentGrid.run` hand to an executor
    (``executor.submit(job)``): names, the thunk by reference (or pickled), its pickled
    kwargs and the output folder, nothing of the grid. Calling it, in any process on any
    machine that shares the output file system, writes the payload to a temporary folder
    beside the log file, runs ``python -m spinfast._grid.experiment`` (which forks ``num_cpu`` MPI
    ranks through the site's launcher), records the exit status in the output folder and
    returns a :class:`VariantResult`.

    It is checkpointable for submitit: when Slurm preempts the job or its time runs out,
    submitit calls :meth:`checkpoint` and requeues the same job with ``resume=True``. A job
    that Slurm requeues by itself (``scontrol requeue``, ``PreemptMode=REQUEUE``) reports
    nothing from the attempt it stopped, and its next attempt (``SLURM_RESTART_COUNT`` > 0)
    runs with ``resume=True`` too (:func:`run_job`).

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
            return run_job(self)
        except KeyboardInterrupt:
            if self.run_id:
                interrupted.add(self.run_id)
            raise

    def checkpoint(self, *args, **kwargs):
        """Return this job with ``resume=True`` as a submitit ``DelayedSubmission``.

        submitit calls this (as on its ``helpers.Checkpointable``) when the job is preempted
        or times out, and requeues what it returns: the experiment restarts in its folder.
        """
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(dataclasses.replace(self, resume=True), *args, **kwargs)


def log_path_of(exp_name, output_dir, data_dir):
    """Return the log file of a job: ``<output_dir>.log``, else ``<data_dir>/<exp_name>.log``."""
    if output_dir:
        return output_dir.rstrip(os.sep) + ".log"
    # the thunk got logger_kwargs without an output_dir
    return osp.join(data_dir or user_config.DEFAULT_DATA_DIR, exp_name + ".log")


def check_executor(executor, func):
    """Raise TypeError (naming ``func``) if ``executor`` is neither None nor has ``submit``."""
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"{func}(): executor must have a submit(fn, *args) method returning a "
                        f"future, got {executor!r}; pass e.g. concurrent.futures."
                        f"ProcessPoolExecutor(2) or a submitit executor")


def check_resume(flag_name, datestamp, func):
    """Raise ValueError if ``flag_name`` (resume, skip_finished) meets datestamped folders."""
    if datestamp or user_config.FORCE_DATESTAMP:
        raise ValueError(f"{func}(): {flag_name}=True cannot find earlier runs when folder names "
                         f"carry a datestamp (datestamp={datestamp!r}, FORCE_DATESTAMP="
                         f"{user_config.FORCE_DATESTAMP!r}); turn datestamps off")


def make_job(exp_name, thunk, seed, num_cpu, data_dir, datestamp, kwargs, func, log=False,
             resume=False, run_id=""):
    """Check the arguments, serialize the thunk and kwargs, return an :class:`ExperimentJob`.

    ``seed`` and ``logger_kwargs`` (from :func:`spinfast.run_utils.setup_logger_kwargs`
    unless in ``kwargs``) join the thunk's kwargs; ``func`` names the caller in errors;
    ``log`` sends the output to :func:`log_path_of`.

    Raises:
        TypeError: ``exp_name`` not a string, ``thunk`` not callable or not serializable.
        ValueError: bad ``num_cpu``.
    """
    if not isinstance(exp_name, str):
        raise TypeError(f"{func}(): exp_name must be a string, got {exp_name!r}; "
                        f"pass the experiment's name")
    if not callable(thunk):
        raise TypeError(f"{func}(): thunk must be callable, got {thunk!r}; pass the function "
                        f"that runs the experiment")
    num_cpu = resolve_num_cpu(num_cpu, func)
    import cloudpickle

    kwargs = dict(kwargs)
    kwargs["seed"] = seed
    header = (colorize("Running experiment:\n", "cyan", bold=True) + "\n" + exp_name + "\n\n"
              + colorize("with kwargs:\n", "cyan", bold=True) + "\n"
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
                         log_path=log_path_of(exp_name, output_dir, data_dir) if log else None,
                         header=header, thunk=thunk_ref, kwargs=kwargs_bytes, num_cpu=num_cpu,
                         resume=bool(resume), sys_path=tuple(sys.path),
                         compat=compat.is_installed() or spinup_thunk,
                         old_gym_api=spinup_thunk, run_id=run_id)


def _from_spinup(thunk):
    """Return True if ``thunk`` (or the function of a ``functools.partial``) is Spinning Up's."""
    seen = 0
    while hasattr(thunk, "func") and seen < 10:  # functools.partial, possibly nested
        thunk, seen = thunk.func, seen + 1
    module = getattr(thunk, "__module__", None) or ""
    return module == "spinup" or module.startswith("spinup.")



def stop_process(proc):
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


def stop_running():
    """Stop every experiment process started by jobs of this process."""
    with _running_lock:
        procs = list(_running.values())
    for proc in procs:
        stop_process(proc)


def run_job(job):
    """Run ``job``'s experiment process, record its exit status, return a :class:`VariantResult`.

    Nothing starts if the job's grid run was interrupted in this process. With a log file the
    process runs in its own session (so that :func:`stop_process` reaches its MPI ranks), and
    is stopped if this call is interrupted. In a Slurm job that was requeued
    (``SLURM_RESTART_COUNT`` > 0) the experiment resumes (``resume=True``), or is not run
    again if its last attempt finished; an attempt that Slurm stops to requeue the job returns
    nothing: this call waits for Slurm to stop it (:func:`spinfast._grid.slurm.fate`).
    """
    out = job.output_dir
    if job.run_id and job.run_id in interrupted:
        return VariantResult(job.exp_name, out, "failed", None, 0.0, job.log_path,
                             "interrupted")
    requeues = slurm.restart_count()
    if requeues:
        if out and is_finished(out):  # stopped between the end of the run and its report
            return VariantResult(job.exp_name, out, "ok", 0, 0.0, job.log_path,
                                 requeues=requeues)
        job = dataclasses.replace(job, resume=True)
    clear_status(out)
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
        cmd = [sys.executable or "python", "-m", "spinfast._grid.experiment", payload]
        # The experiment decides its own MPI world, even when this job was launched by srun.
        env = without_launch_vars(os.environ)
        start = time.time()
        if job.log_path is None:
            returncode = subprocess.call(cmd, env=env)
        else:
            env["PYTHONUNBUFFERED"] = "1"
            with open(job.log_path, "a" if job.resume else "w") as log:
                log.write(job.header)
                log.flush()
                if job.run_id and job.run_id in interrupted:
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
                    stop_process(proc)
                    raise
                finally:
                    with _running_lock:
                        _running.pop(proc.pid, None)
                log.write(f"\n[spinfast] experiment process exited with status {returncode} "
                          f"after {time.time() - start:.1f} s\n")
        seconds = time.time() - start
        write_status(out, job.exp_name, returncode, seconds)
    finally:
        shutil.rmtree(payload_dir, ignore_errors=True)
    fate = slurm.fate() if returncode != 0 else None
    if fate in ("requeued", "ending"):  # Slurm stops the job: this attempt reports nothing
        _say(job, f"Slurm requeued the job (attempt {requeues + 1} stopped, exit status "
                  f"{returncode}); the next attempt resumes" if fate == "requeued" else
                  f"Slurm is stopping the job (exit status {returncode})")
        slurm.wait_to_be_stopped()
        fate = f"{fate}, but the attempt was not stopped"
    return VariantResult(job.exp_name, out, "ok" if returncode == 0 else "failed", returncode,
                         seconds, job.log_path, f"Slurm: {fate}" if fate else None, requeues)


def _say(job, text):
    """Append ``[spinfast] text`` to the job's log file (or print it without one)."""
    line = f"\n[spinfast] {text}\n"
    if job.log_path is None:
        print(line, end="", flush=True)
    else:
        with open(job.log_path, "a") as log:
            log.write(line)


def clear_status(output_dir):
    """Remove the status file of ``output_dir``: a run starting there is not finished."""
    if output_dir:
        try:
            os.unlink(osp.join(output_dir, STATUS_FILE))
        except (FileNotFoundError, NotADirectoryError):
            pass


def write_status(output_dir, exp_name, returncode, seconds):
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
    """Return True if the run in ``output_dir`` finished (see :mod:`spinfast.run_utils`).

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


def skipped_if_finished(exp_name, output_dir, say=print):
    """Return a ``'skipped'`` :class:`VariantResult` if ``output_dir`` holds a finished run.

    Says so first, through ``say`` (``print``, or a progress bar's ``write``).

    Args:
        exp_name: the experiment's name.
        output_dir: its output folder, or None (never finished).
        say: called with the one-line message.

    Returns:
        the result, or None when the run has to be (re)started.
    """
    if not output_dir or not is_finished(output_dir):
        return None
    say(colorize(f"Skipping {exp_name}: {output_dir} holds a finished run.", "yellow",
                 bold=True))
    return VariantResult(exp_name, output_dir, "skipped", None, 0.0)
