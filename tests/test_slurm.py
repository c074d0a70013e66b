"""Grids and MPI on a real Slurm: the one-node cluster that ``bash .ci/slurm up`` starts.

Every test here submits real jobs (sbatch through submitit, srun) and reads what they wrote;
nothing of Slurm, submitit or MPI is mocked. Without a Slurm that answers they are skipped
(tests/conftest.py says why). The experiment is tests/programs/slurm_train.py: rows that
depend only on the seed and the number of ranks, so that a run on Slurm can be compared row
for row with the same run on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROGRAMS, ROOT

from spinfast import user_config
from spinfast._mpi import launch as _launch
from spinfast.run_utils import ExperimentGrid

pytestmark = pytest.mark.slurm

ENV = dict(os.environ, SPINFAST_WAIT_BEFORE_LAUNCH="0",
           PYTHONPATH=os.pathsep.join([str(PROGRAMS), os.environ.get("PYTHONPATH", "")]))
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
            "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")


def run(*cmd, timeout=300, env=None, check=False):
    """Run ``cmd`` (the test's environment, PYTHONPATH with tests/programs); return it."""
    proc = subprocess.run([str(c) for c in cmd], env=env or ENV, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def cli(*args, timeout=300):
    """``python -m spinfast.run slurm_train:train ARGS``."""
    return run(sys.executable, "-m", "spinfast.run", "slurm_train:train", *args,
               timeout=timeout)


def rows(folder):
    """The rows of ``folder/progress.txt`` as lists of strings (header first)."""
    return [line.split("\t") for line in (Path(folder) / "progress.txt").read_text().splitlines()]


def job_states(job_ids):
    """``{job id: state}`` from squeue (every state; arrays one task a line)."""
    out = run("squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(job_ids),
              check=True).stdout
    return dict(line.split() for line in out.splitlines())


def submitit_job_ids(data):
    """The Slurm job ids of a grid's jobs: submitit's job folders under DATA_DIR/submitit."""
    return sorted(p.parent.name for p in (Path(data) / "submitit").glob("*/*_submitted.pkl"))


def mpi_family():
    """The MPI library mpi4py loads, as a key of the measured table below."""
    return _launch.library_family(_launch.library_version())


# The PMI each library needs under srun (measured: docs/mpi.md, srun and PMI).
NEEDS_PMI = {"MPICH": "pmi2", "Intel MPI": "pmi2", "Open MPI": "pmix"}


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """The same runs on this machine, no Slurm: 3 seeds on 1 rank, seed 0 on 2 ranks."""
    data = tmp_path_factory.mktemp("local")
    proc = cli("--seed", "0", "1", "2", "--epochs", "3", "--data_dir", data / "one",
               "--parallel", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = cli("--seed", "0", "--epochs", "3", "--cpu", "2", "--data_dir", data / "two")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**{seed: rows(data / "one" / "cmd_train" / f"cmd_train_s{seed}")
               for seed in (0, 1, 2)},
            "two ranks": rows(data / "two" / "cmd_train" / "cmd_train_s0")}


@pytest.fixture
def mpi_default():
    """``set(TYPE)``: the cluster's MpiDefault becomes TYPE (``bash .ci/slurm mpi``, which
    runs ``scontrol reconfigure``); restored to what it was after the test."""
    current = _show_mpi_default
    before = current()
    changed = []

    def set_type(kind):
        if current() != kind:
            proc = run("bash", ROOT / ".ci" / "slurm", "mpi", kind)
            if proc.returncode != 0:
                pytest.skip(f"cannot set MpiDefault={kind} here: {proc.stderr.strip()}")
            changed.append(kind)
        assert current() == kind

    yield set_type
    if changed:
        run("bash", ROOT / ".ci" / "slurm", "mpi", before, check=True)


def _show_mpi_default():
    out = run("scontrol", "show", "config", check=True).stdout
    return next(line.partition("=")[2].strip() for line in out.splitlines()
                if line.partition("=")[0].strip() == "MpiDefault")


# ---------------------------------------------------------------------------------------------
# Grids: a job per variant, the rows of a local run

@pytest.mark.slow
def test_grid_through_executor_slurm_runs_a_job_per_variant(tmp_path, local_runs):
    data = tmp_path / "data"
    proc = cli("--seed", "0", "1", "2", "--epochs", "3", "--data_dir", data,
               "--executor", "slurm", "--slurm_time", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 ok, 0 failed, 0 skipped" in proc.stdout
    # One sbatch job array, a task per variant; Slurm lists each (finished jobs stay
    # MinJobAge seconds).
    ids = submitit_job_ids(data)
    assert len(ids) == 3 and len({i.partition("_")[0] for i in ids}) == 1
    assert job_states(ids) == {i: "COMPLETED" for i in ids}
    for seed in (0, 1, 2):
        assert rows(data / "cmd_train" / f"cmd_train_s{seed}") == local_runs[seed]
    assert local_runs[0] != local_runs[1]  # the seeds differ, so the comparison says something


@pytest.mark.slow
def test_grid_through_submitit_auto_executor(tmp_path, local_runs, monkeypatch):
    import submitit

    monkeypatch.syspath_prepend(str(PROGRAMS))
    monkeypatch.setattr(user_config, "WAIT_BEFORE_LAUNCH", 0)
    import slurm_train

    executor = submitit.AutoExecutor(folder=str(tmp_path / "submitit" / "%j"))
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=5, cpus_per_task=1)
    grid = ExperimentGrid("auto")
    grid.add("seed", [0, 1, 2])
    grid.add("epochs", 3)
    results = grid.run(slurm_train.train, data_dir=str(tmp_path), executor=executor)
    assert [r.status for r in results] == ["ok"] * 3
    ids = submitit_job_ids(tmp_path)
    assert len(ids) == 3 and set(job_states(ids).values()) == {"COMPLETED"}
    for seed in (0, 1, 2):
        assert rows(tmp_path / "auto" / f"auto_s{seed}") == local_runs[seed]


# ---------------------------------------------------------------------------------------------
# MPI inside a job: the PMI the library speaks, whatever the cluster's MpiDefault

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["none", "pmi2"])
def test_cpu_2_inside_a_job_is_one_world_of_two(tmp_path, local_runs, mpi_default, kind):
    mpi_default(kind)
    data = tmp_path / "data"
    proc = cli("--seed", "0", "--epochs", "3", "--cpu", "2", "--data_dir", data,
               "--executor", "slurm", "--slurm_time", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = rows(data / "cmd_train" / "cmd_train_s0")
    header, body = table[0], table[1:]
    assert [r[header.index("Ranks")] for r in body] == ["2"] * 3
    assert [float(r[header.index("MeanRank")]) for r in body] == [0.5] * 3  # (0 + 1) / 2
    assert table == local_runs["two ranks"]
    # What `spinfast info` says inside a job: the PMI the ranks get, and why.
    info = tmp_path / "info.txt"
    run("sbatch", "--wait", "-o", info, "--wrap",
        f"{sys.executable} -m spinfast.run info", check=True)
    line = next(x for x in info.read_text().splitlines() if x.startswith("Slurm "))
    family = mpi_family()
    pmi = NEEDS_PMI[family]
    if kind == pmi:  # the site's choice is the library's: kept
        assert line.endswith(f"the PMI {pmi} (the cluster's MpiDefault is {kind}, which "
                             f"{family} speaks)"), line
    else:
        assert f"the PMI {pmi} (--mpi={pmi}: {family} speaks" in line, line
        assert line.endswith(f"and the cluster's MpiDefault is {kind})"), line


@pytest.mark.parametrize("forked", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["srun-alone", "mpi_fork-env"])
def test_ranks_without_pmi_stop_with_one_clear_error(tmp_path, forked):
    """srun --mpi=none starts two worlds of one: each rank sees it, before any row."""
    extra = ",SPINFAST_WORLD_SIZE=2,IN_MPI=1" if forked else ""
    out = tmp_path / "out"
    proc = run("srun", "-n", "2", "--mpi=none", f"--export=ALL{extra}", sys.executable,
               PROGRAMS / "slurm_train.py", out, timeout=120)
    assert proc.returncode != 0
    errors = [x for x in proc.stderr.splitlines() if x.startswith("RuntimeError")]
    assert len(errors) == 1 and proc.stderr.count("Traceback") == 1, proc.stderr  # rank 0's
    error = errors[0]
    family = mpi_family()
    assert error.startswith("RuntimeError: mpi_fork(): " if forked else
                            "RuntimeError: spinfast.mpi_tools: "), error
    assert ("this process was launched as one of 2 MPI ranks (" + (
        "mpi_fork started 2" if forked else "SLURM_STEP_NUM_TASKS=2") +
        ", by srun --mpi=none), but its MPI world has 1 process, with MPI library "
        f"{_launch.library_version()!r}; srun started the ranks without a PMI that "
        f"{family} speaks: start them with srun --mpi={NEEDS_PMI[family]}") in error
    assert not (out / "progress.txt").exists()  # stopped before the logger: no row at all
