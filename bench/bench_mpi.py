"""MPI hot paths side by side with plain references, measured in the same run.

Run (two ranks; rank 0 reports, the other ranks' output is discarded)::

    mpiexec -n 2 python -m pytest bench/bench_mpi.py -p no:cacheprovider

add ``--check-targets`` to fail on a missed ratio. Collected without a launch (``python -m
pytest bench``), this file runs itself that way and shows the report. The spinfast side and
the reference alternate round by round (``mpibench.interleaved``), each round after an untimed
barrier; round counts are fixed, so all ranks make the same collectives. Times are rank 0's.

Groups (ratio = reference median / spinfast median, so > 1 means spinfast is faster):

* ``grads mean ...: engine vs raw``: the flat engine's mean-Allreduce of a PyTorch-like list of
  12 float32 tensors (an MLP's weights and biases) against ONE raw
  ``comm.Allreduce(MPI.IN_PLACE, buf)`` (a sum, no division) of a buffer of the same bytes.
  Targets: overhead <= 1.10x at 10k, 1M and 10M (ratio >= 0.91; 1.5x at 10k before the
  cost model).
* ``grads mean ...: engine vs engine``: the same call with ``algorithm='auto'`` (the cost
  model's choice) against ``algorithm='engine'`` (the engine's own paths forced). With the
  line above: auto is at most 1.10x the better of MPI's Allreduce and the engine's best path
  (target >= 0.91 on both lines at 10k, 1M and 10M). Run it on shared memory and with
  ``MPIR_CVAR_NOLOCAL=1`` in the environment (every rank its own node).
* ``grads mean ...: engine vs per-tensor``: against Spinning Up's ``mpi_avg_grads`` data path,
  one ``mpi_avg`` per tensor (float32 copy in, Allreduce into a new buffer, divide, copy out).
  Targets: >= 3x at 10k, >= 1.5x at 1M.
* ``mpi_statistics_scalar``: one Welford-state Allgather against Spinning Up's 4 Allreduces.
* ``import spinfast.mpi_tools``: a fresh interpreter importing the module (no launch) against
  bare Python; the difference must stay under 50 ms. Spinning Up's module imports numpy and
  mpi4py (initialising MPI) at import; that cost is shown as a third line.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from mpibench import COMM, RANK, UNDER_MPI, clean_env, interleaved, select_tests
from reference import reference_mpi_avg_grads, statistics_scalar

from spinfast import mpi_tools
from spinfast._flat import FlatBuffer

if UNDER_MPI:
    from mpi4py import MPI


def mlp_grads(hidden: int, obs: int = 64, act: int = 8) -> list[np.ndarray]:
    """Gradients of a 6-layer MLP: 12 float32 tensors (weight, bias per layer)."""
    dims = [obs] + [hidden] * 5 + [act]
    rng = np.random.default_rng(RANK)
    out = []
    for n_in, n_out in itertools.pairwise(dims):
        out += [rng.standard_normal((n_out, n_in)).astype(np.float32),
                rng.standard_normal(n_out).astype(np.float32)]
    return out


# ~10k, ~1M and ~10M parameters
MODELS = {"10k": (40, 2000), "1M": (490, 200), "10M": (1570, 20)}


GRADS_TARGETS = {
    "raw": {"10k": 1 / 1.10, "1M": 1 / 1.10, "10M": 1 / 1.10},
    "engine": {"10k": 1 / 1.10, "1M": 1 / 1.10, "10M": 1 / 1.10},
    "per-tensor": {"10k": 3.0, "1M": 1.5},
}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("against", list(GRADS_TARGETS))
def test_grads_mean(benchmark, against, model):
    hidden, rounds = MODELS[model]
    grads = mlp_grads(hidden)
    benchmark.extra_info["elements"] = sum(g.size for g in grads)
    engine = FlatBuffer()  # algorithm='auto' unless SPINFAST_COLLECTIVES says otherwise
    if against == "raw":
        buf = np.concatenate([g.ravel() for g in grads])

        def reference():
            COMM.Allreduce(MPI.IN_PLACE, buf)
    elif against == "engine":  # the engine's own paths, whatever the cost model says
        forced = FlatBuffer(algorithm="engine")
        reference_grads = [g.copy() for g in grads]

        def reference():
            forced.allreduce(COMM, reference_grads, op="mean")
    else:
        def reference():
            reference_mpi_avg_grads(COMM, grads)
    interleaved(benchmark, f"grads mean {model}: engine vs {against}",
                GRADS_TARGETS[against].get(model), rounds,
                lambda: engine.allreduce(COMM, grads, op="mean"), reference)


def test_mpi_statistics_scalar(benchmark):
    x = np.random.default_rng(RANK).standard_normal(1000).astype(np.float32)
    interleaved(benchmark, "mpi_statistics_scalar 1000, min/max", 1.5, 2000,
                lambda: mpi_tools.mpi_statistics_scalar(x, True),
                lambda: statistics_scalar(x, True, COMM))


IMPORTS = {
    "spinfast": "import spinfast.mpi_tools",
    "bare": "pass",
    "spinup-style": "import numpy; from mpi4py import MPI",
}


def test_import_time(benchmark):
    """A fresh interpreter per round, the three imports in turns (spinfast against the
    spinup-style imports, over bare Python); only rank 0 measures (the others wait at a
    barrier)."""
    env = clean_env()

    def importing(what):
        cmd = [sys.executable, "-c", IMPORTS[what]]

        def run():
            if RANK == 0:
                subprocess.run(cmd, env=env, check=True)
        return run

    interleaved(benchmark, "import spinfast.mpi_tools (fresh interpreter, no launch)", None,
                15, importing("spinfast"), importing("spinup-style"), importing("bare"))
    info = benchmark.extra_info  # the medians, unless under --benchmark-disable
    if RANK == 0 and "spinfast_median" in info:
        extra = info["spinfast_median"] - info["baseline_median"]
        print(f"\nimport spinfast.mpi_tools: {extra * 1e3:.1f} ms above bare Python "
              f"(spinup-style imports: "
              f"{(info['reference_median'] - info['baseline_median']) * 1e3:.1f} ms)")
        assert extra < 0.050


select_tests(globals(), __file__)
