"""Every rank checks that its MPI world is the one that was launched.

A launch can go silently wrong: ``srun`` without a PMI that the MPI library speaks (Slurm's
default ``MpiDefault=none``) starts N processes that are each a world of one, and so does the
``mpiexec`` of one MPI library starting programs whose mpi4py loads another. Each process would
run the whole training, N copies writing one folder. :func:`check_world` compares the size of
``COMM_WORLD`` with the size the launch announced (:func:`expected_size`: ``mpi_fork``'s
:data:`~spinfast._mpi.launch.WORLD_SIZE_VAR`, else the launcher's own variables) and stops
the process before anything runs: the launch's rank 0 raises one RuntimeError that names the
launcher, the MPI library and the fix; the other ranks exit with status 1 a moment later,
silently.

Private to spinfast: :mod:`spinfast.mpi_tools` calls :func:`check_world` when it makes the
world, and :func:`install_abort_hook` where the world has several ranks, so that one rank's
uncaught exception takes the whole job down instead of leaving the others blocked.
"""

from __future__ import annotations

import os
import sys
import time

from spinfast._mpi import launch as _launch

__all__ = ["QUIET_EXIT_DELAY", "expected_size", "launch_rank", "launcher_name",
           "mismatch_message", "check_world"]

#: Seconds the ranks other than the launch's rank 0 wait before exiting, so that the launcher
#: (srun --kill-on-bad-exit, Hydra) does not stop rank 0 before its error is printed.
QUIET_EXIT_DELAY = 3.0

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _int_env(name):
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def expected_size() -> tuple:
    """Return ``(size, source)``: the world size this process was launched into (0, "": none).

    ``mpi_fork``'s :data:`~spinfast._mpi.launch.WORLD_SIZE_VAR` first, then the launcher's
    size variable (``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``...), then the task count of the
    ``srun`` step.
    """
    size = _int_env(_launch.WORLD_SIZE_VAR)
    if size:
        return size, f"mpi_fork started {size}"
    for name in _launch.SIZE_VARS:
        size = _int_env(name)
        if size:
            return size, f"{name}={size}"
    size = _launch.srun_tasks()
    if size:
        return size, f"SLURM_STEP_NUM_TASKS={size}"
    return 0, ""


def launch_rank() -> int | None:
    """Return this process's rank in the launch, from the launcher's variables (None: unknown)."""
    for name in _RANK_VARS:
        rank = _int_env(name)
        if rank is not None:
            return rank
    return _int_env("SLURM_PROCID") if _launch.srun_tasks() else None


def launcher_name() -> str:
    """Return what started this process, from its environment, as a few words."""
    env = os.environ
    if _launch.srun_tasks():
        return f"srun --mpi={env.get('SLURM_MPI_TYPE') or 'none'}"
    if any(name.startswith("HYDRA_") for name in env):
        return "the mpiexec of MPICH or Intel MPI (Hydra)"
    if "OMPI_COMM_WORLD_SIZE" in env:
        return "Open MPI's mpiexec"
    if "PMIX_RANK" in env:
        return "a PMIx launcher (such as Open MPI 5's mpiexec)"
    if "PMI_RANK" in env:
        return "a PMI launcher"
    return "the launcher mpi_fork used"


def mismatch_message(expected: int, source: str, actual: int, version: str) -> str:
    """Return the error for a process launched as one of ``expected`` ranks, in ``actual``."""
    func = "mpi_fork()" if os.environ.get(_launch.WORLD_SIZE_VAR) else "spinfast.mpi_tools"
    launcher = launcher_name()
    library = repr(version) if version else "none (mpi4py cannot load one)"
    head = (f"{func}: this process was launched as one of {expected} MPI ranks ({source}, by "
            f"{launcher}), but its MPI world has {actual} process{'es' if actual != 1 else ''}, "
            f"with MPI library {library}; ")
    if not version:
        return head + (f"install mpi4py with an MPI library ({_launch.INSTALL_HINT}, or build it "
                       f"against the cluster's MPI), then launch again")
    family = _launch.library_family(version)
    if launcher.startswith("srun"):
        speaks = _launch.PMI_OF_LIBRARY.get(family or "")
        pmi = speaks[0] if speaks else "PMI"
        said = f"a PMI that {family} speaks" if speaks else "the PMI your MPI library speaks"
        return head + (f"srun started the ranks without {said}: start them with srun "
                       f"--mpi={pmi} (or export SLURM_MPI_TYPE={pmi}, or set MpiDefault={pmi} "
                       f"in slurm.conf; 'srun --mpi=list' shows what this Slurm has)")
    return head + ("the launcher belongs to another MPI library than the one mpi4py loaded: "
                   "start the ranks with the mpiexec of that library, or build mpi4py against "
                   "the launcher's library (MPICC=mpicc pip install --no-binary mpi4py mpi4py); "
                   "'spinfast info' shows which library and launcher are found")


def check_world(actual: int) -> None:
    """Stop this process if its world of ``actual`` ranks is not the one launched.

    Raises:
        RuntimeError: on the launch's rank 0 (or where the rank is unknown), with
            :func:`mismatch_message`.
        SystemExit: status 1 on the other ranks, after :data:`QUIET_EXIT_DELAY` seconds.
    """
    expected, source = expected_size()
    if not expected or expected == actual:
        return
    if launch_rank() not in (0, None):  # one error for the whole launch: rank 0's
        sys.stdout.flush()
        time.sleep(QUIET_EXIT_DELAY)
        raise SystemExit(1)
    raise RuntimeError(mismatch_message(expected, source, actual, _launch.library_version()))


def install_abort_hook(comm, rank: int, size: int) -> None:
    """Make an uncaught exception on this rank print its traceback, then abort every rank.

    Without it, the other ranks would wait in their next collective (and ``MPI_Finalize``)
    for ever.
    """
    previous = sys.excepthook

    def abort_all_ranks(exc_type, exc, tb):
        try:
            note = (f"spinfast.mpi_tools: uncaught {exc_type.__name__} on rank {rank} of "
                    f"{size}; aborting all ranks (MPI_Abort)\n")
            sys.stdout.flush()
            if previous is sys.__excepthook__:  # the traceback and the note in one write
                import traceback
                sys.stderr.write("".join(traceback.format_exception(exc_type, exc, tb)) + note)
            else:
                previous(exc_type, exc, tb)
                sys.stderr.write(note)
            sys.stderr.flush()
            time.sleep(0.2)  # the launcher reads our pipes; MPI_Abort may drop what it has not
        finally:
            comm.Abort(1)

    sys.excepthook = abort_all_ranks
