"""How ``mpi_fork`` starts MPI ranks: the launcher, its flags, the environment, the argv.

Private to spinfast. :func:`spinfast.mpi_tools.mpi_fork` relaunches the program through
:func:`launch_command` and :func:`relaunch_argv`, in the environment of :func:`rank_env`;
:mod:`spinfast.run_utils` starts each experiment with :func:`without_launch_vars`;
``spinfast info`` reports :func:`choose_launcher`.

The launcher is the site's ``srun`` inside a Slurm job, else ``mpiexec``/``mpirun`` beside the
interpreter (the ``mpi`` extra's wheel, or a virtual environment's own), else on PATH. Open
MPI gets the flags it needs as root or with more ranks than cores, in its version's spelling
(:func:`open_mpi_flags`); MPICH, Intel MPI and others take the command as it is. ``srun`` gets
the PMI that the MPI library mpi4py loads speaks (:func:`srun_pmi`), and every rank is told how
many ranks were started (:data:`WORLD_SIZE_VAR`, checked by :mod:`spinfast._mpi.worldcheck`).
Importing this module imports nothing beyond ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["LAUNCH_VARS", "LAUNCH_PREFIXES", "SIZE_VARS", "OPEN_MPI_RANK_VARS",
           "OPEN_MPI_RANK_PREFIXES", "INSTALL_HINT", "WORLD_SIZE_VAR",
           "PMI_OF_LIBRARY", "Launcher", "PmiChoice", "launched", "env_size", "srun_tasks",
           "physical_cores", "find_launcher", "version_text", "is_open_mpi", "open_mpi_major",
           "open_mpi_flags", "open_mpi_env", "library_version", "library_family",
           "site_mpi_default", "srun_pmi", "choose_launcher", "describe_launcher",
           "launch_command", "without_launch_vars", "rank_env", "relaunch_argv"]

# Environment variables set by MPI launchers in the processes they start (MPICH/Hydra, Intel
# MPI, Open MPI, PMIx, MVAPICH, Slurm's PMI).
LAUNCH_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK",
               "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_RANK")
LAUNCH_PREFIXES = ("HYDRA_", "OMPI_COMM_WORLD_", "PMIX_")
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
# What Open MPI 4's mpiexec (ORTE) also sets in its ranks: an mpiexec started where they are
# refuses ("does not support recursive calls", for OMPI_UNIVERSE_SIZE) or fails (the orte_ and
# ess_ settings). A user's own OMPI_MCA_ settings are none of these.
OPEN_MPI_RANK_VARS = ("OMPI_UNIVERSE_SIZE", "OMPI_COMMAND", "OMPI_ARGV", "OMPI_NUM_APP_CTX",
                      "OMPI_FIRST_RANKS", "OMPI_APP_CTX_NUM_PROCS", "OMPI_FILE_LOCATION",
                      "OMPI_MCA_pmix", "OMPI_MCA_initial_wdir", "OMPI_MCA_mpi_oversubscribe",
                      "OMPI_MCA_shmem_RUNTIME_QUERY_hint")
OPEN_MPI_RANK_PREFIXES = ("OMPI_MCA_orte_", "OMPI_MCA_ess")

INSTALL_HINT = "pip install 'spinfast[mpi]'"

#: The number of ranks ``mpi_fork`` started, in each rank's environment: a rank whose
#: ``COMM_WORLD`` has another size stops (:func:`spinfast._mpi.worldcheck.check_world`).
WORLD_SIZE_VAR = "SPINFAST_WORLD_SIZE"

#: The PMI each MPI library speaks under ``srun``, the one ``mpi_fork`` passes first. Measured
#: on Slurm 22.05 (Debian's slurm-wlm): MPICH 5's wheel stops at MPI_Init under ``--mpi=pmix``
#: ("unsupported PMI version PMIx"), Debian's Open MPI 4.1 under ``--mpi=pmi2``; Intel MPI 2021
#: starts under both. Under ``--mpi=none`` (Slurm's default) every rank is a world of one.
PMI_OF_LIBRARY = {"MPICH": ("pmi2",), "Intel MPI": ("pmi2", "pmix"), "Open MPI": ("pmix",)}


def srun_tasks() -> int:
    """Return the number of tasks of the ``srun`` step this process belongs to (0: none)."""
    try:
        return int(os.environ.get("SLURM_STEP_NUM_TASKS", "0"))
    except ValueError:
        return 0


def launched() -> bool:
    """Return True if a launcher started this process.

    Its variables are in the environment, or it is a task of an ``srun`` step of several
    tasks (which ``srun`` starts without any MPI variable under ``--mpi=none``).
    """
    env = os.environ
    if any(name in env for name in LAUNCH_VARS):
        return True
    return any(name.startswith(LAUNCH_PREFIXES) for name in env) or srun_tasks() > 1


def env_size() -> int:
    """Return the world size the launcher announced in the environment (0: none)."""
    for name in SIZE_VARS:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 0


def physical_cores() -> int:
    """Return the number of physical cores this process may run on (at least 1)."""
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], check=False,
                                 capture_output=True, text=True, timeout=10).stdout
            return max(1, int(out.strip()))
        except (OSError, ValueError, subprocess.SubprocessError):
            return max(1, os.cpu_count() or 1)
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(base + "physical_package_id") as f:
                package = f.read().strip()
            with open(base + "core_id") as f:
                core = f.read().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def find_launcher() -> str:
    """Return the path of ``mpiexec``/``mpirun`` beside ``sys.executable``, else on PATH.

    Raises:
        FileNotFoundError: neither is found (the message says how to install one).
    """
    import shutil
    from pathlib import Path

    here = Path(sys.executable).parent
    for name in ("mpiexec", "mpirun"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("mpiexec", "mpirun"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        f"mpi_fork(): no MPI launcher (mpiexec or mpirun) beside {sys.executable!r} or on PATH; "
        f"install one with {INSTALL_HINT} (mpi4py and the MPICH wheel), or load your "
        f"cluster's MPI")


def version_text(launcher: str) -> str:
    """Return what ``launcher --version`` prints (stdout, then stderr); "" if it cannot run."""
    import subprocess

    try:
        out = subprocess.run([launcher, "--version"], check=False, capture_output=True,
                             text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


def is_open_mpi(launcher: str, text: str | None = None) -> bool:
    """Return True if ``launcher --version`` (or its output ``text``) names Open MPI."""
    text = (version_text(launcher) if text is None else text).lower()
    return "open mpi" in text or "openrte" in text or "open-mpi" in text


def open_mpi_major(version: str) -> int:
    """Return the major version in an Open MPI launcher's version line (0: none found).

    ``"mpiexec (Open MPI) 5.0.11"`` gives 5 (PRRTE), ``"mpiexec (OpenRTE) 4.1.4"`` 4 (ORTE).
    """
    for word in version.split():
        head = word.split(".")[0]
        if "." in word and head.isdigit():
            return int(head)
    return 0


def open_mpi_flags(version: str, n: int) -> list:
    """Return the flags an Open MPI launcher (its version line ``version``) needs for ``n`` ranks.

    ``--allow-run-as-root`` as root, and with more ranks than physical cores each launcher's own
    way to oversubscribe: ``--map-by :OVERSUBSCRIBE`` for Open MPI 5 (PRRTE), ``--oversubscribe``
    for Open MPI 4 and earlier.
    """
    flags = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    if n > physical_cores():
        flags += (["--map-by", ":OVERSUBSCRIBE"] if open_mpi_major(version) >= 5
                  else ["--oversubscribe"])
    return flags


def open_mpi_env(version: str) -> dict:
    """Return the environment variables that let an Open MPI launcher (its version line
    ``version``) run as root and oversubscribe, in that launcher's own spelling.

    Open MPI 5 (PRRTE) reads ``PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe`` and
    ignores Open MPI 4's ``OMPI_MCA_rmaps_base_oversubscribe=1``; both read
    ``OMPI_ALLOW_RUN_AS_ROOT`` and ``OMPI_ALLOW_RUN_AS_ROOT_CONFIRM``.
    """
    env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    if open_mpi_major(version) >= 5:
        env["PRTE_MCA_rmaps_default_mapping_policy"] = ":oversubscribe"
    else:
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return env


def mpi_module():
    """Return ``mpi4py.MPI``, imported without initialising MPI unless the program did.

    ``mpi4py.rc.initialize`` (and ``finalize``) are False for the import, then restored.

    Raises:
        ImportError: mpi4py is not installed, or cannot load its MPI library.
    """
    import mpi4py

    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        saved = (mpi4py.rc.initialize, mpi4py.rc.finalize)
        mpi4py.rc.initialize = mpi4py.rc.finalize = False
        try:
            from mpi4py import MPI as mpi
        finally:
            mpi4py.rc.initialize, mpi4py.rc.finalize = saved
    return mpi


def library_version() -> str:
    """Return the first line of the MPI library version that mpi4py loads ("" if none loads)."""
    try:
        mpi = mpi_module()
    except ImportError:
        return ""
    text = mpi.Get_library_version().replace("\0", "").strip()
    return " ".join((text.splitlines() or [""])[0].split())


def library_family(version: str) -> str | None:
    """Return the key of :data:`PMI_OF_LIBRARY` that a library version names, else None."""
    text = version.lower()
    if "open mpi" in text:
        return "Open MPI"
    if "intel" in text:
        return "Intel MPI"
    if "mpich" in text or "mvapich" in text:  # MPICH, Cray MPICH, MVAPICH: MPICH's PMI
        return "MPICH"
    return None


_site_mpi: list = []  # [MpiDefault] once asked


def site_mpi_default() -> str | None:
    """Return the cluster's ``MpiDefault`` (``scontrol show config``); None if it cannot say."""
    if not _site_mpi:
        import subprocess

        value = None
        try:
            out = subprocess.run(["scontrol", "show", "config"], check=False,
                                 capture_output=True, text=True, timeout=30,
                                 stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _, rest = line.partition("=")
            if key.strip() == "MpiDefault":
                value = rest.strip() or None
        _site_mpi.append(value)
    return _site_mpi[0]


class PmiChoice:
    """The PMI ``srun`` gives the ranks ``mpi_fork`` starts.

    ``flag`` is the ``--mpi`` value spinfast adds (None: srun's own choice stands), ``pmi``
    the PMI the ranks get ("" if unknown), ``why`` a sentence saying where it comes from.
    """

    __slots__ = ("flag", "pmi", "why")

    def __init__(self, flag: str | None, pmi: str, why: str):
        self.flag = flag
        self.pmi = pmi
        self.why = why

    def __repr__(self):
        return f"PmiChoice(flag={self.flag!r}, pmi={self.pmi!r}, why={self.why!r})"


def srun_pmi() -> PmiChoice:
    """Return the PMI for ``srun`` to start ranks of the MPI library mpi4py loads.

    The site's choice stands (``SLURM_MPI_TYPE``, else the cluster's ``MpiDefault``) when the
    library speaks it, or when the library is not one of :data:`PMI_OF_LIBRARY`; otherwise the
    library's own PMI is passed with ``--mpi``.
    """
    chosen, source = os.environ.get("SLURM_MPI_TYPE"), "SLURM_MPI_TYPE"
    if not chosen:
        chosen, source = site_mpi_default(), "the cluster's MpiDefault"
    version = library_version()
    family = library_family(version)
    speaks = PMI_OF_LIBRARY.get(family or "")
    said = f"{source} is {chosen}" if chosen else "srun's default PMI is unknown"
    if speaks is None:
        return PmiChoice(None, chosen or "", f"{said}; kept: the MPI library "
                         f"({version or 'none: mpi4py cannot load one'}) is not one whose PMI "
                         f"spinfast knows")
    if chosen and chosen.partition("_")[0] in speaks:  # pmix_v4 is pmix
        return PmiChoice(None, chosen, f"{said}, which {family} speaks")
    return PmiChoice(speaks[0], speaks[0], f"--mpi={speaks[0]}: {family} speaks "
                     f"{' or '.join(speaks)}, and {said}")


class Launcher:
    """The launcher ``mpi_fork`` uses here: ``path``, ``kind``, ``version`` and ``family``.

    ``kind`` is ``'srun'`` (inside a Slurm job), ``'open-mpi'`` or ``'other'`` (MPICH, Intel
    MPI, MVAPICH...: an ``mpiexec`` that takes ``-n N`` and no Open MPI flags). ``version``
    is the first line of ``mpiexec --version`` with a number in it ("" for ``srun``, which
    is not asked). ``family`` is the MPI library the launcher belongs to, a key of
    :data:`PMI_OF_LIBRARY` (``"Open MPI"``, ``"Intel MPI"``, ``"MPICH"`` for a Hydra of MPICH
    or a derivative), or None (``srun``, or not known).
    """

    __slots__ = ("path", "kind", "version", "family")  # a plain class: typing costs import time

    def __init__(self, path: str, kind: str, version: str = "", family: str | None = None):
        self.path = path
        self.kind = kind
        self.version = version
        self.family = family

    def __repr__(self):
        return (f"Launcher(path={self.path!r}, kind={self.kind!r}, version={self.version!r}, "
                f"family={self.family!r})")


def choose_launcher() -> Launcher:
    """Return the launcher :func:`launch_command` starts ranks with.

    Inside a Slurm job (``SLURM_JOB_ID`` set and ``srun`` on PATH) the site's ``srun``;
    elsewhere :func:`find_launcher`'s ``mpiexec``/``mpirun``, asked whether it is Open MPI.

    Raises:
        FileNotFoundError: no launcher (see :func:`find_launcher`).
    """
    import shutil

    srun = shutil.which("srun") if os.environ.get("SLURM_JOB_ID") else None
    if srun:
        return Launcher(srun, "srun")
    return describe_launcher(find_launcher())


def describe_launcher(path: str) -> Launcher:
    """Return the :class:`Launcher` of the ``mpiexec``/``mpirun`` at ``path`` (asked its
    ``--version``: Open MPI or not, the version line, the library it belongs to)."""
    text = version_text(path)
    # The first line with a number: "mpiexec (Open MPI) 5.0.5", Hydra's "Version: 4.3.0".
    first = next((" ".join(line.split()) for line in text.splitlines()
                  if any(c.isdigit() for c in line)), "")
    if is_open_mpi(path, text):
        return Launcher(path, "open-mpi", first, "Open MPI")
    lower = text.lower()
    # Intel MPI's Hydra names Intel; MPICH's (and MVAPICH's) prints "HYDRA build details".
    family = "Intel MPI" if "intel" in lower else "MPICH" if "hydra" in lower else None
    return Launcher(path, "other", first, family)


def launch_command(n: int, bind_to_core: bool = False) -> list:
    """Return the launcher command (without the program) that starts ``n`` ranks.

    Inside a Slurm job (``SLURM_JOB_ID`` set and ``srun`` on PATH) this is the site's ``srun``:
    a new job step of ``n`` tasks of one CPU each, allowed to overlap the step already running
    (``--overlap``, Slurm >= 20.11), as when an experiment runs inside a submitit job, with
    ``--mpi=PMI`` where the site's PMI is not one the MPI library speaks (:func:`srun_pmi`).
    Elsewhere it is ``mpiexec``/``mpirun`` (see :func:`find_launcher`).

    Raises:
        FileNotFoundError: no launcher (see :func:`find_launcher`).
    """
    launcher = choose_launcher()
    if launcher.kind == "srun":
        cmd = [launcher.path, f"--ntasks={n}", "--cpus-per-task=1", "--overlap",
               "--kill-on-bad-exit=1"]
        pmi = srun_pmi()
        if pmi.flag:
            cmd.append(f"--mpi={pmi.flag}")
        if bind_to_core:
            cmd.append("--cpu-bind=cores")
        return cmd
    cmd = [launcher.path, "-n", str(n)]
    if launcher.kind == "open-mpi":
        cmd += open_mpi_flags(launcher.version, n)
        if bind_to_core:
            cmd += ["--bind-to", "core"]
    elif bind_to_core:
        cmd += ["-bind-to", "core"]
    return cmd


def without_launch_vars(env: dict) -> dict:
    """Return a copy of ``env`` without the variables an MPI launcher sets in its processes.

    A program started from inside a launched process (e.g. an experiment started by a submitit
    job that Slurm's ``srun`` launched with PMI) is not one of that launch's ranks; without
    these variables (nor ``IN_MPI``, :data:`WORLD_SIZE_VAR`, the task count of the ``srun``
    step, and what Open MPI 4's launcher sets besides, :data:`OPEN_MPI_RANK_VARS`) it decides
    its own MPI world, and its own ``mpiexec`` starts.
    """
    prefixes = (*LAUNCH_PREFIXES, *OPEN_MPI_RANK_PREFIXES, "PMI_")
    dropped = ("IN_MPI", WORLD_SIZE_VAR, "SLURM_STEP_NUM_TASKS", *OPEN_MPI_RANK_VARS)
    return {k: v for k, v in env.items()
            if k not in LAUNCH_VARS and k not in SIZE_VARS and k not in dropped
            and not k.startswith(prefixes)}


def rank_env(env: dict, n: int | None = None) -> dict:
    """Return a copy of ``env`` for the ``n`` ranks ``mpi_fork`` starts.

    ``IN_MPI=1``, ``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1`` as Spinning Up's mpi_fork
    sets them; and ``THP_MEM_ALLOC_ENABLE=1`` unless ``env`` has it (0 keeps PyTorch's
    default): PyTorch (2.2 and later) then puts its tensors of 2 MB or more on transparent
    huge pages, which MPICH copies between ranks faster (docs/large-models.md, huge pages).
    With ``n``, :data:`WORLD_SIZE_VAR` = ``n``: each rank checks its world has that size.
    """
    out = dict(env, MKL_NUM_THREADS="1", OMP_NUM_THREADS="1", IN_MPI="1")
    out.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if n is not None:
        out[WORLD_SIZE_VAR] = str(n)
    return out


def relaunch_argv() -> list:
    """Return the arguments after ``python`` that start this program again.

    ``['-m', NAME, *args]`` for a program started as ``python -m NAME``, else ``sys.argv``.

    Raises:
        ValueError: an interactive session, ``python -c`` or stdin: nothing to relaunch.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name and name != "__main__":  # started as python -m package.module
        if name.endswith(".__main__"):
            name = name[: -len(".__main__")]
        return ["-m", name, *sys.argv[1:]]
    if not sys.argv or sys.argv[0] in ("", "-c", "-"):
        raise ValueError(
            f"mpi_fork(): cannot relaunch this program (sys.argv[0] is "
            f"{(sys.argv[0] if sys.argv else '')!r}: an interactive session, python -c or "
            f"stdin); put the code in a script and run that")
    return list(sys.argv)
