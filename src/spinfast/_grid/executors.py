"""Running many experiment jobs at once: executors, the progress bar, the summary table.

Private to spinfast; :meth:`spinfast.run_utils.ExperimentGrid.run` hands its variants to
:func:`run_batch` when it runs them in parallel or on an executor. Each variant becomes an
:class:`~spinfast._grid.jobs.ExperimentJob` submitted with ``executor.submit(job)``: any
``concurrent.futures.Executor`` works as it is (a thread pool of this module's own for
``parallel=k``), as do submitit's executors (a batch becomes one Slurm job array) and a dask
``Client``. Futures are waited on as they finish (:func:`completed`); a failing or lost
variant is reported and the others go on; Ctrl-C cancels what is queued and stops the
experiment processes started here; a summary table ends the run (:func:`print_summary`).
submitit's Slurm jobs are watched through slurmctld (:class:`spinfast._grid.slurm.Watch`): a
requeued job is waited for until its last attempt, a cancelled one is reported as such.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import os.path as osp
import time
from textwrap import dedent
from typing import NamedTuple

from spinfast import user_config
from spinfast._grid import slurm
from spinfast._grid.jobs import (
    DIV_LINE_WIDTH,
    VariantResult,
    cpu_count,
    interrupted,
    log_path_of,
    make_job,
    skipped_if_finished,
    stop_running,
)
from spinfast._logger.console import colorize

__all__ = ["Variant", "countdown", "run_batch", "completed", "result_of", "print_summary"]


class Variant(NamedTuple):
    """One variant of a grid, ready to run: its name, function, kwargs and output folder."""

    name: str
    thunk: object
    kwargs: dict
    output_dir: str | None


def countdown(line):
    """Wait ``user_config.WAIT_BEFORE_LAUNCH`` seconds behind a countdown bar (0: no wait).

    ``line`` (a divider) ends the explanation printed before the bar.
    """
    wait = user_config.WAIT_BEFORE_LAUNCH
    if wait <= 0:
        return
    from tqdm import trange

    print(colorize(dedent("""
        Launch delayed to give you a few seconds to review your experiments.

        To customize or disable this behavior, set WAIT_BEFORE_LAUNCH in
        spinfast.user_config (environment variable SPINFAST_WAIT_BEFORE_LAUNCH).

        """), "cyan", bold=True) + line)
    steps = 100
    for _ in trange(steps, desc="Launching in...", leave=False, ncols=DIV_LINE_WIDTH,
                    mininterval=0.25, bar_format="{desc}: {bar}| {remaining} {elapsed}"):
        time.sleep(wait / steps)


def run_batch(variants, executor, parallel, num_cpu, data_dir, datestamp, skip_finished,
              resume):
    """Run ``variants`` as jobs on ``executor`` (or ``parallel`` threads); return the results.

    Args:
        variants: list of :class:`Variant`, in grid order.
        executor: anything with ``submit(fn)``, or None for a thread pool of ``parallel``
            workers (at most one per variant), shut down at the end.
        parallel: int >= 1 (with ``executor=None``).
        num_cpu, data_dir, datestamp, resume: as for :func:`spinfast._grid.jobs.make_job`;
            ``num_cpu`` already resolved to an int.
        skip_finished: variants whose folder holds a finished run are skipped.

    Returns:
        list of :class:`VariantResult`, one per variant, in grid order.

    Raises:
        KeyboardInterrupt: after cancelling queued jobs and stopping this process's
            experiment processes.
    """
    own_pool = None
    if executor is None:
        parallel = min(parallel, max(1, len(variants)))
        if parallel * num_cpu > cpu_count():
            print(colorize(f"Note: {parallel} variants x {num_cpu} MPI processes exceed the "
                           f"{cpu_count()} available CPUs; runs will share cores.",
                           "yellow", bold=True))
        # Threads suffice: each only waits for its experiment process.
        executor = own_pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)
    try:
        return _submit_and_wait(variants, executor, num_cpu, data_dir, datestamp,
                                skip_finished, resume)
    finally:
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)


def _submit_and_wait(variants, executor, num_cpu, data_dir, datestamp, skip_finished, resume):
    import uuid

    from tqdm import tqdm

    run_id = uuid.uuid4().hex  # names this run's jobs: once interrupted, the queued ones stop
    results = [None] * len(variants)
    ready, submitted = [], []  # (job, index), (future, index)
    bar = tqdm(total=len(variants), desc="Variants", unit="variant", dynamic_ncols=True)

    def not_started(i, out, exc):
        results[i] = VariantResult(variants[i].name, out, "failed", None, 0.0,
                                   error="did not start")
        bar.write(colorize(f"Variant {variants[i].name} could not start: "
                           f"{type(exc).__name__}: {exc}", "red", bold=True))
        bar.update(1)

    try:
        for i, (exp_name, thunk_, var, out) in enumerate(variants):
            if skip_finished:
                results[i] = skipped_if_finished(exp_name, out, say=bar.write)
                if results[i] is not None:
                    bar.update(1)
                    continue
            var = dict(var)
            seed = var.pop("seed", 0)
            try:
                ready.append((make_job(exp_name, thunk_, seed, num_cpu, data_dir, datestamp,
                                       var, "ExperimentGrid.run", log=True, resume=resume,
                                       run_id=run_id), i))
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
        watch = slurm.Watch.of(submitted)
        for fut, i in completed(submitted, watch):
            exp_name, out = variants[i].name, variants[i].output_dir
            log_path = log_path_of(exp_name, out, data_dir)
            ended = watch.ended(fut) if watch is not None else None
            if ended is not None:  # Slurm ended the job, and it left no result
                res = _ended_by_slurm(exp_name, out, log_path, fut.job_id, ended)
                bar.write(colorize(f"Variant {exp_name}: {res.error}", "red", bold=True))
            else:
                try:
                    res = fut.result()
                except Exception as exc:  # the job itself was lost: report, keep going
                    res = VariantResult(exp_name, out, "failed", None, 0.0, log_path,
                                        error=f"job error: {type(exc).__name__}")
                    first = (str(exc).strip().splitlines() or [""])[0]
                    bar.write(colorize(f"Variant {exp_name}: the executor reports "
                                       f"{type(exc).__name__}: {first}", "red", bold=True))
                else:
                    if res.status != "ok":
                        bar.write(colorize(f"Variant {res.name} {res.status} with exit status "
                                           f"{res.returncode}; see {res.log_path}", "red",
                                           bold=True))
            if watch is not None:
                res.requeues = max(res.requeues, watch.restarts(fut))
            results[i] = res
            bar.update(1)
    except KeyboardInterrupt:
        interrupted.add(run_id)
        for fut, _ in submitted:
            cancel = getattr(fut, "cancel", None)
            if callable(cancel):
                try:
                    cancel()
                except Exception:  # already finished, or the cluster is unreachable
                    pass
        stop_running()
        raise
    finally:
        bar.close()
    print_summary(results)
    return results


def result_of(fut, exp_name, out, log_path):
    """Wait for one job's future; return its :class:`VariantResult`.

    A submitit Slurm job that Slurm ended without a result (cancelled, say) gives a
    ``'cancelled'`` or ``'failed'`` result instead of waiting for ever; an exception of the
    executor's ``result()`` propagates.
    """
    watch = slurm.Watch.of([(fut, 0)])
    if watch is None:
        return fut.result()
    for _ in completed([(fut, 0)], watch):
        pass
    ended = watch.ended(fut)
    res = (_ended_by_slurm(exp_name, out, log_path, fut.job_id, ended) if ended is not None
           else fut.result())
    res.requeues = max(res.requeues, watch.restarts(fut))
    return res


def _ended_by_slurm(exp_name, out, log_path, job_id, state):
    """The result of a variant whose Slurm job ended in ``state`` without a result."""
    cancelled = state.state == "CANCELLED"
    return VariantResult(exp_name, out, "cancelled" if cancelled else "failed", None, 0.0,
                         log_path, f"Slurm job {job_id} {state.state.lower()}"
                         + (f": {state.reason}" if state.reason not in ("", "None") else ""),
                         state.restarts)


def completed(submitted, watch=None):
    """Yield ``(future, index)`` pairs as their futures finish.

    ``concurrent.futures`` futures are waited on directly; other futures with ``done()``
    (submitit jobs, dask futures) are polled, every 10 ms at first, then less often up to
    once a second; anything else is waited on in order. With a :class:`slurm.Watch`, a job
    is finished when its result file exists or Slurm ended it (``watch.ended``), never by
    submitit's ``done()``, which asks sacct.
    """
    if watch is not None:
        def done(fut):
            return watch.finished(fut) or watch.ended(fut) is not None
    else:
        def done(fut):
            return fut.done()
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
            (ready if done(pair[0]) else still).append(pair)
        if ready:
            yield from ready
            delay = 0.01
        else:
            time.sleep(delay)
            delay = min(1.0, delay * 1.5)
        pending = still


def print_summary(results):
    """Print the table of ``results``: variant, seconds, status (and the log of a failure)."""
    # Seeds share an exp_name: show the run folder's name, which tells them apart.
    labels = [osp.basename(r.output_dir.rstrip(os.sep)) if r.output_dir else r.name
              for r in results]
    width = max([len("variant")] + [len(label) for label in labels])
    line = "=" * max(DIV_LINE_WIDTH, width + 40)
    print(line)
    print(colorize("Summary of the experiment grid", "green", bold=True))
    print(f"{'variant'.ljust(width)}  {'seconds':>9}  status")
    for label, r in zip(labels, results, strict=True):
        requeued = f", requeued {r.requeues}x" if r.requeues else ""
        if r.status == "skipped":
            status = "skipped (finished before)"
        elif r.status == "ok":
            status = f"ok (exit 0){requeued}"
        else:
            why = (r.error or "by Slurm" if r.status == "cancelled" else
                   f"exit {r.returncode}" if r.returncode is not None else
                   r.error or "did not start")
            status = colorize(f"{r.status} ({why}){requeued}", "red") + (
                f"  log: {r.log_path}" if r.log_path else "")
        print(f"{label.ljust(width)}  {r.seconds:9.1f}  {status}")
    nfail = sum(r.status == "failed" for r in results)
    nskip = sum(r.status == "skipped" for r in results)
    ncancel = sum(r.status == "cancelled" for r in results)
    print(f"{len(results) - nfail - nskip - ncancel} ok, {nfail} failed, {nskip} skipped"
          + (f", {ncancel} cancelled" if ncancel else ""))
    print(line, flush=True)
