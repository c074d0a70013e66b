"""MPI hot paths side by side with plain references, measured in the same run.

Run (two ranks; rank 0 reports, the other ranks' output is discarded)::

    mpiexec -n 2 python -m pytest bench/bench_mpi.py -p no:cacheprovider

add ``--check-targets`` to fail on a missed ratio. Collected without a launch (``python -m
pytest bench``), this file runs itself that way and shows the report. Every round starts after
an untimed barrier (the ``setup`` of ``benchmark.pedantic``), and round counts are fixed, so
all ranks make the same collectives. Times are rank 0's.

Groups (ratio = reference median / spinfast median, so > 1 means spinfast is faster):

* ``grads mean ...: engine vs raw``: the flat engine's mean-Allreduce of a PyTorch-like list of
  12 float32 tensors (an MLP's weights and biases) against ONE raw
  ``comm.Allreduce(MPI.IN_PLACE, buf)`` (a sum, no division) of a buffer of the same bytes.
  Targets: overhead <= 1.5x at 10k (ratio >= 0.67) and <= 1.10x at 1M and 10M (>= 0.91).
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
import os
import subprocess
import sys

import numpy as np
import pytest

from spinfast import mpi_tools
from spinfast._flat import FlatBuffer

UNDER_MPI = mpi_tools.num_procs() > 1
COMM = mpi_tools.comm_world()
RANK, SIZE = mpi_tools.proc_id(), mpi_tools.num_procs()
if UNDER_MPI:
    from mpi4py import MPI
IMPLS = ["spinfast", "reference"]


@pytest.fixture(scope="module", autouse=True)
def one_report(request):
    """Let rank 0 alone print the tables: other ranks drop their terminal reporter."""
    if RANK != 0:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            request.config.pluginmanager.unregister(reporter)
    yield
    if COMM is not None:
        COMM.Barrier()


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


def timed(benchmark, fn, rounds):
    """Time ``fn`` for a fixed number of rounds, each after an untimed barrier."""
    fn()
    benchmark.pedantic(fn, setup=COMM.Barrier, rounds=rounds, iterations=1, warmup_rounds=2)


def reference_mpi_avg_grads(grads: list[np.ndarray]) -> None:
    """Spinning Up's mpi_avg_grads data path: one float32 Allreduce per tensor, copies."""
    for g in grads:
        x = np.asarray(g, dtype=np.float32)
        buff = np.zeros_like(x, dtype=np.float32)
        COMM.Allreduce(x, buff, op=MPI.SUM)
        g[:] = buff / SIZE


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model", list(MODELS))
def test_grads_engine_vs_raw_allreduce(benchmark, paired, model, impl):
    hidden, rounds = MODELS[model]
    grads = mlp_grads(hidden)
    n = sum(g.size for g in grads)
    paired(benchmark, f"grads mean {model}: engine vs raw", impl,
           1 / 1.5 if model == "10k" else 1 / 1.10)
    benchmark.extra_info["elements"] = n
    if impl == "spinfast":
        engine = FlatBuffer()
        timed(benchmark, lambda: engine.allreduce(COMM, grads, op="mean"), rounds)
    else:
        buf = np.concatenate([g.ravel() for g in grads])
        timed(benchmark, lambda: COMM.Allreduce(MPI.IN_PLACE, buf), rounds)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model", list(MODELS))
def test_grads_engine_vs_per_tensor(benchmark, paired, model, impl):
    hidden, rounds = MODELS[model]
    grads = mlp_grads(hidden)
    paired(benchmark, f"grads mean {model}: engine vs per-tensor", impl,
           {"10k": 3.0, "1M": 1.5}.get(model))
    if impl == "spinfast":
        engine = FlatBuffer()
        timed(benchmark, lambda: engine.allreduce(COMM, grads, op="mean"), rounds)
    else:
        timed(benchmark, lambda: reference_mpi_avg_grads(grads), rounds)


def reference_statistics_scalar(x):
    """Spinning Up's mpi_statistics_scalar: float32, 3 Allreduces (+1 for min/max each)."""
    def op(v, mpi_op):
        scalar = np.isscalar(v)
        v = np.asarray([v] if scalar else v, dtype=np.float32)
        buff = np.zeros_like(v, dtype=np.float32)
        COMM.Allreduce(v, buff, op=mpi_op)
        return buff[0] if scalar else buff

    x = np.array(x, dtype=np.float32)
    global_sum, global_n = op([np.sum(x), len(x)], MPI.SUM)
    mean = global_sum / global_n
    global_sum_sq = op(np.sum((x - mean) ** 2), MPI.SUM)
    std = np.sqrt(global_sum_sq / global_n)
    global_min = op(np.min(x) if len(x) > 0 else np.inf, MPI.MIN)
    global_max = op(np.max(x) if len(x) > 0 else -np.inf, MPI.MAX)
    return mean, std, global_min, global_max


@pytest.mark.parametrize("impl", IMPLS)
def test_mpi_statistics_scalar(benchmark, paired, impl):
    paired(benchmark, "mpi_statistics_scalar 1000, min/max", impl, 1.5)
    x = np.random.default_rng(RANK).standard_normal(1000).astype(np.float32)
    if impl == "spinfast":
        timed(benchmark, lambda: mpi_tools.mpi_statistics_scalar(x, True), 2000)
    else:
        timed(benchmark, lambda: reference_statistics_scalar(x), 2000)


def _clean_env():
    prefixes = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL", "MV2_", "IN_MPI")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


IMPORTS = {
    "spinfast": "import spinfast.mpi_tools",
    "bare": "pass",
    "spinup-style": "import numpy; from mpi4py import MPI",
}


@pytest.mark.parametrize("what", list(IMPORTS))
def test_import_time(benchmark, what):
    """A fresh interpreter per round; only rank 0 measures (the others wait at a barrier)."""
    benchmark.group = "import spinfast.mpi_tools (fresh interpreter, no launch)"
    env = _clean_env()
    cmd = [sys.executable, "-c", IMPORTS[what]]

    def run():
        if RANK == 0:
            subprocess.run(cmd, env=env, check=True)

    timed(benchmark, run, 15)
    stats = getattr(benchmark, "stats", None)  # None with --benchmark-disable
    _IMPORT_MEDIANS[what] = stats.stats.median if stats is not None else None
    if RANK == 0 and len(_IMPORT_MEDIANS) == len(IMPORTS) and None not in \
            _IMPORT_MEDIANS.values():
        extra = _IMPORT_MEDIANS["spinfast"] - _IMPORT_MEDIANS["bare"]
        print(f"\nimport spinfast.mpi_tools: {extra * 1e3:.1f} ms above bare Python "
              f"(spinup-style imports: "
              f"{(_IMPORT_MEDIANS['spinup-style'] - _IMPORT_MEDIANS['bare']) * 1e3:.1f} ms)")
        assert extra < 0.050


_IMPORT_MEDIANS: dict[str, float] = {}


def test_benchmarks_under_mpiexec(request, capsys):
    """Without a launch, run this file under ``mpiexec -n 2`` and show its report."""
    launcher = mpi_tools._find_launcher()
    cmd = [launcher, "-n", "2", sys.executable, "-m", "pytest", __file__, "-q",
           "-p", "no:cacheprovider", "--rootdir", str(request.config.rootpath)]
    for flag in ("--benchmark-disable", "--check-targets"):
        if request.config.getoption(flag.lstrip("-").replace("-", "_"), False):
            cmd.append(flag)
    env = _clean_env()
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                          check=False, cwd=request.config.rootpath)
    with capsys.disabled():
        print(f"\n--- {' '.join(cmd[:3])} {' '.join(cmd[5:])} ---\n{proc.stdout}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# One process: the only benchmark here is the relaunch above; under mpiexec, everything but it.
for _name in [n for n in globals() if n.startswith("test_")]:
    if (_name == "test_benchmarks_under_mpiexec") == UNDER_MPI:
        del globals()[_name]
