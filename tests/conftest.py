"""Shared fixtures: launching Python programs under a real ``mpiexec``."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spinfast._mpi import launch as _launch

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"

# tests/programs holds programs that tests launch (under mpiexec or as plain processes); they are
# linted and covered like any module but are not tests themselves.
collect_ignore = ["programs"]


class Background:
    """Long, independent steps of one test module (mostly subprocess runs), run concurrently.

    ``add(name, fn, *needs)`` registers a step computing ``fn(*results of needs)``;
    ``start(names)`` submits those steps and the steps they need, each once, to a pool of
    ``workers`` threads (default ``os.cpu_count()``); ``result(name)`` waits for one step
    (submitting it if it was not) and raises its error, if any. Steps are submitted after what
    they need, and the pool takes them in order, so a running step only ever waits for steps
    already running.
    """

    def __init__(self, workers: int | None = None):
        self._steps: dict = {}
        self._futures: dict = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2)

    def add(self, name, fn, *needs):
        self._steps[name] = (fn, needs)

    def names(self):
        return self._steps.keys()

    def _submit(self, name):
        with self._lock:
            if name not in self._futures:
                fn, needs = self._steps[name]
                for need in needs:
                    self._submit(need)
                deps = [self._futures[need] for need in needs]
                self._futures[name] = self._pool.submit(
                    lambda: fn(*[d.result() for d in deps]))
            return self._futures[name]

    def start(self, names):
        for name in names:
            self._submit(name)

    def result(self, name):
        return self._submit(name).result()

    def wait_all(self):
        """Wait for every submitted step (errors stay with the tests that read them)."""
        with self._lock:
            futures = list(self._futures.values())
        for f in futures:
            f.exception()

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def early_steps(request, tmp_path_factory):
    """The :class:`Background` of steps that start with the session, not with their module.

    They run beside the whole session, on the core that single-process tests leave idle, in
    the order of the modules, and are ready when each module's tests come. A test module
    declares them in two ways:

    - ``EARLY_LAUNCHES = {test: [(program, n, args, timeout), ...]}``: launches of test
      programs (:func:`launch`) that the test ``test`` (a function's name, or one
      parametrization's, ``name[id]``) reads through :class:`Launches` (given
      ``early=early_steps``), started when it is selected;
    - ``start_early(items, tmp_path_factory, background)``: given the module's selected test
      items, adds its own steps (names of its own, not another module's) and starts those the
      items need; they read them as ``early_steps.result(name)``.

    One worker runs the steps when other modules' tests run too, so that at most one step
    competes with those tests at a time; a thread per core when one module runs alone.
    """
    selected: dict = {}
    for item in request.session.items:
        if getattr(item, "module", None) is not None:
            selected.setdefault(item.module, []).append(item)
    background = Background(1 if len(selected) > 1 else None)
    for module, items in selected.items():
        tests = {name for item in items for name in (item.name, item.originalname)}
        for test, launches in getattr(module, "EARLY_LAUNCHES", {}).items():
            for name, n, args, timeout in launches if test in tests else ():
                key = launch_key(name, n, args)
                if key not in background.names():
                    background.add(key, functools.partial(launch, tmp_path_factory, name, n,
                                                          args, timeout))
                    background.start([key])
        if hasattr(module, "start_early"):
            module.start_early(items, tmp_path_factory, background)
    yield background
    background.close()


def find_mpiexec() -> str | None:
    """The launcher mpi_fork finds: beside this interpreter (the ``mpi`` extra's wheel, or a
    per-library venv's own, see .ci/mpi-envs), else on PATH; None if there is none."""
    try:
        return _launch.find_launcher()
    except FileNotFoundError:
        return None


@functools.cache
def launcher_version(launcher: str) -> str:
    """The first line of ``launcher --version`` with a number in it ("" if none)."""
    return _launch.describe_launcher(launcher).version


@functools.cache
def launcher_env(launcher: str | None) -> dict[str, str]:
    """What ``launcher`` needs in the environment to run as root and oversubscribe 2 cores, in
    its own spelling: Open MPI 4's or 5's (:func:`spinfast._mpi.launch.open_mpi_env`); nothing
    for MPICH's or Intel MPI's Hydra, which do both as they are."""
    if launcher is None:
        return {}
    described = _launch.describe_launcher(launcher)
    return _launch.open_mpi_env(described.version) if described.kind == "open-mpi" else {}


def mpi_env(launcher: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a launch by ``launcher`` (default :func:`find_mpiexec`'s): this one,
    one OpenMP thread, what the launcher needs as root and oversubscribed, then ``extra``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.update(launcher_env(launcher or find_mpiexec()))
    env.update(extra)
    return env


@functools.cache
def mpi_library() -> str:
    """The first line of ``MPI.Get_library_version()`` of the mpi4py this interpreter loads
    ("" if none), asked in a child process (this one initialises no MPI)."""
    code = "from spinfast._mpi.launch import library_version; print(library_version())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def mpi_family() -> str | None:
    """"MPICH", "Intel MPI" or "Open MPI": the family of :func:`mpi_library` (None: another)."""
    return _launch.library_family(mpi_library())


def network_path() -> tuple[dict[str, str], str] | None:
    """``(env, transport)``: how this MPI library moves the bytes of a launch over its network
    module instead of shared memory, and what ``Split_type(COMM_TYPE_SHARED)`` then tells the
    ranks ("network": each rank its own node; "shared": one node). None: no way known.

    - MPICH: ``MPIR_CVAR_NOLOCAL=1`` (MPICH's own variable, ignored by the others): every rank
      its own node, all bytes through the network module;
    - Open MPI: the TCP transport alone (``--mca pml ob1 --mca btl tcp,self`` as variables);
      the ranks still see one node;
    - Intel MPI: libfabric's TCP provider without shared memory (``I_MPI_FABRICS=ofi
      FI_PROVIDER=tcp``); the ranks still see one node.
    """
    return {"MPICH": ({"MPIR_CVAR_NOLOCAL": "1"}, "network"),
            "Open MPI": ({"OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "tcp,self"}, "shared"),
            "Intel MPI": ({"I_MPI_FABRICS": "ofi", "FI_PROVIDER": "tcp"}, "shared"),
            }.get(mpi_family())


def network_env() -> dict[str, str]:
    """:func:`network_path`'s environment; skips the test where the library has none."""
    path = network_path()
    if path is None:
        pytest.skip(f"no known way to send this MPI library's bytes over its network module "
                    f"(MPI library: {mpi_library() or 'none'})")
    return path[0]


def rank_files(folder, size, name="out"):
    """The JSON each rank of an MPI test program wrote to ``{name}{rank}.json`` in ``folder``."""
    return [json.loads((folder / f"{name}{rank}.json").read_text()) for rank in range(size)]


def mpi_program(name: str) -> Path:
    """The path of the program ``tests/programs/{name}.py``; fail the test if there is none."""
    path = PROGRAMS / f"{name}.py"
    if not path.is_file():
        pytest.fail(f"no test program {name!r}: expected {path}")
    return path


def load_mpi_module(name: str):
    """Import the helper module ``tests/programs/{name}.py`` (one without side effects) by path.

    Programs import their helpers by plain name (their folder is ``sys.path[0]``); tests use
    this to share the same helpers, e.g. a model or the data each rank starts from.
    """
    module_name = f"_mpi_helper_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, mpi_program(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def run_program(name: str, cwd, n: int = 2, timeout: float = 120, args=(), check: bool = True,
                env: dict[str, str] | None = None):
    """Run ``tests/programs/{name}.py`` under ``mpiexec -n N`` in ``cwd``; return the process.

    Arguments reach the program as ``sys.argv[1:]`` (as strings); it writes its results in
    ``cwd``, its current directory. A hang fails the test at ``timeout`` instead of blocking CI.
    """
    launcher = find_mpiexec()
    if launcher is None:  # the mpi extra is part of the test setup; say so loudly
        pytest.fail("no mpiexec found: install the test setup with pip install '.[mpi,test]'")
    cmd = [launcher, "-n", str(n), sys.executable, str(mpi_program(name)), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=mpi_env(**(env or {})), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mpiexec -n {n} {name} failed with code {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def launch_key(name: str, n: int, args=()) -> tuple:
    return ("launch", name, n, *map(str, args))


def launch(tmp_path_factory, name: str, n: int, args=(), timeout: float = 120):
    """:func:`run_program` in a fresh folder of its own; return ``(folder, process)``."""
    folder = tmp_path_factory.mktemp(f"{name}{n}")
    return folder, run_program(name, folder, n=n, args=args, timeout=timeout)


class Launches:
    """Launches of one test program shared by a module's tests (for a module-scoped fixture).

    ``launches(n, *args)`` runs ``tests/programs/{name}.py`` under ``mpiexec -n n`` with
    ``args`` once, in a folder of its own, and returns ``(folder, process)``; later calls with
    the same ``n`` and ``args`` return the same. A launch that ``early`` (the session's
    :func:`early_steps`) started is waited for instead. A failed launch fails every test that
    asks for it, without launching again.
    """

    def __init__(self, tmp_path_factory, name: str, timeout: float = 120, early=None):
        self._factory, self._name, self._timeout = tmp_path_factory, name, timeout
        self._early = early
        self._runs: dict = {}

    def __call__(self, n: int, *args):
        key = launch_key(self._name, n, args)
        if key not in self._runs:
            try:
                if self._early is not None and key in self._early.names():
                    self._runs[key] = self._early.result(key)
                else:
                    self._runs[key] = launch(self._factory, self._name, n, args,
                                             self._timeout)
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                self._runs[key] = exc
        if isinstance(self._runs[key], BaseException):
            raise AssertionError(f"the shared launch failed: {self._runs[key]}")
        return self._runs[key]


@pytest.fixture
def run_mpi(tmp_path):
    """``run_mpi(name, n=2, timeout=120, args=(), check=True, env=None)``: :func:`run_program`
    in ``tmp_path``."""
    return functools.partial(run_program, cwd=tmp_path)


# ---------------------------------------------------------------------------------------------
# A real Slurm (tests marked `slurm`, tests/test_slurm.py): started by `bash .ci/slurm up`

@functools.cache
def slurm_absent() -> str | None:
    """Return why the tests marked ``slurm`` cannot run here; None when a Slurm node is up."""
    for cmd in ("sbatch", "squeue", "sinfo", "scontrol", "srun", "scancel"):
        if shutil.which(cmd) is None:
            return (f"no Slurm here ({cmd} is not on PATH): start a one-node Slurm with "
                    f"'bash .ci/slurm up' as root")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                              timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer: sinfo took more than 20 s"
    if proc.returncode != 0:
        return f"Slurm does not answer: {proc.stderr.strip() or proc.stdout.strip()}"
    states = proc.stdout.split()
    if not set(states) & {"idle", "mix", "alloc", "comp"}:  # '*': not responding
        return f"no Slurm node is up (sinfo says {states}); try 'bash .ci/slurm up'"
    return None


def pytest_collection_modifyitems(config, items):
    slurm_items = [item for item in items if "slurm" in item.keywords]
    reason = slurm_absent() if slurm_items else None
    for item in slurm_items if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))
