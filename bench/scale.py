"""What the flat engine would do at cluster scale: the cost model on paper, 2 to 1024 ranks.

Run::

    python bench/scale.py              # tables from the recorded figures (no MPI needed)
    python bench/scale.py --measure    # measure alpha and beta here first (mpiexec -n 2,
                                       # shared memory and MPIR_CVAR_NOLOCAL=1)

The alpha-beta cost model lives here (:func:`cost_model`, :func:`predict`, :func:`choose`):
the engine itself decides with a table (``csrc/_flat_paths.pxi``, ``spinfast._flat.choose``),
which is this model evaluated at its default constants (tests/test_flat.py checks that they
agree for 2 to 8 ranks).

For each set of constants (alpha: latency per message, beta: seconds per byte; the other
constants are the defaults of :func:`cost_model`), the tables give the predicted time of a
mean over 10k, 1M, 10M and 100M float32 (an array in place) along each path, the engine's ring
and recursive doubling and MPI's Allreduce, and the path the model picks under
``algorithm='auto'``; then the same for a broadcast of a model's parameters (the tree, the
two-rank pair, MPI's Bcast; 5 buffers). The sets:

* here, shared memory: measured on this 2-core VM (ping-pong of 8 B and 1-16 MB messages);
* here, every rank its own node (``MPIR_CVAR_NOLOCAL=1``): MPICH's network module, measured;
* an EDR InfiniBand cluster: published figures, 2 us latency and 12.5 GB/s per link.

Beyond 2 ranks "here" is extrapolated (the VM has 2 cores); it shows where the model puts the
switch from the engine's paths to MPI's, which is the point of the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

# The cost model (formerly csrc/_flat_cost.pxi). A path is one way of moving a buffer of n
# bytes among p ranks (mpi, ring, doubling, tree, pair: see csrc/_flat_paths.pxi), predicted
# with the alpha-beta model (Hockney; the collective formulas of Thakur, Rabenseifner and
# Gropp, "Optimization of Collective Communication Operations in MPICH", 2005), L = ceil(log2 p):
#
#   alpha   seconds per message (latency)            beta   seconds per byte moved
#   gamma   seconds per byte added (reduction)       delta  seconds per byte of a temporary
#   over    seconds the engine adds per message            buffer MPI's Allreduce allocates
#           (the mpi4py call of each piece)                 (fresh pages) on large messages
#
#   mpi allreduce      n <= 2 KiB: L (alpha + n beta + n gamma)
#                      else: 2 L alpha + 2 (p-1)/p n beta + (p-1)/p n gamma + n delta
#                      + n gamma when a mean is divided in a separate pass (arrays in place)
#   ring               2 (p-1) (alpha + over) + 2 (p-1)/p n beta + (p-1)/p n gamma
#   doubling           L (alpha + over + n beta + n gamma)
#   mpi bcast          per buffer: p < 8 or n < 12 KiB: L (alpha + n beta)
#                      else (scatter + allgather): (L + p - 1) alpha + 2 (p-1)/p n beta
#                      + the agreement flag, a one-element Allreduce: L alpha
#   tree               L (alpha + m over + N beta) for m buffers of N bytes in all, + the flag
#   pair               alpha + m over + N beta (the flag rides along: no collective for it)
#
# The engine's paths are candidates only up to engine_max_ranks ranks under 'auto'.

PATHS = ("mpi", "ring", "doubling", "tree", "pair")
OPS = ("sum", "mean", "min", "max", "prod", "bcast")
# Ranks sharing memory: measured on the 2-core VM this package is developed on (MPICH 4 from
# PyPI, mpi4py 4): one-way latency of an 8-byte message 1.8 us; 16 GB/s for 1-16 MB messages;
# numpy adds 0.05 ns/B; a fresh temporary buffer costs 0.14 ns/B to fault in; one mpi4py
# point-to-point call 1 us. The engine won at 2 ranks (the bench) and kept winning at 4.
# Ranks on several nodes: published figures of an EDR InfiniBand cluster (100 Gb/s per link,
# 12.5 GB/s; 2 us MPI latency). The engine's paths are kept up to 2 ranks, where the ring is
# MPI's own algorithm without its temporary buffer and separate division (measured under
# MPIR_CVAR_NOLOCAL=1: 10M-float means 14 ms against 17 ms for MPI's Allreduce + division).
MODELS = {
    "shared": {"alpha": 1.8e-6, "beta": 0.061e-9, "gamma": 0.05e-9, "delta": 0.14e-9,
               "over": 1.0e-6, "engine_max_ranks": 4},
    "network": {"alpha": 2.0e-6, "beta": 0.08e-9, "gamma": 0.05e-9, "delta": 0.14e-9,
                "over": 1.0e-6, "engine_max_ranks": 2},
}
# MPICH's switch points: short Allreduce (recursive doubling) and short/large Bcast.
MPI_SHORT_ALLREDUCE = 2048
MPI_SHORT_BCAST = 12288
MPI_LARGE_BCAST_RANKS = 8


def cost_model(transport: str = "shared") -> dict:
    """Return the constants of the model for ``'shared'`` memory or the ``'network'``."""
    if transport not in MODELS:
        raise ValueError(f"transport must be 'shared' or 'network', got {transport!r}")
    return dict(MODELS[transport])


def _model(model: dict | None, transport: str) -> dict:
    m = cost_model(transport)
    unknown = set(model or ()) - set(m)
    if unknown:
        raise ValueError(f"model has unknown keys {sorted(unknown)}; use the keys of "
                         f"cost_model()")
    m.update(model or {})
    return m


def _steps(p: int) -> int:
    return (p - 1).bit_length()


def _predict(m: dict, path: str, reduce: bool, p: int, n: float, count: int,
             divide_apart: bool) -> float:
    steps, frac = _steps(p), (p - 1.0) / p
    a, b, g, o = m["alpha"], m["beta"], m["gamma"], m["over"]
    if p < 2:
        return 0.0
    if reduce:
        if path == "ring":
            return 2 * (p - 1) * (a + o) + 2 * frac * n * b + frac * n * g
        if path == "doubling":
            return steps * (a + o + n * (b + g))
        if n <= MPI_SHORT_ALLREDUCE:
            t = steps * (a + n * (b + g))
        else:
            t = 2 * steps * a + 2 * frac * n * b + frac * n * g + n * m["delta"]
        return t + (n * g if divide_apart else 0.0)
    if path == "pair":
        return a + count * o + n * b
    if path == "tree":
        return steps * (2 * a + count * o + n * b)  # (+ the flag's alpha)
    n = n / count  # MPI's Bcast of each buffer (all of the same size here), and the flag
    if p < MPI_LARGE_BCAST_RANKS or n < MPI_SHORT_BCAST:
        t = steps * (a + n * b)
    else:
        t = (steps + p - 1) * a + 2 * frac * n * b
    return count * t + steps * a


def _check(where: str, op: str, p: int, path: str | None = None) -> None:
    if op not in OPS:
        raise ValueError(f"{where}: op must be one of {', '.join(map(repr, OPS[:-1]))} or "
                         f"'bcast', got {op!r}")
    if path is not None and path not in PATHS:
        raise ValueError(f"{where}: path must be one of {', '.join(map(repr, PATHS))}, "
                         f"got {path!r}")
    if p < 1:
        raise ValueError(f"{where}: ranks must be >= 1, got {p!r}")


def predict(path: str, op: str, ranks: int, nbytes: float, transport: str = "shared",
            buffers: int = 1, model: dict | None = None) -> float:
    """Return the seconds the model predicts for moving ``nbytes`` along ``path``.

    ``buffers``: how many buffers a broadcast moves; ``model``: a dict overriding some
    constants of :func:`cost_model`.
    """
    m = _model(model, transport)
    _check("predict()", op, ranks, path)
    return _predict(m, path, op != "bcast", ranks, nbytes, max(buffers, 1),
                    op == "mean" and path == "mpi")


def choose(op: str, ranks: int, nbytes: int, transport: str = "shared",
           algorithm: str = "auto", buffers: int = 1, packed: bool = False,
           model: dict | None = None) -> str:
    """Return the path the model predicts cheapest (what FlatBuffer's table should say).

    ``packed``: the packed buffer of small arrays (a mean is divided while unpacking).
    """
    m = _model(model, transport)
    _check("choose()", op, ranks)
    p = ranks
    if algorithm == "mpi" or (algorithm == "auto" and p > m["engine_max_ranks"]) or p < 2:
        return "mpi"
    if op == "bcast":
        if buffers == 0:
            return "mpi"
        if p == 2:
            return "pair"
        best = _predict(m, "mpi", False, p, nbytes, buffers, False)
        if algorithm == "engine" or _predict(m, "tree", False, p, nbytes, buffers, False) < best:
            return "tree"
        return "mpi"
    if op not in ("sum", "mean") or nbytes == 0:
        return "mpi"
    best, path = _predict(m, "mpi", True, p, nbytes, 1, op == "mean" and not packed), "mpi"
    if algorithm == "engine":
        best = float("inf")
    for candidate in ("ring", "doubling") if p & (p - 1) == 0 else ("ring",):
        t = _predict(m, candidate, True, p, nbytes, 1, False)
        if t < best:
            best, path = t, candidate
    return path

RANKS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
SIZES = {"10k": 10_000, "1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
# (alpha s, beta s/B, transport whose policy applies): measured with --measure on this VM
RECORDED = {
    "here, shared memory (measured)": (1.83e-6, 0.061e-9, "shared"),
    "here, MPIR_CVAR_NOLOCAL=1 (measured)": (1.53e-6, 0.279e-9, "network"),
    "EDR InfiniBand cluster (published: 2 us, 12.5 GB/s)": (2.0e-6, 0.08e-9, "network"),
}
REDUCE_PATHS = ("ring", "doubling", "mpi")
BCAST_PATHS = ("pair", "tree", "mpi")
BCAST_BUFFERS = 5


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def table(title: str, alpha: float, beta: float, transport: str) -> str:
    """Markdown tables of predicted mean and broadcast times (ms) under one set of constants."""
    model = {"alpha": alpha, "beta": beta}
    lines = [f"#### {title}: alpha {alpha * 1e6:.2f} us, beta {beta * 1e9:.3f} ns/B "
             f"({1 / beta / 1e9:.1f} GB/s)", "",
             "Mean of n float32, ms: ring / doubling / MPI Allreduce -> auto's pick", "",
             "| ranks | " + " | ".join(SIZES) + " |", "|---" * (len(SIZES) + 1) + "|"]
    for p in RANKS:
        cells = []
        for n in SIZES.values():
            t = [predict(path, "mean", p, 4 * n, transport, model=model) for path in REDUCE_PATHS]
            pick = choose("mean", p, 4 * n, transport, model=model)
            cells.append(" / ".join(map(_ms, t)) + f" -> **{pick}**")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", f"Broadcast of n float32 in {BCAST_BUFFERS} buffers, ms: pair (2 ranks) / tree "
              f"/ MPI Bcast -> auto's pick", "",
              "| ranks | " + " | ".join(SIZES) + " |", "|---" * (len(SIZES) + 1) + "|"]
    for p in RANKS:
        cells = []
        for n in SIZES.values():
            t = [predict(path, "bcast", p, 4 * n, transport, buffers=BCAST_BUFFERS, model=model)
                 if path != "pair" or p == 2 else None for path in BCAST_PATHS]
            pick = choose("bcast", p, 4 * n, transport, buffers=BCAST_BUFFERS, model=model)
            cells.append(" / ".join("-" if x is None else _ms(x) for x in t) + f" -> **{pick}**")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pingpong() -> None:
    """Under mpiexec -n 2: print 'alpha beta' from a ping-pong between ranks 0 and 1."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    def one_way(nbytes: int, reps: int) -> float:
        buf = np.zeros(nbytes, np.uint8)
        times = []
        for _ in range(reps):
            comm.Barrier()
            t0 = time.perf_counter()
            if rank == 0:
                comm.Send(buf, 1, 1)
                comm.Recv(buf, 1, 1)
            else:
                comm.Recv(buf, 0, 1)
                comm.Send(buf, 0, 1)
            times.append((time.perf_counter() - t0) / 2)
        return statistics.median(times[reps // 10:])

    alpha = one_way(8, 2000)
    small, large = 1 << 20, 1 << 24
    beta = (one_way(large, 40) - one_way(small, 200)) / (large - small)
    if rank == 0:
        print(f"{alpha!r} {beta!r}")


def measure() -> dict[str, tuple[float, float, str]]:
    """Measure alpha and beta here, on shared memory and under MPIR_CVAR_NOLOCAL=1."""
    launcher = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or \
        shutil.which("mpiexec")
    if launcher is None:
        raise SystemExit("scale.py --measure: no mpiexec found; pip install '.[mpi]'")
    out = {}
    for title, extra, transport in (("here, shared memory (measured now)", {}, "shared"),
                                    ("here, MPIR_CVAR_NOLOCAL=1 (measured now)",
                                     {"MPIR_CVAR_NOLOCAL": "1"}, "network")):
        env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
        proc = subprocess.run([launcher, "-n", "2", sys.executable, __file__, "--pingpong"],
                              env=env, capture_output=True, text=True, check=True, timeout=300)
        alpha, beta = map(float, proc.stdout.split()[-2:])
        out[title] = (alpha, beta, transport)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the tables (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true",
                        help="measure alpha and beta here first (mpiexec -n 2)")
    parser.add_argument("--pingpong", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pingpong:
        pingpong()
        return
    sets = dict(RECORDED)
    if args.measure:
        sets.update(measure())
    print("Defaults of the cost model (other constants):",
          {k: v for k, v in cost_model().items() if k not in ("alpha", "beta")})
    for title, (alpha, beta, transport) in sets.items():
        print()
        print(table(title, alpha, beta, transport))


if __name__ == "__main__":
    main()
