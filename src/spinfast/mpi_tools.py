"""MPI helpers, as ``spinup.utils.mpi_tools``: lazy, exact, and safe when ranks disagree.

Nothing here touches MPI until it is needed, and never without an MPI launch: importing this
module imports neither mpi4py nor numpy, and a program started without ``mpiexec`` (no launcher
variables such as ``PMI_RANK``, ``OMPI_COMM_WORLD_RANK`` or ``PMIX_RANK`` in the environment)
is one process of rank 0 whatever is installed. Under a launch, mpi4py is imported on the first
call; without mpi4py every rank runs as its own single process (with a warning).

Beyond Spinning Up:

* ``mpi_avg``/``mpi_sum``/``mpi_op`` keep the input dtype (Spinning Up casts to float32);
  ``mpi_statistics_scalar`` counts every element in float64 with one collective, merging
  Welford states; :func:`reduce_stat_states` does the same for many keys at once.
* Float arrays go through the compiled flat-buffer engine (:mod:`spinfast._flat`), which checks
  that every rank passes the same shapes: a mismatch raises the same error on every rank
  instead of hanging or computing garbage. :func:`allreduce_arrays` and
  :func:`broadcast_arrays` expose it for lists of arrays.
* Under MPI with several ranks, an uncaught exception on one rank prints its traceback and
  aborts the whole job (``MPI_Abort``) rather than leaving the other ranks blocked forever.
* ``mpi_fork`` uses ``srun`` inside a Slurm job (with the PMI the MPI library speaks), else
  finds the launcher beside the interpreter first, passes Open MPI the flags it needs as root
  or with more ranks than cores, relaunches ``python -m`` programs as such, propagates the exit
  code, and does nothing inside an existing launch. A rank whose world is not the one launched
  stops with one clear error (:mod:`spinfast._mpi.worldcheck`): never N copies of a program.

This module is the world and the collectives; how ranks are started lives in
:mod:`spinfast._mpi.launch`, the merge of statistics over ranks in :mod:`spinfast._mpi.statmerge`.
"""

from __future__ import annotations

import _thread
import os
import sys
import warnings

from spinfast._mpi import launch as _launch
from spinfast._mpi.launch import INSTALL_HINT as _INSTALL_HINT
from spinfast._mpi.launch import env_size as _env_size
from spinfast._mpi.launch import launched as _launched
from spinfast._mpi.statmerge import Merged
from spinfast._mpi.statmerge import merge_over_ranks as _merge_over_ranks
from spinfast._mpi.statmerge import reduce_states as _reduce_states
from spinfast._mpi.worldcheck import check_world as _check_world
from spinfast._mpi.worldcheck import install_abort_hook as _install_abort_hook

TYPE_CHECKING = False  # typing is not imported at run time (import cost)
if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

__all__ = [
    "proc_id", "num_procs", "mpi_fork", "msg", "mpi_op", "mpi_sum", "mpi_avg", "allreduce",
    "broadcast", "mpi_statistics_scalar", "reduce_stat_states", "Merged", "allreduce_arrays",
    "broadcast_arrays", "comm_world",
]


# (communicator or None, rank, size), set once on first use.
_world: tuple | None = None
_lock = _thread.allocate_lock()
_engines: dict = {}


# ---------------------------------------------------------------------------------------------
# The lazy world

def _resolve() -> tuple:
    global _world
    with _lock:
        if _world is not None:
            return _world
        comm = None
        mpi = sys.modules.get("mpi4py.MPI")
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            comm = mpi.COMM_WORLD  # the program brought MPI up itself: join it
        elif _launched():
            try:
                from mpi4py import MPI
            except ImportError:
                if _env_size() > 1 and not os.environ.get(_launch.WORLD_SIZE_VAR):
                    import warnings

                    warnings.warn(
                        f"spinfast.mpi_tools: launched as one of {_env_size()} MPI processes "
                        f"but mpi4py is not installed, so each runs alone as rank 0; install "
                        f"it with {_INSTALL_HINT}", RuntimeWarning, stacklevel=3)
            else:
                if not MPI.Is_initialized():
                    MPI.Init()
                comm = MPI.COMM_WORLD
        world = (None, 0, 1) if comm is None else (comm, comm.Get_rank(), comm.Get_size())
        if comm is not None or os.environ.get(_launch.WORLD_SIZE_VAR):
            _check_world(world[2])  # a world of another size than launched stops here
        if world[2] > 1:
            _install_abort_hook(comm, world[1], world[2])
        _world = world
        return _world


def comm_world():
    """Return ``mpi4py.MPI.COMM_WORLD`` under an MPI launch, or None in a single process.

    The first call under a launch imports mpi4py (initialising MPI); without a launch nothing
    is imported.
    """
    return _resolve()[0]


def proc_id() -> int:
    """Get rank of calling process (0 without an MPI launch)."""
    w = _world if _world is not None else _resolve()
    return w[1]


def num_procs() -> int:
    """Count active MPI processes (1 without an MPI launch)."""
    w = _world if _world is not None else _resolve()
    return w[2]


def msg(m, string=""):
    """Print ``m`` prefixed by this process's rank and ``string``, as Spinning Up does."""
    print(f"Message from {proc_id():d}: {string} \t " + str(m))


# ---------------------------------------------------------------------------------------------
# mpi_fork (the launcher, its flags and the relaunch: spinfast._mpi.launch)

def mpi_fork(n, bind_to_core=False):
    """Re-launches the current script with workers linked by MPI.

    Also, terminates the original process that launched it: it exits with the launcher's exit
    code (128 + signal number if the launcher was killed by a signal).

    Does nothing if ``n`` <= 1, if ``IN_MPI`` is set (this is a relaunched worker), or if the
    process already runs under an MPI launcher. The ranks get ``IN_MPI=1``, one OMP/MKL thread,
    ``THP_MEM_ALLOC_ENABLE=1`` unless set (see :doc:`large-models`) and ``SPINFAST_WORLD_SIZE=n``,
    which this call checks there. The launcher is ``srun`` inside a Slurm job (with the MPI
    library's PMI), else ``mpiexec``/``mpirun`` beside ``sys.executable`` or on PATH.

    Args:
        n (int or 'auto'): Number of process to split into; ``'auto'`` uses the number of
            physical cores this process may run on.
        bind_to_core (bool): Bind each MPI process to a core.

    Raises:
        TypeError: ``n`` is not an int or ``'auto'``.
        FileNotFoundError: no ``mpiexec``/``mpirun`` beside ``sys.executable`` or on PATH
            (install one with ``pip install 'spinfast[mpi]'``).
        ValueError: the program cannot be relaunched (interactive session or ``python -c``).
        RuntimeError: in a rank it started, whose MPI world is not of ``n`` ranks.
    """
    if isinstance(n, str) and n == "auto":
        n = _launch.physical_cores()
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"mpi_fork(): n must be an int or 'auto', got {n!r}; pass e.g. 4")
    n = int(n)
    if n <= 1:
        return
    if os.getenv("IN_MPI") is not None or _launched():
        if os.environ.get(_launch.WORLD_SIZE_VAR):
            _resolve()  # a rank mpi_fork started checks its world before the program goes on
        return
    import subprocess

    cmd = _launch.launch_command(n, bind_to_core) + [sys.executable,
                                                    *_launch.relaunch_argv()]
    sys.stdout.flush()
    sys.stderr.flush()
    code = subprocess.call(cmd, env=_launch.rank_env(os.environ, n))
    sys.exit(128 - code if code < 0 else code)


# ---------------------------------------------------------------------------------------------
# Reductions

_OP_NAMES = ("sum", "min", "max", "prod")


def _engine(name: str, buffer=None, engine=None):
    """The FlatBuffer of a call: ``buffer``, the deprecated ``engine``, or this module's."""
    if engine is not None:
        warnings.warn(f"{name}(): engine= is deprecated, pass buffer= (a FlatBuffer; 'engine' "
                      f"names one of its algorithms)", DeprecationWarning, stacklevel=3)
    found = buffer or engine or _engines.get(name)
    if found is None:
        from spinfast._flat import FlatBuffer

        found = _engines.setdefault(name, FlatBuffer())
    return found


def _op_name(op) -> str | None:
    """Map ``op`` (an mpi4py predefined op or 'sum'/'min'/'max'/'prod') to its name."""
    if isinstance(op, str):
        if op in _OP_NAMES:
            return op
        raise ValueError(f"mpi_op(): unknown op {op!r}; pass an mpi4py op (MPI.SUM, ...) or one "
                         f"of 'sum', 'min', 'max', 'prod'")
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        for name in _OP_NAMES:
            if op == getattr(mpi, name.upper()):
                return name
    return None


def _as_reducible(x, where: str):
    import numpy as np

    scalar = np.isscalar(x)
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype(np.int64)
    elif kind not in "iufc":
        raise TypeError(f"{where}: expected numbers, got a value of type {type(x).__name__} "
                        f"with dtype {arr.dtype}; pass numbers or a numeric array")
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr, scalar


def _reduce(x, op, mean: bool, where: str):
    import numpy as np

    arr, scalar = _as_reducible(x, where)
    comm, _, size = _resolve()
    name = "sum" if mean else _op_name(op)
    out_dtype = arr.dtype
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)  # MPI has no portable half type: reduce in float32
    out = np.array(arr, order="C", copy=True)
    if size > 1:
        if out.dtype in (np.float32, np.float64) and name is not None:
            _engine("reduce").allreduce(comm, [out], op="mean" if mean else name)
            mean = False
        else:
            from mpi4py import MPI

            mpi_op = getattr(MPI, name.upper()) if name is not None else op
            comm.Allreduce(MPI.IN_PLACE, out, op=mpi_op)
    if mean:
        if out.dtype.kind in "fc":
            out = out / out.dtype.type(size)  # in the input's dtype, as the engine does
        else:
            out = out / size  # integers become float64, as numpy's true division
    if out.dtype != out_dtype and out_dtype == np.float16:
        out = out.astype(np.float16)
    return out[()] if scalar else out


def mpi_op(x, op):
    """Reduce ``x`` element-wise over MPI processes with ``op``; return the result.

    Args:
        x: a number or an array of numbers (bool counts as int64). Same shape on every rank.
        op: an mpi4py reduction (``MPI.SUM``, ``MPI.MIN``, ``MPI.MAX``, ``MPI.PROD`` or any
            other ``MPI.Op``), or one of ``'sum'``, ``'min'``, ``'max'``, ``'prod'``.

    Returns:
        A new array of ``x``'s shape and dtype (a numpy scalar for a scalar ``x``); ``x`` is
        not modified.

    Raises:
        TypeError: ``x`` is not numeric.
        ValueError: unknown op name, or float arrays of different shapes on different ranks
            (raised on every rank).
    """
    return _reduce(x, op, False, "mpi_op()")


def mpi_sum(x):
    """Sum a scalar or array over MPI processes, keeping its dtype."""
    return _reduce(x, "sum", False, "mpi_sum()")


def mpi_avg(x):
    """Average a scalar or vector over MPI processes.

    Floating-point input keeps its dtype (float32 stays float32, float64 stays float64; the
    mean is ``sum / num_procs()`` in that dtype); integers give float64.
    """
    return _reduce(x, "sum", True, "mpi_avg()")


def allreduce(*args, **kwargs):
    """Call ``MPI.COMM_WORLD.Allreduce(*args, **kwargs)``; copy sendbuf to recvbuf alone.

    Without an MPI launch (one process) ``Allreduce(sendbuf, recvbuf, op=...)`` leaves
    ``recvbuf`` equal to ``sendbuf`` (nothing at all with ``MPI.IN_PLACE``), as MPI would.

    Raises:
        TypeError: missing buffers (single process).
        ValueError: buffers of different sizes (single process).
    """
    comm = comm_world()
    if comm is not None:
        return comm.Allreduce(*args, **kwargs)
    import numpy as np

    names = ("sendbuf", "recvbuf")
    bufs = list(args[:2]) + [kwargs.get(k) for k in names[len(args[:2]):]]
    if len(bufs) < 2 or bufs[0] is None or bufs[1] is None:
        raise TypeError("allreduce(): expected allreduce(sendbuf, recvbuf, op=...); pass both "
                        "buffers")
    send, recv = bufs
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and send is mpi.IN_PLACE:
        return None
    dst = np.asarray(recv)
    src = np.asarray(send)
    if src.size != dst.size:
        raise ValueError(f"allreduce(): sendbuf has {src.size} elements and recvbuf "
                         f"{dst.size}; pass buffers of the same size")
    np.copyto(dst, src.reshape(dst.shape), casting="unsafe")
    return None


def broadcast(x, root=0):
    """Overwrite ``x`` in place on every process with rank ``root``'s values.

    Args:
        x: a writable numpy array (or any writable buffer), the same shape on every rank; or a
            list/tuple of writable contiguous float32/float64 arrays (one flat-engine call).
        root: the rank whose values are sent.

    Raises:
        TypeError: ``x`` cannot be written in place (e.g. a Python number).
        ValueError: ``root`` is not a rank; float arrays of different shapes on different
            ranks (raised on every rank).
    """
    import numpy as np

    comm, _, size = _resolve()
    if isinstance(x, (list, tuple)):
        broadcast_arrays(x, root)
        return None
    if isinstance(root, bool) or not hasattr(root, "__index__") or not 0 <= root < size:
        raise ValueError(f"broadcast(): root {root!r} is not a rank of {size} processes; pass "
                         f"0 <= root < {size}")
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(memoryview(x))
        except TypeError:
            raise TypeError(f"broadcast(): cannot write into a {type(x).__name__!r} in place; "
                            f"pass a numpy array") from None
    if not arr.flags.writeable:
        raise TypeError("broadcast(): the array is read-only; pass a writable numpy array")
    if size == 1:
        return None
    contiguous = arr.flags.c_contiguous or arr.flags.f_contiguous
    if contiguous and arr.dtype in (np.float32, np.float64) and arr.dtype.isnative:
        _engine("bcast").bcast(comm, [arr], root=int(root))
    elif contiguous:
        comm.Bcast(arr, root=int(root))
    else:
        tmp = np.ascontiguousarray(arr)
        comm.Bcast(tmp, root=int(root))
        arr[...] = tmp
    return None


def allreduce_arrays(arrays, op="mean", buffer=None, *, engine=None):
    """Reduce a list of float32/float64 arrays over MPI processes, in place, with few collectives.

    Small arrays are packed into one buffer per dtype (one collective), large ones reduced in
    place (see :class:`spinfast._flat.FlatBuffer`). Without an MPI launch only checked.

    Args:
        arrays: list/tuple of writable, contiguous float32/float64 arrays; every rank passes
            the same shapes and dtypes in the same order.
        op: ``'mean'`` (default), ``'sum'``, ``'min'``, ``'max'`` or ``'prod'``.
        buffer: a ``FlatBuffer`` to use (keep one per recurring list, e.g. a model's
            gradients); default: one shared by this function. (``engine``: its former name,
            deprecated.)

    Raises:
        TypeError, ValueError: as ``FlatBuffer.allreduce`` (on every rank under MPI).
    """
    _engine("allreduce_arrays", buffer, engine).allreduce(comm_world(), arrays, op=op)


def broadcast_arrays(arrays, root=0, buffer=None, *, engine=None):
    """Copy rank ``root``'s float32/float64 arrays into every other rank's, in place.

    Args:
        arrays: list/tuple of writable, contiguous float32/float64 arrays; same layout on every
            rank.
        root: the rank whose values are sent.
        buffer: a ``FlatBuffer`` to use; default: one shared by this function. (``engine``:
            its former name, deprecated.)

    Raises:
        TypeError, ValueError: as ``FlatBuffer.bcast`` (on every rank under MPI).
    """
    _engine("broadcast_arrays", buffer, engine).bcast(comm_world(), arrays, root=root)


# ---------------------------------------------------------------------------------------------
# Statistics: Welford states merged over ranks (the merge itself: spinfast._mpi.statmerge)

def reduce_stat_states(keys: Sequence[str], states: np.ndarray,
                       counts: np.ndarray | None = None,
                       per_rank: np.ndarray | None = None) -> Merged:
    """Merge per-key Welford states (and quantile-sketch counts) over all ranks, ONE collective.

    :func:`mpi_statistics_scalar` for many keys at once, on states rather than values: a
    state is what ``spinfast._stats.Welford.state`` gives, ``(count, mean, M2, min, max)``
    at the positions ``spinfast._stats.STATE_*``. ``EpochLogger.dump_tabular`` merges a row
    with it; a program with its own accumulators can too. Every rank must call it.

    Args:
        keys: the key of each row, in the same order on every rank.
        states: (k, 5) float64 rows ``(count, mean, M2, min, max)`` in the order of ``keys``;
            an empty row is ``(0, 0, 0, inf, -inf)`` (``spinfast._stats.EMPTY_STATE``).
        counts: optional float64 array of quantile-sketch counts, summed over ranks (the
            merge of sketches). Its shape must be the same on every rank, which the caller
            guarantees (EpochLogger sizes it by the keys given to ``track_quantiles``, which
            all ranks agree on); it travels in the same collective as the states.
        per_rank: optional float64 values of this rank (the same number on every rank),
            gathered, not summed, in the same collective (EpochLogger's system metrics).

    Returns:
        A :class:`Merged` named tuple ``(states, counts, per_rank)``, the same on every rank,
        whatever arguments were given: ``states`` the (k, 5) merged states, bit-identical on
        every rank (merged in rank order with ``spinfast._stats.merge_states``); ``counts``
        the summed counts in the shape given (None without ``counts``); ``per_rank`` the
        (ranks, m) array of every rank's values (None without ``per_rank``). Always new
        float64 arrays: in a single process, copies of the inputs, and no MPI is touched.

    One fixed-size Allgather carries a header (key count and a 64-bit hash of the keys), the
    first 64 rows and the counts; more keys take one more collective for the rest.

    Raises:
        ValueError: the keys differ between ranks (on EVERY rank, naming the differing keys;
            never a hang, never a wrong number), or ``states`` is not (len(keys), 5). Keys in a
            different order on different ranks are matched by name.
    """
    return _reduce_states(_world if _world is not None else _resolve(), keys, states, counts,
                          per_rank)


def mpi_statistics_scalar(x, with_min_and_max=False):
    """Get mean/std and optional min/max of scalar x across MPI processes.

    Every element of ``x`` on every rank counts once; statistics in float64 (population std,
    ddof=0), from Welford states merged over ranks in one collective. NaN and inf follow
    numpy. No values on any rank gives NaN for every statistic.

    Args:
        x: An array containing samples of the scalar to produce statistics for (any shape; a
            rank may have none).
        with_min_and_max (bool): If true, return min and max of x in addition to mean and std.

    Returns:
        ``(mean, std)`` or ``(mean, std, min, max)`` as numpy float64 scalars.

    Raises:
        TypeError: ``x`` is not numeric.
    """
    import numpy as np

    from spinfast._stats import Welford

    acc = Welford()
    acc.push(x)
    comm, rank, size = _world if _world is not None else _resolve()
    if size > 1:
        merged = _merge_over_ranks(comm, rank, size, _STATS_KEY,
                                   np.array([acc.state], np.float64), None)
        acc = Welford.from_state(merged.states[0])
    mean, std, lo, hi = (np.float64(acc.mean), np.float64(acc.std), np.float64(acc.min),
                         np.float64(acc.max))
    if with_min_and_max:
        return mean, std, lo, hi
    return mean, std


_STATS_KEY = ("mpi_statistics_scalar",)
