"""Scaffolding shared by the MPI benchmark files (bench_mpi, _frameworks, _ddp, _compress).

A file using it is collected twice over: run without a launch (``python -m pytest bench``) its
only test relaunches the file under ``mpiexec -n 2`` and shows that report; under the launch
every benchmark runs on both ranks with fixed round counts, each round after an untimed
barrier, so all ranks make the same collectives. Rank 0 alone reports.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import alternating

from spinfast import mpi_tools
from spinfast._mpi import launch as _launch

UNDER_MPI = mpi_tools.num_procs() > 1
COMM = mpi_tools.comm_world()
RANK, SIZE = mpi_tools.proc_id(), mpi_tools.num_procs()


# The ways MPICH (the ``mpi`` extra's wheel: ch4 with the ucx and ofi network modules) moves
# bytes between two ranks of this machine, as benchmark variants (name -> environment):
# - shm: shared memory (large messages: one copy by cross-memory attach);
# - nolocal: MPIR_CVAR_NOLOCAL=1, every message through the network module; but UCX still
#   carries the bulk of large messages through shared memory and cross-memory attach between
#   processes of one host (a 100 MB Sendrecv: 12.5 ms, as on shm), so this is no network;
# - tcp-ucx: the same with UCX restricted to TCP (loopback: 10 MB each way in 16 ms, about
#   0.6 GB/s, a 10 GbE link's order);
# - tcp-ofi: the ofi module on libfabric's TCP provider (10 MB each way in 4.6 ms, 2.2 GB/s,
#   a 25 GbE link's order).
# BENCH_TRANSPORT names the variant inside the launch.
TRANSPORTS = {
    "shm": {},
    "nolocal": {"MPIR_CVAR_NOLOCAL": "1"},
    "tcp-ucx": {"MPIR_CVAR_NOLOCAL": "1", "MPIR_CVAR_CH4_NETMOD": "ucx", "UCX_TLS": "tcp"},
    "tcp-ofi": {"MPIR_CVAR_NOLOCAL": "1", "MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp"},
}
TRANSPORT = os.environ.get("BENCH_TRANSPORT") or (
    "nolocal" if os.environ.get("MPIR_CVAR_NOLOCAL") == "1" else "shm")


def transports(*names, **extra):
    """Variants for :func:`select_tests`: the named transports, each with ``extra``."""
    return {name: {**TRANSPORTS[name], **extra, "BENCH_TRANSPORT": name} for name in names}


def interleaved(benchmark, group, target, rounds, spinfast, reference, baseline=None,
                prepare=None, warmup_rounds=2, extra=None):
    """:func:`conftest.alternating`, each call after a barrier on every rank."""
    alternating(benchmark, group, target, rounds, spinfast, reference, baseline, prepare,
                warmup_rounds, sync=COMM.Barrier, extra=extra)


def clean_env():
    """This environment without any MPI launcher's variables (for a fresh launch), as
    ``run_utils`` starts experiments: ``spinfast._mpi.launch.without_launch_vars``."""
    return _launch.without_launch_vars(os.environ)


def relaunch(request, capsys, path, env_extra=None):
    """Run the benchmark file ``path`` under ``mpiexec -n 2``; show and check its report.

    ``env_extra`` is added to the launch's environment (e.g. ``MPIR_CVAR_NOLOCAL=1``).
    """
    launcher = _launch.describe_launcher(_launch.find_launcher())
    cmd = [launcher.path, "-n", "2", sys.executable, "-m", "pytest", str(path), "-q",
           "-p", "no:cacheprovider", "--rootdir", str(request.config.rootpath)]
    for flag in ("--benchmark-disable", "--check-targets"):
        if request.config.getoption(flag.lstrip("-").replace("-", "_"), False):
            cmd.append(flag)
    env = clean_env()
    env["OMP_NUM_THREADS"] = "1"
    if launcher.kind == "open-mpi":  # as root, oversubscribed: in its version's spelling
        env.update(_launch.open_mpi_env(launcher.version))
    env.update(env_extra or {})
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900,
                          check=False, cwd=request.config.rootpath)
    with capsys.disabled():
        extra = " ".join(f"{k}={v}" for k, v in (env_extra or {}).items()
                         if k != "BENCH_TRANSPORT")
        print(f"\n--- {extra} {' '.join(cmd[:3])} {' '.join(cmd[5:])} ---\n{proc.stdout}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def select_tests(namespace, path, variants=None):
    """Keep the benchmarks under a launch, else only a test that relaunches ``path``.

    ``variants`` (name -> environment) relaunches the file once per entry (e.g. on shared
    memory and under ``MPIR_CVAR_NOLOCAL=1``), as one parametrized test.
    """
    for name in [n for n in namespace if n.startswith("test_")]:
        if UNDER_MPI:
            continue
        del namespace[name]
    if not UNDER_MPI and variants is None:
        def test_benchmarks_under_mpiexec(request, capsys):
            relaunch(request, capsys, path)
        namespace["test_benchmarks_under_mpiexec"] = test_benchmarks_under_mpiexec
    elif not UNDER_MPI:
        import pytest

        @pytest.mark.parametrize("variant", list(variants))
        def test_benchmarks_under_mpiexec(request, capsys, variant):
            relaunch(request, capsys, path, variants[variant])
        namespace["test_benchmarks_under_mpiexec"] = test_benchmarks_under_mpiexec
