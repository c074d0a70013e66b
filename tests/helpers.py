"""What many test modules share: reading progress.txt, running a program, a launch-free env.

Test modules import it by name (``from helpers import read_progress``), as they import
conftest: pytest puts ``tests/`` on ``sys.path``. The fixtures that use these live in
conftest.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from spinfast._mpi import launch as _launch

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"


class Progress(NamedTuple):
    """A ``progress.txt`` as :func:`read_progress` reads it.

    Attributes:
        header: the column names.
        cells: each row's cells, the text as written (an empty cell is ``""``).
    """

    header: list[str]
    cells: list[list[str]]

    @property
    def table(self) -> list[list[str]]:
        """The header and every row, each a list of the cells' text."""
        return [self.header, *self.cells]

    @property
    def rows(self) -> np.ndarray:
        """The rows as a (rows, columns) float64 array; an empty cell is NaN."""
        return np.array([[float(v) if v else np.nan for v in row] for row in self.cells],
                        dtype=np.float64).reshape(len(self.cells), len(self.header))

    def column(self, name: str) -> np.ndarray:
        """The column ``name`` as float64 (KeyError if there is none)."""
        if name not in self.header:
            raise KeyError(f"no column {name!r} in {self.header!r}")
        return self.rows[:, self.header.index(name)]

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """``{name: float64 column}`` of every column."""
        rows = self.rows
        return {name: rows[:, j] for j, name in enumerate(self.header)}


def read_progress(where) -> Progress:
    """Read a logger's tab-separated ``progress.txt`` (``where``: the file or its folder).

    Fails the test if a line does not end with a newline or a row has another number of
    cells than the header: a logger always writes whole rows.
    """
    path = Path(where)
    if path.is_dir():
        path = path / "progress.txt"
    lines = path.read_text().split("\n")
    assert lines[-1] == "", f"{path}: the last line does not end with a newline"
    header, *cells = [line.split("\t") for line in lines[:-1]]
    for row in cells:
        assert len(row) == len(header), f"{path}: a row of {len(row)} cells: {row!r}"
    return Progress(header, cells)


def program_env(**extra: str) -> dict[str, str]:
    """The environment of a program a test starts, alone or as a launch of its own.

    This process's environment without the variables of any MPI launcher
    (``spinfast._mpi.launch.without_launch_vars``, the function ``run_utils`` starts
    experiments with), one OpenMP thread per process and no launch countdown; then ``extra``.
    """
    env = _launch.without_launch_vars(os.environ)
    env.update(OMP_NUM_THREADS="1", SPINFAST_WAIT_BEFORE_LAUNCH="0")
    env.update(extra)
    return env


def find_mpiexec() -> str | None:
    """The launcher mpi_fork finds: beside this interpreter (the ``mpi`` extra's wheel, or a
    per-library venv's own, see .ci/mpi-envs), else on PATH; None if there is none."""
    try:
        return _launch.find_launcher()
    except FileNotFoundError:
        return None


@functools.cache
def launcher_env(launcher: str | None) -> dict[str, str]:
    """What ``launcher`` needs in the environment to run as root and oversubscribe 2 cores, in
    its own spelling: Open MPI 4's or 5's (:func:`spinfast._mpi.launch.open_mpi_env`); nothing
    for MPICH's or Intel MPI's Hydra, which do both as they are."""
    if launcher is None:
        return {}
    described = _launch.describe_launcher(launcher)
    return _launch.open_mpi_env(described.version) if described.kind == "open-mpi" else {}


def mpi_program(name: str) -> Path:
    """The path of the program ``tests/programs/{name}.py``; fail the test if there is none."""
    path = PROGRAMS / f"{name}.py"
    if not path.is_file():
        pytest.fail(f"no test program {name!r}: expected {path}")
    return path


def run_program(args, cwd=None, *, n: int | None = None, env: dict | None = None,
                timeout: float = 120, check: bool = True, python=sys.executable):
    """Run ``python ARGS`` in ``cwd``, under ``mpiexec -n N`` if ``n`` is given.

    Args:
        args: the interpreter's arguments (each passed through ``str``): a script's path and
            its arguments, ``["-m", module, ...]`` or ``["-c", code, ...]``; a str is the name
            of a program in ``tests/programs`` run without arguments.
        env: variables added to :func:`program_env` and, under ``mpiexec``, to what the
            launcher needs (:func:`launcher_env`); None removes a variable.
        timeout: seconds; a hang fails the test (``subprocess.TimeoutExpired``) instead of
            blocking CI.
        check: fail the test, with the program's output, if it exits with another code than
            0.
        python: the interpreter (another virtual environment's, say).

    Returns:
        The ``subprocess.CompletedProcess``, its output as text.
    """
    if isinstance(args, str):
        args = [mpi_program(args)]
    cmd = [str(python), *map(str, args)]
    full_env = program_env()
    if n is not None:
        launcher = find_mpiexec()
        if launcher is None:  # the mpi extra is part of the test setup; say so loudly
            pytest.fail("no mpiexec found: install the test setup with pip install "
                        "'.[mpi,test]'")
        cmd = [launcher, "-n", str(n), *cmd]
        full_env.update(launcher_env(launcher))
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = str(value)
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:6])} ... failed with code {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc
