"""The engine against the MPI library's own ``Allreduce``, under whichever library mpi4py loads.

Run it with each library's Python (``.ci/mpi-envs`` makes one environment per library in
``.mpi-envs/``); collected without a launch, the file relaunches itself under ``mpiexec -n 2``
beside that interpreter, and rank 0 reports::

    .mpi-envs/ompi5/bin/python -m pytest bench/bench_libraries.py -p no:cacheprovider
    .venv/bin/python -m pytest bench/bench_libraries.py -p no:cacheprovider   # MPICH's wheel

(add ``--check-targets`` to fail on a missed ratio). Both sides alternate round by round
(``mpibench.interleaved``), each round after an untimed barrier; ratio = the library's
``Allreduce`` median / spinfast's (above 1: spinfast faster).

* ``mean 10M``: ``FlatBuffer().allreduce(comm, [x], op="mean")`` of one 10M-float32 array
  against ``comm.Allreduce(MPI.IN_PLACE, y)`` of the same bytes (a sum: no division). Target:
  at most 0.6x the library's time (ratio >= 1.67).
* ``mpi_avg_grads N``: ``mpi_avg_grads(module)`` of a module of one float32 parameter of N
  elements (10k, 100k, 1M, 10M) against the raw ``Allreduce`` of a buffer of the same bytes,
  allocated by torch as the gradient is. Targets: at most 1.5x at 10k (ratio >= 0.67); from
  100k up never slower (ratio >= 1).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from mpibench import COMM, RANK, UNDER_MPI, interleaved, select_tests

from spinfast._flat import FlatBuffer
from spinfast._mpi import launch as _launch

if UNDER_MPI:
    from mpi4py import MPI

# "Open MPI 4.1.4", "MPICH 5.0.2", "Intel MPI 2021.18.1": the family and its version number
_VERSION = _launch.library_version()
LIBRARY = " ".join([_launch.library_family(_VERSION) or "MPI",
                    *re.findall(r"\d+\.\d+(?:\.\d+)?", _VERSION)[:1]])


@pytest.fixture(scope="module", autouse=True)
def library_line(request):
    """Rank 0's report starts with the library mpi4py loaded."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # rank 0's alone (conftest.one_report)
        reporter.write_line(f"\nMPI library: {_launch.library_version()}")

MEAN_ROUNDS = 20
GRADS = {"10k": (10_000, 2000, 1 / 1.5), "100k": (100_000, 500, 1.0),
         "1M": (1_000_000, 100, 1.0), "10M": (10_000_000, 20, 1.0)}


def test_mean_10m(benchmark):
    x = np.random.default_rng(RANK).standard_normal(10_000_000).astype(np.float32)
    y = x.copy()
    engine = FlatBuffer()
    interleaved(benchmark, f"mean 10M: engine vs {LIBRARY}'s Allreduce", 1 / 0.6, MEAN_ROUNDS,
                lambda: engine.allreduce(COMM, [x], op="mean"),
                lambda: COMM.Allreduce(MPI.IN_PLACE, y))


def one_tensor_module(n):
    """A module of one float32 parameter of ``n`` elements, with a gradient."""
    import torch

    from spinfast.mpi_pytorch import setup_pytorch_for_mpi

    setup_pytorch_for_mpi()
    torch.manual_seed(RANK)
    module = torch.nn.Module()
    module.w = torch.nn.Parameter(torch.zeros(n))
    module.w.grad = torch.randn(n)
    return module


@pytest.mark.parametrize("size", list(GRADS))
def test_mpi_avg_grads_one_tensor(benchmark, size):
    import torch

    from spinfast.mpi_pytorch import mpi_avg_grads

    n, rounds, target = GRADS[size]
    module = one_tensor_module(n)
    raw = torch.randn(n).numpy()  # torch's memory, as the gradient's
    interleaved(benchmark, f"mpi_avg_grads {size}: vs {LIBRARY}'s Allreduce", target, rounds,
                lambda: mpi_avg_grads(module), lambda: COMM.Allreduce(MPI.IN_PLACE, raw))


select_tests(globals(), __file__)
