"""spinfast.mpi_tools: one process without a launch, then real ``mpiexec`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import rank_files

from spinfast import mpi_tools
from spinfast.mpi_tools import (
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

LAUNCH_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCAL", "MV2_", "IN_MPI")


def clean_env(**extra):
    """The environment of a program started without any MPI launcher."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCH_PREFIXES)}
    env.update(extra)
    return env


def run_python(code, tmp_path, env=None, timeout=60, args=()):
    script = tmp_path / f"prog_{abs(hash(code))}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script), *args], check=False, cwd=tmp_path,
                          env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Without a launch: one process, rank 0, no MPI initialised

def test_import_and_queries_touch_no_mpi(tmp_path):
    proc = run_python("""
        import sys
        import spinfast.mpi_tools as mt
        print(sorted(m for m in ("mpi4py", "numpy") if m in sys.modules))
        print(mt.proc_id(), mt.num_procs(), mt.comm_world())
        print(float(mt.mpi_avg(2.5)), mt.mpi_statistics_scalar([1.0, 3.0]))
        print("mpi4py" in sys.modules)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "[]", "0 1 None", "2.5 (np.float64(2.0), np.float64(1.0))", "False"]


def test_mpi4py_missing_runs_as_single_process(tmp_path):
    # A launch without mpi4py: every function still works, as rank 0 of 1, with a warning.
    proc = run_python("""
        import sys, warnings
        sys.modules["mpi4py"] = None          # make "import mpi4py" fail
        import spinfast.mpi_tools as mt
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(mt.proc_id(), mt.num_procs())
        print([str(w.message) for w in caught])
        print(mt.mpi_sum([1, 2]).tolist(), mt.mpi_statistics_scalar([1.0, 2.0, 3.0], True))
    """, tmp_path, env=clean_env(PMI_RANK="0", PMI_SIZE="2"))
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


def test_reduce_stat_states_single_process_returns_input():
    states = np.array([[2.0, 1.5, 0.5, 1.0, 2.0]])
    assert reduce_stat_states(["a"], states) is states
    with pytest.raises(ValueError, match=r"reduce_stat_states\(\): states must have shape "
                                         r"\(len\(keys\), 5\) = \(2, 5\), got \(1, 5\)"):
        reduce_stat_states(["a", "b"], states)
    with pytest.raises(ValueError, match=r"keys must be a sequence of key names"):
        reduce_stat_states("a", states)


def test_msg_format(capsys):
    msg([1, 2], "hello")
    assert capsys.readouterr().out == "Message from 0: hello \t [1, 2]\n"


# ---------------------------------------------------------------------------------------------
# mpi_fork

FORK_PROGRAM = """
import sys
from spinfast.mpi_tools import mpi_fork, proc_id, num_procs
mpi_fork(int(sys.argv[1]))
with open(f"fork{proc_id()}.txt", "w") as f:
    f.write(f"{proc_id()} {num_procs()} {' '.join(sys.argv[1:])}")
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_fork_relaunches_and_propagates_exit_code(tmp_path):
    proc = run_python(FORK_PROGRAM, tmp_path, args=("2", "7", "--flag"))
    assert proc.returncode == 7, proc.stderr
    got = sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2))
    assert got == ["0 2 2 7 --flag", "1 2 2 7 --flag"]


@pytest.mark.mpi
@pytest.mark.timeout(90)
def test_mpi_fork_relaunches_python_dash_m(tmp_path):
    (tmp_path / "forkmod.py").write_text(textwrap.dedent(FORK_PROGRAM))
    proc = subprocess.run([sys.executable, "-m", "forkmod", "2", "0"], check=False,
                          cwd=tmp_path,
                          env=clean_env(PYTHONPATH=str(tmp_path)), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2)) == [
        "0 2 2 0", "1 2 2 0"]


def test_mpi_fork_single_rank_returns(tmp_path):
    proc = run_python(FORK_PROGRAM, tmp_path, args=("1", "0"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fork0.txt").read_text() == "0 1 1 0"


@pytest.mark.mpi
def test_mpi_fork_does_nothing_inside_a_launch(run_mpi, tmp_path):
    run_mpi(FORK_PROGRAM, n=2, args=("3", "0"), timeout=60)
    assert sorted((tmp_path / f"fork{r}.txt").read_text() for r in range(2)) == [
        "0 2 3 0", "1 2 3 0"]
    assert not (tmp_path / "fork2.txt").exists()


def test_mpi_fork_without_launcher_says_how_to_install(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(LAUNCH_PREFIXES):
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
    # Only looked up on PATH, never run: CI machines have no Slurm.
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert mpi_tools._launch_command(4) == [str(srun), "--ntasks=4", "--cpus-per-task=1",
                                            "--overlap", "--kill-on-bad-exit=1"]
    assert mpi_tools._launch_command(2, bind_to_core=True)[-1] == "--cpu-bind=cores"
    monkeypatch.delenv("SLURM_JOB_ID")  # outside a job: mpiexec beside the interpreter
    cmd = mpi_tools._launch_command(3)
    assert os.path.basename(cmd[0]) in ("mpiexec", "mpirun") and cmd[1:3] == ["-n", "3"]


def test_without_launch_vars_keeps_everything_else():
    env = {"PMI_RANK": "0", "PMI_FD": "5", "PMIX_RANK": "0", "PMIX_NAMESPACE": "x",
           "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "HYDRA_CONTROL_FD": "3",
           "MPI_LOCALNRANKS": "1", "MV2_COMM_WORLD_RANK": "0", "IN_MPI": "1",
           "SLURM_JOB_ID": "7", "OMPI_MCA_btl": "self", "PATH": "/bin"}
    assert mpi_tools._without_launch_vars(env) == {"SLURM_JOB_ID": "7", "OMPI_MCA_btl": "self",
                                                   "PATH": "/bin"}


def test_physical_cores_is_positive():
    n = mpi_tools._physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# Under mpiexec: numbers equal numpy over the concatenation of every rank's data

COUNTS = [5, 0, 7, 3]  # rank 1 has no values


def rank_values(rank):
    rng = np.random.default_rng(rank)
    return rng.normal(2.0, 3.0, size=(COUNTS[rank], 2))


COLLECTIVES_PROGRAM = r"""
import json, sys
import numpy as np
from spinfast import mpi_tools as mt

lazy = "mpi4py" not in sys.modules           # nothing imported before the first call
rank, size = mt.proc_id(), mt.num_procs()
COUNTS = [5, 0, 7, 3]
x = np.random.default_rng(rank).normal(2.0, 3.0, size=(COUNTS[rank], 2))
out = {"lazy": lazy, "rank": rank, "size": size}
out["stats"] = [float(v) for v in mt.mpi_statistics_scalar(x, with_min_and_max=True)]
out["stats2"] = [float(v) for v in mt.mpi_statistics_scalar(x.ravel().tolist())]
v32 = (np.arange(6, dtype=np.float32) + 0.25) * (rank + 1)
v64 = np.arange(6, dtype=np.float64) / 3 * (rank + 1)
for name, value in [("avg32", mt.mpi_avg(v32)), ("avg64", mt.mpi_avg(v64)),
                    ("sum32", mt.mpi_sum(v32)), ("avgscalar", mt.mpi_avg(float(rank))),
                    ("avgint", mt.mpi_avg(rank)), ("sumint", mt.mpi_sum(np.int64(rank))),
                    ("min", mt.mpi_op(v64, "min")), ("max", mt.mpi_op(v64 * (-1) ** rank, "max")),
                    ("mpimin", mt.mpi_op(v64, __import__("mpi4py").MPI.MIN)),
                    ("avg16", mt.mpi_avg(np.float16(rank + 1)))]:
    out[name] = [str(np.asarray(value).dtype), np.asarray(value, np.float64).ravel().tolist()]
b = np.full((2, 3), float(rank))
mt.broadcast(b, root=size - 1)
bi = np.full(4, rank, np.int32)
mt.broadcast(bi, root=size - 1)
strided = np.full(8, float(rank))[::2]
mt.broadcast(strided, root=size - 1)
pair = [np.full(3, float(rank), np.float32), np.full(2, float(rank))]
mt.broadcast(pair, root=size - 1)
out["bcast"] = [b.ravel().tolist(), bi.tolist(), strided.tolist(), pair[0].tolist(),
                pair[1].tolist()]
grads = [np.full(5, float(rank), np.float32), np.full((2, 2), float(rank))]
mt.allreduce_arrays(grads)
out["arrays"] = [grads[0].tolist(), grads[1].ravel().tolist()]
send = np.full(3, float(rank)); recv = np.zeros(3)
mt.allreduce(send, recv, op=__import__("mpi4py").MPI.SUM)
out["allreduce"] = recv.tolist()
try:
    mt.mpi_avg(np.ones(3 + rank))
except ValueError as exc:
    out["shape_error"] = str(exc)
with open(f"out{rank}.json", "w") as f:
    json.dump(out, f)
"""


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 3])
def test_collectives_match_numpy(run_mpi, tmp_path, size):
    run_mpi(COLLECTIVES_PROGRAM, n=size, timeout=120)
    outs = rank_files(tmp_path, size)
    allx = np.concatenate([rank_values(r) for r in range(size)]).ravel()
    v32 = [(np.arange(6, dtype=np.float32) + 0.25) * (r + 1) for r in range(size)]
    v64 = [np.arange(6, dtype=np.float64) / 3 * (r + 1) for r in range(size)]
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
        assert out["sumint"] == ["int64", [sum(range(size))]]
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
        assert out["allreduce"] == [float(sum(range(size)))] * 3
        assert "array 0 differs between ranks: rank 0 has float64 (3,), rank 1 has float64 " \
               "(4,)" in out["shape_error"]
    for key in ("stats", "stats2", "avg32", "avg64", "arrays"):  # bit-identical on every rank
        assert all(out[key] == outs[0][key] for out in outs), key


STATES_PROGRAM = r"""
import json
import numpy as np
from spinfast import mpi_tools as mt
from spinfast._stats import Welford

rank, size = mt.proc_id(), mt.num_procs()
keys = [f"K{i}" for i in range(70)]           # more than one fixed-size round
rows = []
for i, key in enumerate(keys):
    w = Welford()
    rng = np.random.default_rng(1000 * rank + i)
    n = 0 if (rank == 1 and i % 3 == 0) else 1 + (i + rank) % 5
    w.push(rng.normal(i, 1.0 + rank, size=n))
    rows.append(w.state)
merged = mt.reduce_stat_states(keys, np.array(rows))
few = mt.reduce_stat_states(keys[:3], np.array(rows[:3]))
swapped = keys[:4] if rank % 2 == 0 else [keys[1], keys[0], keys[3], keys[2]]
order = [keys.index(k) for k in swapped]
reordered = mt.reduce_stat_states(swapped, np.array(rows)[order])
errors = []
for label, ks, st in [
        ("differ", ["Loss", "Ret"] if rank == 0 else ["Loss", f"Only{rank}"], np.zeros((2, 5))),
        ("count", ["Loss"] * (1 + (rank > 0)), np.zeros((1 + (rank > 0), 5))),
        ("shape", ["Loss"], np.zeros((1, 5)) if rank == 0 else np.zeros((2, 5)))]:
    try:
        mt.reduce_stat_states(ks, st)
    except ValueError as exc:
        errors.append([label, str(exc)])
after = mt.reduce_stat_states(keys[:3], np.array(rows[:3]))   # usable after the errors
with open(f"out{rank}.json", "w") as f:
    json.dump({"merged": merged.tolist(), "few": few.tolist(), "reordered": reordered.tolist(),
               "swapped": swapped, "errors": errors, "after": after.tolist()}, f)
"""


def union_values(size, i):
    vals = []
    for rank in range(size):
        rng = np.random.default_rng(1000 * rank + i)
        n = 0 if (rank == 1 and i % 3 == 0) else 1 + (i + rank) % 5
        vals.append(rng.normal(i, 1.0 + rank, size=n))
    return np.concatenate(vals)


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("size", [2, 4])
def test_reduce_stat_states_union_and_errors(run_mpi, tmp_path, size):
    run_mpi(STATES_PROGRAM, n=size, timeout=120)
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


CRASH_PROGRAM = r"""
import numpy as np
from spinfast import mpi_tools as mt
rank = mt.proc_id()
mt.mpi_avg(np.ones(3))                       # MPI is up on every rank
if rank == 1:
    raise ZeroDivisionError("rank 1 failed on purpose")
mt.mpi_avg(np.ones(3))                       # the others wait here for rank 1
"""


@pytest.mark.mpi
@pytest.mark.timeout(90)
@pytest.mark.parametrize("size", [2, 3])
def test_a_crashing_rank_ends_the_run(run_mpi, size):
    start = time.monotonic()
    proc = run_mpi(CRASH_PROGRAM, n=size, timeout=60, check=False)
    assert proc.returncode != 0
    assert time.monotonic() - start < 60
    assert "ZeroDivisionError: rank 1 failed on purpose" in proc.stderr
    assert "uncaught ZeroDivisionError on rank 1 of" in proc.stderr
