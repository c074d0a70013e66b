"""Spinning Up's own programs on spinfast: its algorithms, its commands, its saved runs.

Spinning Up's real source (``../shared/clients/spinningup`` from the repository root) is test
input, put on ``PYTHONPATH`` of the programs these tests start; it is never edited or copied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, find_mpiexec, mpi_env, rank_files

SPINUP = ROOT.parent / "shared" / "clients" / "spinningup"
ALGOS_PROGRAM = ROOT / "tests" / "mpi" / "spinup_algos.py"

pytestmark = pytest.mark.skipif(not (SPINUP / "spinup" / "__init__.py").exists(),
                                reason=f"Spinning Up's source is not at {SPINUP}")


def su_env(**extra):
    """Environment of a program that imports Spinning Up (no launch wait, one thread)."""
    env = mpi_env(SPINFAST_WAIT_BEFORE_LAUNCH="0", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(SPINUP), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    return env


def run(cmd, cwd, timeout=240, python=sys.executable, env=None):
    """Run ``python CMD...`` with Spinning Up importable; fail with its output."""
    proc = subprocess.run([str(python), *map(str, cmd)], cwd=cwd, env=env or su_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def columns(*spec):
    """Expand Spinning Up's ``log_tabular`` calls into the header they write.

    Each item is ``key`` (a value given directly, or average_only), or ``key+`` (with
    min and max: Average/Std/Max/Min).
    """
    out = []
    for key in spec:
        if key.endswith("+"):
            k = key[:-1]
            out += ["Average" + k, "Std" + k, "Max" + k, "Min" + k]
        else:
            out.append(key)
    return out


# The header each algorithm writes, read off its log_tabular calls.
ON_POLICY = ["Epoch", "EpRet+", "EpLen", "VVals+", "TotalEnvInteracts", "LossPi", "LossV",
             "DeltaLossPi", "DeltaLossV", "Entropy", "KL"]
HEADERS = {
    "vpg": columns(*ON_POLICY, "Time"),
    "ppo": columns(*ON_POLICY, "ClipFrac", "StopIter", "Time"),
    "ddpg": columns("Epoch", "EpRet+", "TestEpRet+", "EpLen", "TestEpLen", "TotalEnvInteracts",
                    "QVals+", "LossPi", "LossQ", "Time"),
    "td3": columns("Epoch", "EpRet+", "TestEpRet+", "EpLen", "TestEpLen", "TotalEnvInteracts",
                   "Q1Vals+", "Q2Vals+", "LossPi", "LossQ", "Time"),
    "sac": columns("Epoch", "EpRet+", "TestEpRet+", "EpLen", "TestEpLen", "TotalEnvInteracts",
                   "Q1Vals+", "Q2Vals+", "LogPi+", "LossPi", "LossQ", "Time"),
}
STEPS = 120  # steps_per_epoch in tests/mpi/spinup_algos.py


HEADERS_TF1 = {
    "vpg_tf1": HEADERS["vpg"],
    "trpo_tf1": columns(*ON_POLICY[:-2], "KL", "BacktrackIters", "Time"),
    "ppo_tf1": HEADERS["ppo"],
    "ddpg_tf1": HEADERS["ddpg"],
    "td3_tf1": HEADERS["td3"],
    "sac_tf1": columns("Epoch", "EpRet+", "TestEpRet+", "EpLen", "TestEpLen",
                       "TotalEnvInteracts", "Q1Vals+", "Q2Vals+", "LogPi+", "LossPi", "LossQ1",
                       "LossQ2", "Time"),
}


def read_progress(folder):
    lines = (Path(folder) / "progress.txt").read_text().splitlines()
    header = lines[0].split("\t")
    return header, np.array([[float(v) for v in line.split("\t")] for line in lines[1:]])


def check_progress(folder, algo):
    header, rows = read_progress(folder)
    assert header == {**HEADERS, **HEADERS_TF1}[algo]
    algo = algo.partition("_")[0]
    assert rows.shape == (2, len(header)) and np.isfinite(rows).all()
    col = {k: rows[:, i] for i, k in enumerate(header)}
    if algo in ("vpg", "ppo", "trpo"):
        assert list(col["Epoch"]) == [0, 1]
        assert list(col["TotalEnvInteracts"]) == [STEPS, 2 * STEPS]
    else:  # off-policy: epochs count from 1 and log the last step index t
        assert list(col["Epoch"]) == [1, 2]
        assert list(col["TotalEnvInteracts"]) == [STEPS - 1, 2 * STEPS - 1]
        assert (col["TestEpLen"] == 40).all()  # max_ep_len; Pendulum never terminates
    for k in header:
        if k.startswith("Average"):
            base = k[len("Average"):]
            assert (col["Min" + base] <= col[k] + 1e-9).all()
            assert (col[k] <= col["Max" + base] + 1e-9).all()
            assert (col["Std" + base] >= 0).all()
    if "AverageEpRet" in col and algo in ("vpg", "ppo", "trpo"):  # CartPole: reward 1 per step
        np.testing.assert_allclose(col["AverageEpRet"], col["EpLen"], rtol=1e-12)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """All five PyTorch algorithms, 2 short epochs each, in one process."""
    data = tmp_path_factory.mktemp("su_algos")
    run([ALGOS_PROGRAM, data, *HEADERS], cwd=data, timeout=400)
    return data


@pytest.mark.parametrize("algo", list(HEADERS))
def test_pytorch_algorithm_trains_and_logs(trained, algo):
    check_progress(trained / algo, algo)
    info = json.loads((trained / algo / "rank0.json").read_text())
    assert info == dict(rank=0, size=1, gym="spinfast.gym_compat", logx="spinfast.logx")
    config = json.loads((trained / algo / "config.json").read_text())
    assert config["exp_name"] == algo and config["epochs"] == 2
    assert (trained / algo / "pyt_save" / "model.pt").exists()


@pytest.mark.mpi
def test_vpg_and_ppo_on_two_mpi_ranks(tmp_path):
    launcher = find_mpiexec()
    assert launcher, "no mpiexec: install the mpi extra"
    proc = subprocess.run([launcher, "-n", "2", sys.executable, str(ALGOS_PROGRAM), tmp_path,
                           "vpg", "ppo"], cwd=tmp_path, env=su_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    for algo in ("vpg", "ppo"):
        check_progress(tmp_path / algo, algo)
        infos = rank_files(tmp_path / algo, 2, name="rank")
        assert [(i["rank"], i["size"]) for i in infos] == [(0, 2), (1, 2)]


def test_test_policy_runs_spinning_up_saves(trained, tmp_path):
    """Issue 10 (1, 2): a fresh ``test_policy`` loads model.pt and the old-API env itself."""
    proc = run(["-m", "spinfast.run", "test_policy", trained / "ppo", "-n", "3", "-nr"],
               cwd=tmp_path)
    episodes = [line for line in proc.stdout.splitlines() if line.startswith("Episode ")]
    assert len(episodes) == 3
    lens = [int(line.split()[-1]) for line in episodes]
    rets = [float(line.split()[3]) for line in episodes]
    assert rets == lens and all(1 <= n <= 500 for n in lens)  # CartPole: 1 per step
    # The other algorithms (Pendulum: episodes end by truncation at 200 steps), through the
    # Python API in one fresh process.
    code = textwrap.dedent("""
        import sys, json
        from spinfast.test_policy import load_policy_and_env, run_policy
        from spinfast.gym_compat import OldApiEnv
        out = {}
        for folder in sys.argv[1:]:
            env, get_action = load_policy_and_env(folder, deterministic=True)
            assert isinstance(env, OldApiEnv), type(env)
            stats = run_policy(env, get_action, num_episodes=2, render=False)
            out[folder] = stats["EpLen"].tolist()
        print(json.dumps(out))
    """)
    folders = [str(trained / a) for a in ("vpg", "ddpg", "td3", "sac")]
    proc = run(["-c", code, *folders], cwd=tmp_path)
    lens = json.loads(proc.stdout.strip().splitlines()[-1])
    for folder in folders[1:]:
        assert lens[folder] == [200, 200]
    assert all(1 <= n <= 500 for n in lens[folders[0]])


def test_plot_draws_spinning_up_runs(trained, tmp_path):
    import matplotlib.image as mpimg

    from spinfast.plot import make_plots

    figs = make_plots([str(trained) + os.sep], xaxis="TotalEnvInteracts",
                      values=["AverageEpRet"], save=str(tmp_path / "curves.png"))
    img = mpimg.imread(figs[0].path)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


SU_GRID_SCRIPT = """\
import spinfast.compat
spinfast.compat.install()
# ---- below: Spinning Up's documented pattern (bench_ppo_cartpole.py), unchanged ----
import sys
from spinup.utils.run_utils import ExperimentGrid
from spinup import ppo_pytorch

if __name__ == '__main__':
    eg = ExperimentGrid(name='ppo-pyt-bench')
    eg.add('env_name', 'CartPole-v1', '', True)
    eg.add('seed', [10])
    eg.add('epochs', 2)
    eg.add('steps_per_epoch', 120)
    eg.add('train_pi_iters', 3)
    eg.add('train_v_iters', 3)
    eg.add('ac_kwargs:hidden_sizes', [(8,)], 'hid')
    eg.run(ppo_pytorch, num_cpu=1, data_dir=sys.argv[1])
"""


def test_experiment_grid_env_name_pattern_and_from_spinup_import(tmp_path):
    """Issue 10 (3, 4): ``eg.add('env_name', ...)`` gives Spinning Up's ppo the old API."""
    (tmp_path / "bench.py").write_text(SU_GRID_SCRIPT)
    run(["bench.py", tmp_path / "data"], cwd=tmp_path)
    folder = tmp_path / "data" / "ppo-pyt-bench_cartpole-v1" / \
        "ppo-pyt-bench_cartpole-v1_s10"
    check_progress(folder, "ppo")
    config = json.loads((folder / "config.json").read_text())
    assert config["seed"] == 10 and config["ac_kwargs"] == {"hidden_sizes": [8]}


def test_spinfast_run_with_spinning_up_algorithm_names(tmp_path):
    """``python -m spinfast.run ppo ...`` runs Spinning Up's ppo_pytorch on 2 ranks."""
    proc = run(["-m", "spinfast.run", "ppo", "--env", "CartPole-v1", "--exp_name", "x",
                "--cpu", "2", "--epochs", "2", "--steps_per_epoch", "120",
                "--train_pi_iters", "3", "--train_v_iters", "3", "--data_dir", tmp_path],
               cwd=tmp_path, timeout=300)
    assert "Using default backend (pytorch) for ppo." in proc.stdout
    check_progress(tmp_path / "x" / "x_s0", "ppo")


def test_spinfast_run_module_function_of_spinning_up(tmp_path):
    """Issue 10 (3): MODULE:FUNCTION naming Spinning Up's ppo gets the old API for --env."""
    run(["-m", "spinfast.run", "spinup.algos.pytorch.ppo.ppo:ppo", "--env", "CartPole-v1",
         "--epochs", "2", "--steps_per_epoch", "120", "--train_pi_iters", "3",
         "--train_v_iters", "3", "--data_dir", tmp_path], cwd=tmp_path)
    check_progress(tmp_path / "cmd_ppo" / "cmd_ppo_s0", "ppo")


@pytest.mark.parametrize("args, message", [
    (["sac", "--env", "Pendulum-v1", "--cpu", "2"],
     "sac_pytorch can't be run with --cpu 2; only vpg, trpo, ppo run on several MPI"),
    (["ppo_tf1", "--epochs", "1"], "you did not give a value for --env (--env_name) to "
                                   "ppo_tf1"),
    (["ppo", "--env", "CartPol-v1"], "'CartPol-v1' is not a registered gymnasium "
                                     "environment; did you mean 'CartPole-v1'"),
])
def test_spinning_up_algorithm_usage_errors(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", *args], cwd=tmp_path,
                          env=su_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_spinning_up_algorithm_without_spinup_says_so(tmp_path):
    env = mpi_env()
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "ppo", "--env",
                           "CartPole-v1"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spinfast: error: 'ppo' is a Spinning Up algorithm, and "
                                  "Spinning Up is not importable; install it")


def test_test_policy_shows_tracebacks_of_real_errors(trained, tmp_path):
    """Only input errors are one line; a failure inside the run shows its traceback."""
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "test_policy",
                           tmp_path / "nothing"], env=su_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("spinfast: error: load_policy_and_env(): ")
    broken = tmp_path / "broken"
    (broken / "pyt_save").mkdir(parents=True)
    (broken / "pyt_save" / "model.pt").write_bytes(b"not a torch file")
    proc = subprocess.run([sys.executable, "-m", "spinfast.run", "test_policy", broken, "-nr"],
                          env=su_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "UnpicklingError" in proc.stderr or "RuntimeError" in proc.stderr


@pytest.fixture(scope="module")
def compat_venv(tmp_path_factory):
    """A fresh virtual environment seeing this one's packages, with ``spinfast compat enable``.

    Made without pip (``--without-pip``) and given this environment's site-packages through
    a ``.pth`` calling ``site.addsitedir``, so nothing is installed and the developer's own
    environment never gets the hook.
    """
    import site
    import sysconfig

    root = tmp_path_factory.mktemp("compat_venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in dict.fromkeys(ours))
    # Sorted before spinfast_compat.pth, so spinfast is importable when the hook runs.
    (Path(purelib) / "00_parent_env.pth").write_text(lines)
    env = su_env()
    env.pop("PYTHONPATH")  # the hook, not the test, must make spinup resolve to spinfast
    proc = run(["-m", "spinfast.run", "compat", "enable"], cwd=root, python=python, env=env)
    pth = Path(purelib) / "spinfast_compat.pth"
    assert pth.exists() and str(pth) in proc.stdout
    return python, root


def test_spinup_run_unchanged_after_compat_enable(compat_venv, tmp_path):
    """Issue 10 (5): Spinning Up's own ``python -m spinup.run ppo`` in an enabled env."""
    python, _ = compat_venv
    proc = run(["-m", "spinup.run", "ppo", "--env", "CartPole-v1", "--epochs", "2",
                "--steps_per_epoch", "120", "--train_pi_iters", "3", "--train_v_iters", "3",
                "--exp_name", "su", "--data_dir", tmp_path], cwd=tmp_path, python=python,
               timeout=300)
    assert "Using default backend (pytorch) for ppo." in proc.stdout
    check_progress(tmp_path / "su" / "su_s0", "ppo")
    # Its test_policy runs Spinning Up's own utils/test_policy.py as a script (torch.load of
    # a whole module, old-API env loop), on the run it just saved.
    proc = run(["-m", "spinup.run", "test_policy", tmp_path / "su" / "su_s0", "-n", "2",
                "-nr"], cwd=tmp_path, python=python, timeout=300)
    lens = [int(line.split()[-1]) for line in proc.stdout.splitlines()
            if line.startswith("Episode ")]
    assert len(lens) == 2 and all(1 <= n <= 500 for n in lens)


def test_compat_disable_removes_the_hook(compat_venv, tmp_path):
    python, root = compat_venv
    env = mpi_env()
    env.pop("PYTHONPATH", None)  # no Spinning Up: spinup exists only through the hook
    check = ["-c", "import spinup.utils.logx as m; print(m.__name__)"]
    assert run(check, cwd=tmp_path, python=python, env=env).stdout.strip() == "spinfast.logx"
    proc = run(["-m", "spinfast.run", "compat", "disable"], cwd=root, python=python, env=env)
    assert "spinfast compat disabled: removed" in proc.stdout
    proc = subprocess.run([str(python), *check], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "No module named 'spinup'" in proc.stderr
    proc = run(["-m", "spinfast.run", "compat", "disable"], cwd=root, python=python, env=env)
    assert "spinfast compat was not enabled" in proc.stdout
    proc = run(["-m", "spinfast.run", "compat", "enable"], cwd=root, python=python, env=env)
    assert "spinfast compat enabled" in proc.stdout


def test_tf1_algorithms_run_on_tensorflow_2(tmp_path):
    """Each TF1 algorithm, 2 short epochs, on tf.compat.v1 with compat's tf.layers.dense."""
    run([ALGOS_PROGRAM, tmp_path, *HEADERS_TF1], cwd=tmp_path, timeout=400)
    for algo in HEADERS_TF1:
        check_progress(tmp_path / algo, algo)
        assert (tmp_path / algo / "tf1_save" / "saved_model.pb").exists()
    proc = run(["-m", "spinfast.run", "test_policy", tmp_path / "ppo_tf1", "-n", "2", "-nr"],
               cwd=tmp_path)
    lens = [int(line.split()[-1]) for line in proc.stdout.splitlines()
            if line.startswith("Episode ")]
    assert len(lens) == 2 and all(1 <= n <= 500 for n in lens)


def test_spinning_up_own_tf1_test_passes(compat_venv, tmp_path):
    """Spinning Up's test/test_ppo.py (TF1 PPO, unittest), unchanged, in an enabled env."""
    python, _ = compat_venv
    proc = run([SPINUP / "test" / "test_ppo.py"], cwd=tmp_path, python=python, timeout=300)
    assert "Ran 1 test" in proc.stderr and proc.stderr.rstrip().endswith("OK")
    assert proc.stdout.count("TotalEnvInteracts") == 10  # its 10 epochs
