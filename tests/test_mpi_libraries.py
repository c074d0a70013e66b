"""A launcher of one MPI library starting programs whose mpi4py loads another.

The tests marked ``mpi`` run under each MPI library that ``.ci/mpi-envs`` installs, one virtual
environment each beside the main one (``.venv``: MPICH's wheel; ``.venv-ompi5``: Open MPI 5's
wheel; ``.venv-ompi4``: Debian's Open MPI 4.1; ``.venv-impi``: Intel MPI's wheel). Here the
launcher is another library's, taken from those environments: measured, Open MPI's ranks
started by a Hydra (MPICH's or Intel MPI's), and Intel MPI's started by Open MPI's launcher,
are each a world of one, which the world check stops with one error; MPICH's started by Open
MPI's launcher stop in ``MPI_Init`` (MPICH does not speak PMIx). MPICH's and Intel MPI's
Hydras start each other's ranks as one right world (they speak the same PMI). No row is
written in either failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import mpi_env, mpi_family, mpi_library
from helpers import ROOT, find_mpiexec, mpi_program

from spinfast._mpi import launch as _launch

# The families of launchers whose ranks are each a world of one for a library (measured).
FOREIGN = {"Open MPI": ("MPICH", "Intel MPI"), "Intel MPI": ("Open MPI",),
           "MPICH": ("Open MPI",)}


def launcher_family(path: str) -> str | None:
    """The MPI library a launcher belongs to, from its ``--version``."""
    text = _launch.version_text(path)
    if _launch.is_open_mpi(path, text):
        return "Open MPI"
    if "intel" in text.lower():
        return "Intel MPI"
    return "MPICH" if "hydra" in text.lower() else None


def foreign_launcher(family: str | None) -> str | None:
    """A launcher, of the per-library environments beside this one's or on PATH, whose ranks
    of ``family``'s library are each a world of one; None if there is none here."""
    found = [str(p) for p in sorted(ROOT.glob(".venv*/bin/mpiexec"))]
    found += [p for p in (shutil.which("mpiexec"),) if p]
    for path in found:
        if launcher_family(path) in FOREIGN.get(family or "", ()):
            return path
    return None


def rows(folder) -> list[list[str]]:
    """The rows of ``folder/progress.txt`` under its header ([] if there is no file)."""
    path = folder / "progress.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split("\t") for line in lines[1:]]


@pytest.mark.mpi
@pytest.mark.timeout(180)
def test_a_launcher_of_another_mpi_library_writes_no_row(tmp_path):
    family = mpi_family()
    launcher = foreign_launcher(family)
    if launcher is None:
        pytest.skip(f"no launcher here whose ranks of {family or 'this MPI library'} are each "
                    f"a world of one ({', '.join(FOREIGN.get(family or '', ())) or 'none known'}"
                    f"): make the per-library environments with bash .ci/mpi-envs WHEEL")
    program = str(mpi_program("world_rows"))
    # Control: this library's own launcher runs the program as one world of 2 that writes rows.
    own = subprocess.run([find_mpiexec(), "-n", "2", sys.executable, program, "own"],
                         cwd=tmp_path, env=mpi_env(), capture_output=True, text=True,
                         timeout=120, check=False)
    assert own.returncode == 0, own.stdout + own.stderr
    assert rows(tmp_path / "own") == [[str(e), "2", "0.5"] for e in range(3)]

    proc = subprocess.run([launcher, "-n", "2", sys.executable, program, "wrong"],
                          cwd=tmp_path, env=mpi_env(launcher), capture_output=True, text=True,
                          timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert rows(tmp_path / "wrong") == [], out  # not one row, let alone one per process
    if family == "MPICH":  # MPI_Init refuses Open MPI's PMIx before the program runs
        assert "unsupported PMI version PMIx" in out, out
    else:
        library = " ".join(mpi_library().split()[:3])
        assert out.count("was launched as one of 2 MPI ranks") == 1, out  # one error per launch
        error = out[out.index("was launched as one of 2 MPI ranks"):]
        assert "its MPI world has 1 process," in error and library in error, out
        assert "start the ranks with the mpiexec of that library" in error, out
    assert not os.path.exists(tmp_path / "progress.txt")
