"""Shared fixtures: launching Python programs under a real ``mpiexec``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def find_mpiexec() -> str | None:
    """The launcher beside this interpreter (the ``mpi`` extra's wheel), else one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


def mpi_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Harmless for MPICH; lets an Open MPI launcher run as root and oversubscribe 2 cores.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def rank_files(folder, size, name="out"):
    """The JSON each rank of an MPI test program wrote to ``{name}{rank}.json`` in ``folder``."""
    return [json.loads((folder / f"{name}{rank}.json").read_text()) for rank in range(size)]


@pytest.fixture
def run_mpi(tmp_path):
    """Run a Python source string under ``mpiexec -n N``; return the CompletedProcess.

    ``run_mpi(code, n=2, timeout=120, args=(), check=True)``. The program runs in ``tmp_path``
    (its current directory). A hang fails the test at ``timeout`` instead of blocking CI.
    """
    launcher = find_mpiexec()
    if launcher is None:  # the mpi extra is part of the test setup; say so loudly
        pytest.fail("no mpiexec found: install the test setup with pip install '.[mpi,test]'")

    def run(code: str, n: int = 2, timeout: float = 120, args=(), check: bool = True,
            env: dict[str, str] | None = None):
        script = tmp_path / f"prog_{abs(hash(code))}.py"
        script.write_text(textwrap.dedent(code))
        cmd = [launcher, "-n", str(n), sys.executable, str(script), *map(str, args)]
        proc = subprocess.run(cmd, cwd=tmp_path, env=mpi_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"mpiexec -n {n} failed with code {proc.returncode}\n"
                                 f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    return run
