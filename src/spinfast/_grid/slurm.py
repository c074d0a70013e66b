"""Slurm as a grid sees it: the attempt a job runs, what Slurm does with it, its jobs' states.

Private to spinfast. A variant's job can end three ways besides finishing: Slurm requeues it
(``scontrol requeue``, preemption with ``PreemptMode=REQUEUE``, or submitit's own requeue when
the time limit nears), cancels it (``scancel``), or stops it (time limit, node failure). In
each case Slurm signals the job's processes, and the experiment process dies of it.

- Inside the job, :func:`fate` asks slurmctld what became of this attempt: a job Slurm runs
  again has more restarts than ``SLURM_RESTART_COUNT`` says, a job Slurm stops is
  ``COMPLETING`` (or ``PREEMPTED``, or ended); :mod:`spinfast._grid.jobs` then reports
  nothing and waits to be stopped (:func:`wait_to_be_stopped`): the grid learns the end from
  the :class:`Watch`, and the next attempt, if any, resumes (:func:`restart_count` > 0).
- In the grid, :class:`Watch` asks slurmctld (``squeue``) for the states of the grid's submitit
  jobs every few seconds. Without accounting (no slurmdbd) ``sacct`` fails, and submitit alone
  cannot tell a cancelled job from a running one: its ``done()`` stays False for ever. The
  watch reads results from submitit's result files and states from ``squeue``, which lists
  finished jobs for ``MinJobAge`` seconds (300 by default): a job that Slurm ended without a
  result is reported, cancelled or failed, after :data:`GRACE` seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import NamedTuple

__all__ = ["ENDED", "GRACE", "POLL", "JobState", "restart_count", "job_states", "fate",
           "wait_to_be_stopped", "Watch"]

#: States of a job that Slurm will not run again.
ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
#: Seconds a job Slurm says ended may take to show its result file (shared file systems)
#: before the grid reports it without one.
GRACE = 5.0
#: Seconds between two ``squeue`` calls of a :class:`Watch`.
POLL = 3.0


class JobState(NamedTuple):
    """A job as ``squeue`` lists it: ``state`` (RUNNING, PENDING, CANCELLED...), ``restarts``
    (times Slurm requeued it) and ``reason`` (why it is pending, e.g. BeginTime)."""

    state: str
    restarts: int
    reason: str


def restart_count() -> int:
    """Return how many times Slurm requeued the job this process runs in (0 outside Slurm)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return 0
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def job_states(job_ids) -> dict | None:
    """Return ``{job id: JobState}`` of the jobs Slurm still lists; None if squeue fails.

    Job ids as submitit names them: ``"12"``, or ``"12_3"`` for a task of a job array. Jobs
    Slurm no longer knows are missing from the answer.
    """
    job_ids = list(job_ids)
    if not job_ids:
        return {}
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--jobs=" + ",".join(job_ids),
           "--Format=JobArrayID:|,JobID:|,State:|,RestartCnt:|,Reason:|"]
    for _ in range(10):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                  check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode >= 0:
            break
        # Killed by a signal: inside a job that Slurm stops, Slurm signals every process of
        # the job, squeue too, for a few moments. Ask again.
        time.sleep(0.2)
    if proc.returncode != 0:
        # One job id Slurm no longer knows is an error; among others it is left out.
        return {} if "Invalid job id" in proc.stderr else None
    states = {}
    for line in proc.stdout.splitlines():
        fields = line.split("|")
        if len(fields) < 5:
            continue
        try:
            restarts = int(fields[3])
        except ValueError:
            restarts = 0
        state = JobState(fields[2].strip(), restarts, fields[4].strip())
        states[fields[0].strip()] = states[fields[1].strip()] = state
    return states


def fate() -> str | None:
    """Return what Slurm does with the job this process runs in, once its work was stopped.

    ``'requeued'``: Slurm will run the job again (it has more restarts than this attempt);
    ``'ending'``: Slurm is stopping the job (``COMPLETING`` while its processes are killed,
    ``PREEMPTED`` until a preempted job is requeued, or an ended state: cancelled, out of
    time...); None outside Slurm, while the job runs on, or when slurmctld cannot say.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    state = (job_states([job]) or {}).get(job)
    if state is None:
        return None
    if state.restarts > restart_count():
        return "requeued"
    if state.state in ("COMPLETING", "PREEMPTED") or state.state in ENDED:
        return "ending"
    return None


def wait_to_be_stopped(limit: float = 300.0) -> None:
    """Sleep until Slurm stops this process (its KillWait after SIGTERM), at most ``limit`` s."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        time.sleep(1.0)


def _is_slurm_job(fut) -> bool:
    return (type(fut).__module__.startswith("submitit.slurm")
            and isinstance(getattr(fut, "job_id", None), str)
            and hasattr(getattr(fut, "paths", None), "result_pickle"))


class Watch:
    """Slurm's word on a grid's submitit Slurm jobs, and their results, without sacct.

    Build it with :meth:`of`. :meth:`finished` says whether a job's result file is there
    (then ``future.result()`` reads it at once); :meth:`ended` returns the :class:`JobState`
    of a job that Slurm ended without a result (after :data:`GRACE` seconds), else None;
    :meth:`restarts` says how many times Slurm requeued a job, as far as seen.
    """

    def __init__(self, futures):
        self._ids = {id(f): f.job_id for f in futures}
        self._futures = {f.job_id: f for f in futures}
        self._states: dict = {}
        self._restarts: dict = {}
        self._ended_since: dict = {}
        self._last = float("-inf")

    @classmethod
    def of(cls, submitted):
        """Return a Watch of the futures of ``submitted`` (``(future, index)`` pairs), or None
        unless every one is a submitit Slurm job."""
        futures = [fut for fut, _ in submitted]
        if not futures or not all(_is_slurm_job(fut) for fut in futures):
            return None
        return cls(futures)

    @staticmethod
    def finished(fut) -> bool:
        """Return True if the job's result file exists."""
        return fut.paths.result_pickle.exists()

    def _refresh(self):
        now = time.monotonic()
        if now - self._last < POLL:
            return
        self._last = now
        pending = [job for job, fut in self._futures.items() if not self.finished(fut)]
        states = job_states(pending)
        if states is None:  # slurmctld cannot say now: ask again later
            return
        for job in pending:
            state = states.get(job)
            if state is not None:
                self._restarts[job] = max(self._restarts.get(job, 0), state.restarts)
            self._states[job] = state
            ended = state is None or state.state in ENDED
            if ended:
                self._ended_since.setdefault(job, now)
            else:
                self._ended_since.pop(job, None)

    def ended(self, fut) -> JobState | None:
        """Return the state of a job Slurm ended without a result file; None otherwise.

        A job Slurm no longer lists (purged after ``MinJobAge``) is ``JobState('UNKNOWN',
        restarts, 'no longer listed by squeue')``.
        """
        if self.finished(fut):
            return None
        self._refresh()
        job = self._ids[id(fut)]
        since = self._ended_since.get(job)
        if since is None or time.monotonic() - since < GRACE or self.finished(fut):
            return None
        state = self._states.get(job)
        return state if state is not None else JobState(
            "UNKNOWN", self._restarts.get(job, 0), "no longer listed by squeue")

    def restarts(self, fut) -> int:
        """Return how many times Slurm requeued the job, as far as this watch saw."""
        return self._restarts.get(self._ids[id(fut)], 0)
