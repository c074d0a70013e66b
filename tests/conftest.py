"""Shared fixtures: programs launched under a real ``mpiexec``, long steps started early.

What is not a fixture (the progress reader, the program runner, the environment) is in
``helpers.py``.
"""

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
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait

import pytest
from helpers import find_mpiexec, launcher_env, mpi_program, program_env, run_program

from spinfast._mpi import launch as _launch

# tests/programs holds programs that tests launch (under mpiexec or as plain processes); they are
# linted and covered like any module but are not tests themselves.
collect_ignore = ["programs"]


class Step:
    """A long, independent piece of work that tests read: mostly a program's run.

    ``Step(fn, *needs)`` computes ``fn(tmp_path_factory, *results of needs)`` once per
    session (``needs`` are Steps). A test that reads a step declares it with the marker
    ``@pytest.mark.early(step, ...)`` (on the test, or on one ``pytest.param``): the session
    starts the steps of the selected tests with its first test (:func:`early_steps`), and the
    test reads the result with ``early_steps.result(step)``. ``timeout`` bounds that wait.
    """

    def __init__(self, fn, *needs, name=None, timeout: float = 900):
        self.fn, self.needs, self.timeout = fn, needs, timeout
        self.name = name or getattr(fn, "__name__", "step")

    def __repr__(self):
        return f"<Step {self.name}>"


def launch_step(name: str, n: int, args=(), timeout: float = 120) -> Step:
    """The :class:`Step` of one :func:`launch` of ``tests/programs/{name}.py`` under
    ``mpiexec -n n`` with ``args``: its result is ``(folder, process)``."""
    return Step(functools.partial(launch, name=name, n=n, args=args, timeout=timeout),
                name=f"{name} -n {n} {' '.join(map(str, args))}".rstrip(),
                timeout=timeout + 600)


class Background:
    """:class:`Step` s run concurrently, each once, beside the tests.

    ``start(steps)`` submits those steps and the steps they need to a pool of ``workers``
    threads (default ``os.cpu_count()``); ``result(step)`` waits for one (submitting it if it
    was not) and raises its error, if any. Steps are submitted after what they need, and the
    pool takes them in order, so a running step only ever waits for steps already running.
    """

    def __init__(self, tmp_path_factory, workers: int | None = None):
        self._factory = tmp_path_factory
        self._futures: dict = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2)

    def _submit(self, step: Step):
        with self._lock:
            if step not in self._futures:
                deps = [self._submit(need) for need in step.needs]
                self._futures[step] = self._pool.submit(
                    lambda: step.fn(self._factory, *[d.result() for d in deps]))
            return self._futures[step]

    def start(self, steps):
        for step in steps:
            self._submit(step)

    def result(self, step: Step, timeout: float | None = None):
        """Wait at most ``timeout`` seconds (default: the step's) for ``step``'s result.

        Raises:
            TimeoutError: not done in time (the step goes on; its output stays unread).
            Exception: what the step raised.
        """
        wait = step.timeout if timeout is None else timeout
        try:
            return self._submit(step).result(timeout=wait)
        except FutureTimeout:
            raise TimeoutError(f"Background.result(): {step!r} not done after {wait} s") \
                from None

    def wait_all(self, timeout: float = 1800):
        """Wait for every submitted step (errors stay with the tests that read them)."""
        with self._lock:
            futures = list(self._futures.values())
        futures_wait(futures, timeout=timeout)

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def early_steps(request, tmp_path_factory):
    """The :class:`Background` of the steps that start with the session, not with their test.

    The steps named by the ``early`` markers of the selected tests run beside the whole
    session, on the core that single-process tests leave idle, in the order of the tests, and
    are ready when their tests come. One worker runs them when several modules' tests run, so
    that at most one step competes with those tests at a time; a thread per core when one
    module runs alone.
    """
    items = [item for item in request.session.items if not _skipped(item)]
    modules = {getattr(item, "module", None) for item in items}
    background = Background(tmp_path_factory, 1 if len(modules) > 1 else None)
    for item in items:
        for mark in item.iter_markers("early"):
            background.start(mark.args)
    yield background
    background.close()


def _skipped(item) -> bool:
    """Whether ``item`` has a ``skip`` mark or a ``skipif`` whose condition is True: its
    steps would run for nothing (e.g. Spinning Up's tests without its source)."""
    return any(mark.name == "skip" or (mark.name == "skipif" and mark.args[:1] == (True,))
               for mark in item.iter_markers())


def mpi_env(launcher: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a launch by ``launcher`` (default :func:`helpers.find_mpiexec`'s):
    :func:`helpers.program_env`, what the launcher needs as root and oversubscribed, then
    ``extra``."""
    return program_env(**{**launcher_env(launcher or find_mpiexec()), **extra})


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


def run_mpi_program(name: str, cwd, n: int = 2, timeout: float = 120, args=(),
                    check: bool = True, env: dict[str, str] | None = None):
    """Run ``tests/programs/{name}.py`` under ``mpiexec -n N`` in ``cwd``; return the process.

    Arguments reach the program as ``sys.argv[1:]`` (as strings); it writes its results in
    ``cwd``, its current directory. See :func:`helpers.run_program`.
    """
    return run_program([mpi_program(name), *args], cwd, n=n, env=env, timeout=timeout,
                       check=check)


def launch(tmp_path_factory, name: str, n: int, args=(), timeout: float = 120):
    """:func:`run_mpi_program` in a fresh folder of its own; return ``(folder, process)``."""
    folder = tmp_path_factory.mktemp(f"{name}{n}")
    return folder, run_mpi_program(name, folder, n=n, args=args, timeout=timeout)


class Launches:
    """Launches of one test program shared by a module's tests (for a module-scoped fixture).

    ``launches(n, *args)`` runs ``tests/programs/{name}.py`` under ``mpiexec -n n`` with
    ``args`` once, in a folder of its own, and returns ``(folder, process)``; later calls with
    the same ``n`` and ``args`` return the same. A failed launch fails every test that asks
    for it, without launching again.
    """

    def __init__(self, tmp_path_factory, name: str, timeout: float = 120):
        self._factory, self._name, self._timeout = tmp_path_factory, name, timeout
        self._runs: dict = {}

    def __call__(self, n: int, *args):
        key = (n, *map(str, args))
        if key not in self._runs:
            try:
                self._runs[key] = launch(self._factory, self._name, n, args, self._timeout)
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                self._runs[key] = exc
        if isinstance(self._runs[key], BaseException):
            raise AssertionError(f"the shared launch failed: {self._runs[key]}")
        return self._runs[key]


@pytest.fixture
def run_mpi(tmp_path):
    """``run_mpi(name, n=2, timeout=120, args=(), check=True, env=None)``:
    :func:`run_mpi_program` in ``tmp_path``."""
    return functools.partial(run_mpi_program, cwd=tmp_path)


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
    mpich_items = [item for item in items if "mpich" in item.keywords]
    if mpich_items and mpi_family() != "MPICH":
        reason = (f"relies on MPICH's own variables (MPIR_CVAR_*) or launch line; mpi4py "
                  f"loads {mpi_library() or 'no MPI library'}")
        for item in mpich_items:
            item.add_marker(pytest.mark.skip(reason=reason))
