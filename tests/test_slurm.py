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
import time
from pathlib import Path

import pytest
from helpers import PROGRAMS, ROOT

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


def final_states(job_ids, timeout=60):
    """:func:`job_states` once every job ended (a job's result is written before its step
    and batch script end)."""
    end = time.monotonic() + timeout
    while True:
        states = job_states(job_ids)
        if set(states.values()) <= set(TERMINAL) or time.monotonic() > end:
            return states
        time.sleep(0.5)


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
    assert final_states(ids) == {i: "COMPLETED" for i in ids}
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
    assert len(ids) == 3 and set(final_states(ids).values()) == {"COMPLETED"}
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


# ---------------------------------------------------------------------------------------------
# Requeue, time limit, cancel: a variant's job that Slurm stops

def start_cli(tmp_path, *args):
    """Start ``python -m spinfast.run slurm_train:train ARGS`` in the background; its output
    goes to ``tmp_path/cli.out``."""
    out = open(tmp_path / "cli.out", "w")  # noqa: SIM115 (closed by finish)
    proc = subprocess.Popen([sys.executable, "-m", "spinfast.run", "slurm_train:train",
                             *map(str, args)], env=ENV, stdout=out, stderr=subprocess.STDOUT,
                            text=True)
    proc.out = out
    return proc


def finish(proc, tmp_path, timeout=300):
    """Wait for a :func:`start_cli` run; return its exit status and output."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.out.close()
    return proc.returncode, (tmp_path / "cli.out").read_text()


def wait_for_rows(folder, n, proc, timeout=120):
    """Wait until ``folder/progress.txt`` holds ``n`` rows; return how many it holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the grid ended before the job was interrupted"
        try:
            got = len(rows(folder)) - 1
        except FileNotFoundError:
            got = 0
        if got >= n:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{folder} did not get {n} rows in {timeout} s")


def attempts(folder):
    """The lines of ``attempts.txt``: ``[resume, first epoch, SLURM_RESTART_COUNT]`` each."""
    return [line.split() for line in (Path(folder) / "attempts.txt").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``rows(seed, epochs)``: the rows of a run never interrupted, on this machine."""
    data = tmp_path_factory.mktemp("uninterrupted")

    def rows_of(seed, epochs):
        folder = data / f"e{epochs}" / "cmd_train" / f"cmd_train_s{seed}"
        if not folder.exists():
            run(sys.executable, "-m", "spinfast.run", "slurm_train:train", "--seed", seed,
                "--epochs", epochs, "--data_dir", data / f"e{epochs}", check=True)
        return rows(folder)

    return rows_of


@pytest.mark.slow
@pytest.mark.parametrize("how", ["scontrol requeue", "preemption"])
def test_requeued_variant_resumes_and_is_not_reported_failed(tmp_path, uninterrupted, how):
    data = tmp_path / "data"
    folder = data / "cmd_train" / "cmd_train_s0"
    proc = start_cli(tmp_path, "--seed", "0", "--epochs", "20", "--sleep", "0.25",
                     "--data_dir", data, "--executor", "slurm", "--slurm_time", "5")
    seen = wait_for_rows(folder, 5, proc)
    [job] = submitit_job_ids(data)
    if how == "scontrol requeue":
        run("scontrol", "requeue", job, check=True)
    else:  # a job of the `urgent` partition that needs every CPU of the node preempts it
        partitions = run("sinfo", "-h", "-o", "%P", check=True).stdout.split()
        if "urgent" not in partitions:
            proc.kill()
            pytest.skip("no `urgent` partition (PreemptMode=REQUEUE) here: .ci/slurm makes it")
        cpus = run("sinfo", "-h", "-N", "-o", "%c", check=True).stdout.split()[0]
        run("sbatch", "-p", "urgent", "-c", cpus, "-o", "/dev/null", "--wrap", "sleep 1",
            check=True)
    code, out = finish(proc, tmp_path)
    assert code == 0, out
    summary = out.split("Summary of the experiment grid")[1]
    line = next(x for x in summary.splitlines() if x.startswith("cmd_train_s0"))
    assert line.endswith("ok (exit 0), requeued 1x"), out
    assert "1 ok, 0 failed, 0 skipped\n" in summary and "failed with" not in out, out
    # The second attempt resumed from the checkpoint of the last row it saw (at most one
    # epoch redone), and the rows read as one run's.
    first, second = attempts(folder)
    assert first == ["False", "0", "-"] and second[0] == "True" and second[2] == "1"
    assert seen - 1 <= int(second[1]) <= 20
    assert rows(folder) == uninterrupted(0, 20)
    assert "Slurm requeued the job (attempt 1 stopped" in Path(f"{folder}.log").read_text()


@pytest.mark.slow
def test_cancelled_variant_is_reported_and_the_others_finish(tmp_path, uninterrupted):
    data = tmp_path / "data"
    proc = start_cli(tmp_path, "--seed", "0", "1", "--epochs", "15", "--sleep", "0.3",
                     "--data_dir", data, "--executor", "slurm", "--slurm_time", "5")
    wait_for_rows(data / "cmd_train" / "cmd_train_s1", 2, proc)
    ids = submitit_job_ids(data)
    assert [i.rpartition("_")[2] for i in ids] == ["0", "1"]  # a task per variant, in order
    run("scancel", ids[1], check=True)
    code, out = finish(proc, tmp_path)
    assert code == 1, out
    summary = out.split("Summary of the experiment grid")[1]
    assert "1 ok, 0 failed, 0 skipped, 1 cancelled" in summary, out
    line = next(x for x in summary.splitlines() if x.startswith("cmd_train_s1"))
    assert "cancelled (" in line, line
    assert rows(data / "cmd_train" / "cmd_train_s0") == uninterrupted(0, 15)


@pytest.mark.slow
def test_time_limit_checkpoints_requeues_and_finishes(tmp_path, uninterrupted, monkeypatch):
    """A 1-minute job whose submitit signal comes 15 s before the end; Slurm sends it at its
    next 30-second check, so each attempt runs 15 to 45 s of the 45 s of work: the first
    attempt never finishes."""
    import submitit

    monkeypatch.syspath_prepend(str(PROGRAMS))
    monkeypatch.setattr(user_config, "WAIT_BEFORE_LAUNCH", 0)
    import slurm_train

    executor = submitit.SlurmExecutor(folder=str(tmp_path / "submitit" / "%j"),
                                      max_num_timeout=8)
    executor.update_parameters(time=1, signal_delay_s=15, cpus_per_task=1)
    grid = ExperimentGrid("limit")
    grid.add("seed", 0)
    grid.add("epochs", 45)
    grid.add("sleep", 1.0)
    [result] = grid.run(slurm_train.train, data_dir=str(tmp_path), executor=executor)
    folder = tmp_path / "limit" / "limit_s0"
    tries = attempts(folder)
    assert result.status == "ok" and result.requeues == len(tries) - 1 >= 1, tries
    # Every attempt after the first resumed where the previous one's checkpoint was.
    assert tries[0] == ["False", "0", "-"]
    assert all(t[0] == "True" and t[2] == str(k) for k, t in enumerate(tries) if k), tries
    assert [int(t[1]) for t in tries] == sorted(int(t[1]) for t in tries)
    assert rows(folder) == uninterrupted(0, 45)
    log = (tmp_path / "submitit").glob("*/*_log.err")
    assert any("this job is timed-out" in p.read_text() for p in log)


@pytest.mark.slow
def test_call_experiment_of_a_cancelled_job_raises(tmp_path, monkeypatch, capsys):
    """submitit alone would wait for ever (no sacct here); call_experiment asks squeue."""
    import threading

    import submitit

    from spinfast.run_utils import call_experiment

    monkeypatch.syspath_prepend(str(PROGRAMS))
    import slurm_train

    executor = submitit.SlurmExecutor(folder=str(tmp_path / "submitit" / "%j"))
    executor.update_parameters(time=5)
    cancelled = []

    def cancel():  # as soon as the job is submitted
        end = time.monotonic() + 60
        while not submitit_job_ids(tmp_path) and time.monotonic() < end:
            time.sleep(0.1)
        cancelled.extend(submitit_job_ids(tmp_path))
        run("scancel", *cancelled, check=True)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    with pytest.raises(subprocess.CalledProcessError) as info:
        call_experiment("gone", slurm_train.train, data_dir=str(tmp_path), executor=executor,
                        epochs=100, sleep=0.3)
    canceller.join()
    assert info.value.returncode is None
    assert f"Slurm job {cancelled[0]} cancelled" in capsys.readouterr().out


# The other MPI libraries' environments (.ci/mpi-envs makes them in .mpi-envs/).
OTHER_VENVS = {"ompi4": "Open MPI", "ompi5": "Open MPI", "impi": "Intel MPI"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OTHER_VENVS))
def test_cpu_2_inside_a_job_under_another_mpi_library(tmp_path, local_runs, name):
    """Open MPI's ranks get pmix, Intel MPI's pmi2, on Slurm's default MpiDefault=none."""
    python = ROOT / ".mpi-envs" / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no .mpi-envs/{name} here (bash .ci/mpi-envs WHEEL {name} makes it)")
    version = run(python, "-c", "from spinfast._mpi import launch; "
                  "print(launch.library_version())", check=True).stdout.strip()
    assert _launch.library_family(version) == OTHER_VENVS[name], version
    data = tmp_path / "data"
    proc = run(python, "-m", "spinfast.run", "slurm_train:train", "--seed", "0", "--epochs",
               "3", "--cpu", "2", "--data_dir", data, "--executor", "slurm", "--slurm_time", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (data / "cmd_train" / "cmd_train_s0.log").read_text()
    table = rows(data / "cmd_train" / "cmd_train_s0")
    assert table == local_runs["two ranks"], log  # one world of 2: Ranks 2, MeanRank 0.5
