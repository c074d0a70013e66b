"""A launcher of one MPI library starting programs whose mpi4py loads another.

The tests marked ``mpi`` run under each MPI library that ``.ci/mpi-envs`` installs, one virtual
environment each beside the main one (``.venv``: MPICH's wheel; in ``.mpi-envs/``, ``ompi5``:
Open MPI 5's wheel, ``ompi4``: Debian's Open MPI 4.1, ``impi``: Intel MPI's wheel). Here the
launcher is another library's, taken from those environments: measured, Open MPI's ranks
started by a Hydra (MPICH's or Intel MPI's), and Intel MPI's started by Open MPI's launcher,
are each a world of one, which the world check stops with one error; MPICH's started by Open
MPI's launcher stop in ``MPI_Init`` (MPICH does not speak PMIx). MPICH's and Intel MPI's
Hydras start each other's ranks as one right world (they speak the same PMI). No row is
written in either failure. ``spinfast info`` names each library and its own launcher, and
warns of a launcher that cannot start the library mpi4py loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import mpi_env, mpi_family, mpi_library
from helpers import ROOT, find_mpiexec, mpi_program

from spinfast._cli.info import mismatch_note
from spinfast._mpi import launch as _launch

# The families of launchers whose ranks are each a world of one for a library (measured).
FOREIGN = {"Open MPI": ("MPICH", "Intel MPI"), "Intel MPI": ("Open MPI",),
           "MPICH": ("Open MPI",)}


def foreign_launcher(family: str | None) -> str | None:
    """A launcher, of the per-library environments beside this one's or on PATH, whose ranks
    of ``family``'s library are each a world of one; None if there is none here."""
    found = [str(p) for p in [ROOT / ".venv" / "bin" / "mpiexec",
                              *sorted(ROOT.glob(".mpi-envs/*/bin/mpiexec"))] if p.exists()]
    found += [p for p in (shutil.which("mpiexec"),) if p]
    for path in found:
        if _launch.describe_launcher(path).family in FOREIGN.get(family or "", ()):
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


@pytest.mark.mpi
def test_info_names_the_mpi_library_and_its_own_launcher():
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "info"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {line[:11].strip(): line[13:] for line in proc.stdout.splitlines()}
    # mpi4py's own answer, asked without spinfast
    library = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; print("
                              "MPI.Get_library_version().replace(chr(0), '').splitlines()[0])"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    library = " ".join(library.split())
    assert rows["MPI library"].startswith(library + " (mpi4py ")
    if library.startswith("Open MPI v"):
        major = int(library.removeprefix("Open MPI v").split(".")[0])
        kind = f"Open MPI {major}, {'PRRTE' if major >= 5 else 'ORTE'}"
    else:
        kind = {"Intel MPI": "Intel MPI's Hydra", "MPICH": "Hydra: MPICH or a derivative"}[
            mpi_family()]
    assert rows["launcher"].startswith(f"{find_mpiexec()} ({kind}); "), rows["launcher"]
    assert "WARNING" not in proc.stdout


@pytest.mark.parametrize("launcher, library, warned", [
    ("MPICH", "MPICH", False), ("MPICH", "Intel MPI", False), ("Intel MPI", "MPICH", False),
    ("Open MPI", "Open MPI", False), ("MPICH", "Open MPI", True),
    ("Intel MPI", "Open MPI", True), ("Open MPI", "MPICH", True),
    ("Open MPI", "Intel MPI", True), (None, "MPICH", False), ("MPICH", None, False)])
def test_info_warns_of_a_launcher_that_cannot_start_the_library(launcher, library, warned):
    note = mismatch_note(launcher, library)
    assert bool(note) == warned
    if warned:
        assert note == (f"; WARNING: mpi4py loads {library}, which this launcher does not start "
                        f"as one world (each rank would stop at the world check): use "
                        f"{library}'s launcher, or mpi4py built for {launcher}")
