"""What the flat engine would do at cluster scale: the cost model on paper, 2 to 1024 ranks.

Run::

    python bench/scale.py              # tables from the recorded figures (no MPI needed)
    python bench/scale.py --measure    # measure alpha and beta here first (mpiexec -n 2,
                                       # shared memory and MPIR_CVAR_NOLOCAL=1)

For each set of constants (alpha: latency per message, beta: seconds per byte; the other
constants are the defaults of ``spinfast._flat.cost_model``), the tables give the predicted
time of a mean over 10k, 1M, 10M and 100M float32 (an array in place) along each path, the
engine's ring and recursive doubling and MPI's Allreduce, and the path ``algorithm='auto'``
picks (``spinfast._flat.choose``); then the same for a broadcast of a model's parameters (the
tree, the two-rank pair, MPI's Bcast; 5 buffers). The sets:

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

from spinfast._flat import choose, cost_model, predict

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
