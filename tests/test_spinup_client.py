"""Spinning Up's own programs on spinfast: its algorithms, its commands, its saved runs.

Spinning Up's real source (``../shared/clients/spinningup`` from the repository root) is test
input, put on ``PYTHONPATH`` of the programs these tests start; it is never edited or copied.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import Step, rank_files
from helpers import ROOT, read_progress, run_program

SPINUP = ROOT.parent / "shared" / "clients" / "spinningup"
ALGOS_PROGRAM = ROOT / "tests" / "programs" / "spinup_algos.py"

pytestmark = pytest.mark.skipif(not (SPINUP / "spinup" / "__init__.py").exists(),
                                reason=f"Spinning Up's source is not at {SPINUP}")


def su_env(**extra):
    """The variables of a program that imports Spinning Up (its source on PYTHONPATH)."""
    path = os.pathsep.join([str(SPINUP), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(PYTHONPATH=path, **extra)


def run(cmd, cwd=None, timeout=240, python=sys.executable, env=None, **kwargs):
    """:func:`helpers.run_program` of ``python CMD...``, Spinning Up importable unless ``env``
    says otherwise; fails with its output."""
    return run_program(cmd, cwd, env=su_env() if env is None else env, timeout=timeout,
                       python=python, **kwargs)


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
STEPS = 120  # steps_per_epoch in tests/programs/spinup_algos.py


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


def check_progress(folder, algo):
    progress = read_progress(folder)
    header, rows = progress.header, progress.rows
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


def train_all(data, algos):
    """Train ``algos`` (2 short epochs each) in one process in ``data``; return ``data``."""
    run([ALGOS_PROGRAM, data, *algos], cwd=data, timeout=400)
    return data


# The programs this module's tests start take a minute of CPU each at most, but minutes one
# after another: they are conftest Steps, started with the session (conftest.early_steps) for
# the tests marked ``early`` with them, one at a time beside the other modules' tests.


def step(*needs):
    """Make ``step_<name>(folder, *needs)`` a conftest.Step named ``<name>``: ``folder`` is a
    fresh folder of its own, ``needs`` the results of the Steps it names."""
    def make(fn):
        name = fn.__name__.removeprefix("step_")
        return Step(lambda factory, *got: fn(factory.mktemp(name), *got), *needs, name=name)
    return make


TRAINED = Step(lambda factory: train_all(factory.mktemp("su_algos"), HEADERS), name="trained")
TRAINED_TF1 = Step(lambda factory: train_all(factory.mktemp("su_tf1_algos"), HEADERS_TF1),
                   name="trained_tf1")
COMPAT_VENV = Step(lambda factory: make_compat_venv(factory.mktemp("compat_venv")),
                   name="compat_venv")


@pytest.fixture(scope="module")
def steps(early_steps):
    """The session's background steps, this module's among them (conftest.early_steps)."""
    return early_steps


@pytest.fixture(scope="module")
def trained(steps):
    """All five PyTorch algorithms, 2 short epochs each, in one process."""
    return steps.result(TRAINED)


@pytest.mark.early(TRAINED)
@pytest.mark.slow
@pytest.mark.parametrize("algo", list(HEADERS))
def test_pytorch_algorithm_trains_and_logs(trained, algo):
    check_progress(trained / algo, algo)
    info = json.loads((trained / algo / "rank0.json").read_text())
    assert info == dict(rank=0, size=1, gym="spinfast.gym_compat", logx="spinfast.logx")
    config = json.loads((trained / algo / "config.json").read_text())
    assert config["exp_name"] == algo and config["epochs"] == 2
    assert (trained / algo / "pyt_save" / "model.pt").exists()


@step()
def step_vpg_and_ppo_on_two_mpi_ranks(folder):
    run([ALGOS_PROGRAM, folder, "vpg", "ppo"], cwd=folder, n=2, timeout=300)
    return folder


@pytest.mark.early(step_vpg_and_ppo_on_two_mpi_ranks)
@pytest.mark.slow
@pytest.mark.mpi
def test_vpg_and_ppo_on_two_mpi_ranks(steps):
    folder = steps.result(step_vpg_and_ppo_on_two_mpi_ranks)
    for algo in ("vpg", "ppo"):
        check_progress(folder / algo, algo)
        infos = rank_files(folder / algo, 2, name="rank")
        assert [(i["rank"], i["size"]) for i in infos] == [(0, 2), (1, 2)]


@step(TRAINED)
def step_test_policy_ppo(folder, trained):
    return run(["-m", "spinfast.run", "test_policy", trained / "ppo", "-n", "3", "-nr"],
               cwd=folder)


@step(TRAINED)
def step_test_policy_api(folder, trained):
    folders = [str(trained / a) for a in ("vpg", "ddpg", "td3", "sac")]
    return folders, run(["-c", TEST_POLICY_API, *folders], cwd=folder)


# The other algorithms (Pendulum: episodes end by truncation at 200 steps), through the Python
# API in one fresh process.
TEST_POLICY_API = textwrap.dedent("""
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


@pytest.mark.early(step_test_policy_ppo, step_test_policy_api)
@pytest.mark.slow
def test_test_policy_runs_spinning_up_saves(steps):
    """Issue 10 (1, 2): a fresh ``test_policy`` loads model.pt and the old-API env itself."""
    proc = steps.result(step_test_policy_ppo)
    episodes = [line for line in proc.stdout.splitlines() if line.startswith("Episode ")]
    assert len(episodes) == 3
    lens = [int(line.split()[-1]) for line in episodes]
    rets = [float(line.split()[3]) for line in episodes]
    assert rets == lens and all(1 <= n <= 500 for n in lens)  # CartPole: 1 per step
    folders, proc = steps.result(step_test_policy_api)
    lens = json.loads(proc.stdout.strip().splitlines()[-1])
    for folder in folders[1:]:
        assert lens[folder] == [200, 200]
    assert all(1 <= n <= 500 for n in lens[folders[0]])


@pytest.mark.early(TRAINED)
@pytest.mark.slow
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


@step()
def step_experiment_grid_env_name_pattern_and_from_spinup_import(folder):
    (folder / "bench.py").write_text(SU_GRID_SCRIPT)
    run(["bench.py", folder / "data"], cwd=folder)
    return folder


@pytest.mark.early(step_experiment_grid_env_name_pattern_and_from_spinup_import)
@pytest.mark.slow
def test_experiment_grid_env_name_pattern_and_from_spinup_import(steps):
    """Issue 10 (3, 4): ``eg.add('env_name', ...)`` gives Spinning Up's ppo the old API."""
    root = steps.result(step_experiment_grid_env_name_pattern_and_from_spinup_import)
    folder = root / "data" / "ppo-pyt-bench_cartpole-v1" / "ppo-pyt-bench_cartpole-v1_s10"
    check_progress(folder, "ppo")
    config = json.loads((folder / "config.json").read_text())
    assert config["seed"] == 10 and config["ac_kwargs"] == {"hidden_sizes": [8]}


@step()
def step_spinfast_run_with_spinning_up_algorithm_names(folder):
    return folder, run(["-m", "spinfast.run", "ppo", "--env", "CartPole-v1", "--exp_name",
                        "x", "--cpu", "2", "--epochs", "2", "--steps_per_epoch", "120",
                        "--train_pi_iters", "3", "--train_v_iters", "3", "--data_dir",
                        folder], cwd=folder, timeout=300)


@pytest.mark.early(step_spinfast_run_with_spinning_up_algorithm_names)
@pytest.mark.slow
def test_spinfast_run_with_spinning_up_algorithm_names(steps):
    """``python -m spinfast.run ppo ...`` runs Spinning Up's ppo_pytorch on 2 ranks."""
    folder, proc = steps.result(step_spinfast_run_with_spinning_up_algorithm_names)
    assert "Using default backend (pytorch) for ppo." in proc.stdout
    check_progress(folder / "x" / "x_s0", "ppo")


@step()
def step_spinfast_run_module_function_of_spinning_up(folder):
    run(["-m", "spinfast.run", "spinup.algos.pytorch.ppo.ppo:ppo", "--env", "CartPole-v1",
         "--epochs", "2", "--steps_per_epoch", "120", "--train_pi_iters", "3",
         "--train_v_iters", "3", "--data_dir", folder], cwd=folder)
    return folder


@pytest.mark.early(step_spinfast_run_module_function_of_spinning_up)
@pytest.mark.slow
def test_spinfast_run_module_function_of_spinning_up(steps):
    """Issue 10 (3): MODULE:FUNCTION naming Spinning Up's ppo gets the old API for --env."""
    folder = steps.result(step_spinfast_run_module_function_of_spinning_up)
    check_progress(folder / "cmd_ppo" / "cmd_ppo_s0", "ppo")


@pytest.mark.parametrize("args, message", [
    (["sac", "--env", "Pendulum-v1", "--cpu", "2"],
     "sac_pytorch can't be run with --cpu 2; only vpg, trpo, ppo run on several MPI"),
    (["ppo_tf1", "--epochs", "1"], "you did not give a value for --env (--env_name) to "
                                   "ppo_tf1"),
    (["ppo", "--env", "CartPol-v1"], "'CartPol-v1' is not a registered gymnasium "
                                     "environment; did you mean 'CartPole-v1'"),
])
def test_spinning_up_algorithm_usage_errors(tmp_path, args, message):
    proc = run(["-m", "spinfast.run", *args], cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_spinning_up_algorithm_without_spinup_says_so(tmp_path):
    proc = run(["-m", "spinfast.run", "ppo", "--env", "CartPole-v1"], cwd=tmp_path,
               env={"PYTHONPATH": None}, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spinfast: error: 'ppo' is a Spinning Up algorithm, and "
                                  "Spinning Up is not importable; install it")


@pytest.mark.early(TRAINED)
@pytest.mark.slow
def test_test_policy_shows_tracebacks_of_real_errors(trained, tmp_path):
    """Only input errors are one line; a failure inside the run shows its traceback."""
    proc = run(["-m", "spinfast.run", "test_policy", tmp_path / "nothing"], timeout=60,
               check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("spinfast: error: load_policy_and_env(): ")
    broken = tmp_path / "broken"
    (broken / "pyt_save").mkdir(parents=True)
    (broken / "pyt_save" / "model.pt").write_bytes(b"not a torch file")
    proc = run(["-m", "spinfast.run", "test_policy", broken, "-nr"], timeout=120,
               check=False)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "UnpicklingError" in proc.stderr or "RuntimeError" in proc.stderr


def make_compat_venv(root):
    """A fresh virtual environment seeing this one's packages, with ``spinfast compat enable``.

    Made without pip (``--without-pip``) and given this environment's site-packages through
    a ``.pth`` calling ``site.addsitedir``, so nothing is installed and the developer's own
    environment never gets the hook. Returns ``(its python, root)``.
    """
    import site
    import sysconfig

    venv = root / "venv"
    run(["-m", "venv", "--without-pip", venv], timeout=120)
    python = venv / "bin" / "python"
    purelib = run(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  python=python).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in dict.fromkeys(ours))
    # Sorted before spinfast_compat.pth, so spinfast is importable when the hook runs.
    (Path(purelib) / "00_parent_env.pth").write_text(lines)
    # no PYTHONPATH: the hook, not the test, must make spinup resolve to spinfast
    proc = run(["-m", "spinfast.run", "compat", "enable"], cwd=root, python=python,
               env={"PYTHONPATH": None})
    pth = Path(purelib) / "spinfast_compat.pth"
    assert pth.exists() and str(pth) in proc.stdout
    return python, root


@pytest.fixture(scope="module")
def compat_venv(steps):
    return steps.result(COMPAT_VENV)


# Spinning Up's own test_policy.py on a PyTorch run (torch.load of a whole module, old-API env
# loop) is test_spinup_run_test_policy_on_pytorch_run_with_flags.
@step(COMPAT_VENV)
def step_spinup_run_unchanged_after_compat_enable(folder, compat_venv):
    python, _ = compat_venv
    return folder, run(["-m", "spinup.run", "ppo", "--env", "CartPole-v1", "--epochs", "2",
                        "--steps_per_epoch", "120", "--train_pi_iters", "3",
                        "--train_v_iters", "3", "--exp_name", "su", "--data_dir", folder],
                       cwd=folder, python=python, timeout=300)


@pytest.mark.early(step_spinup_run_unchanged_after_compat_enable)
@pytest.mark.slow
def test_spinup_run_unchanged_after_compat_enable(steps):
    """Issue 10 (5): Spinning Up's own ``python -m spinup.run ppo`` in an enabled env."""
    folder, proc = steps.result(step_spinup_run_unchanged_after_compat_enable)
    assert "Using default backend (pytorch) for ppo." in proc.stdout
    check_progress(folder / "su" / "su_s0", "ppo")


@pytest.mark.early(COMPAT_VENV)
@pytest.mark.slow
def test_compat_disable_removes_the_hook(steps, compat_venv, tmp_path):
    python, root = compat_venv
    steps.wait_all()  # no background program may start while the hook is off
    env = {"PYTHONPATH": ""}  # no Spinning Up: spinup exists only through the hook
    check = ["-c", "import spinup.utils.logx as m; print(m.__name__)"]
    assert run(check, cwd=tmp_path, python=python, env=env).stdout.strip() == "spinfast.logx"
    try:
        proc = run(["-m", "spinfast.run", "compat", "disable"], cwd=root, python=python,
                   env=env)
        assert "spinfast compat disabled: removed" in proc.stdout
        proc = run(check, cwd=tmp_path, python=python, env=env, check=False)
        assert proc.returncode == 1 and "No module named 'spinup'" in proc.stderr
        proc = run(["-m", "spinfast.run", "compat", "disable"], cwd=root, python=python,
                   env=env)
        assert "spinfast compat was not enabled" in proc.stdout
    finally:  # the hook back on for the module's other tests, whatever failed above
        proc = run(["-m", "spinfast.run", "compat", "enable"], cwd=root, python=python,
                   env=env)
    assert "spinfast compat enabled" in proc.stdout


@pytest.fixture(scope="module")
def trained_tf1(steps):
    """All six TF1 algorithms, 2 short epochs each, in one process."""
    return steps.result(TRAINED_TF1)


@step(TRAINED_TF1)
def step_tf1_algorithms_run_on_tensorflow_2(folder, trained_tf1):
    return run(["-m", "spinfast.run", "test_policy", trained_tf1 / "ppo_tf1", "-n", "2", "-nr"],
               cwd=folder)


@pytest.mark.early(TRAINED_TF1, step_tf1_algorithms_run_on_tensorflow_2)
@pytest.mark.slow
def test_tf1_algorithms_run_on_tensorflow_2(trained_tf1, steps):
    """Each TF1 algorithm, 2 short epochs, on tf.compat.v1 with compat's tf.layers.dense."""
    for algo in HEADERS_TF1:
        check_progress(trained_tf1 / algo, algo)
        assert (trained_tf1 / algo / "tf1_save" / "saved_model.pb").exists()
    proc = steps.result(step_tf1_algorithms_run_on_tensorflow_2)
    lens = [int(line.split()[-1]) for line in proc.stdout.splitlines()
            if line.startswith("Episode ")]
    assert len(lens) == 2 and all(1 <= n <= 500 for n in lens)


@step(COMPAT_VENV)
def step_spinning_up_own_tf1_test_passes(folder, compat_venv):
    python, _ = compat_venv
    return run([SPINUP / "test" / "test_ppo.py"], cwd=folder, python=python, timeout=300)


@pytest.mark.early(step_spinning_up_own_tf1_test_passes)
@pytest.mark.slow
def test_spinning_up_own_tf1_test_passes(steps):
    """Spinning Up's test/test_ppo.py (TF1 PPO, unittest), unchanged, in an enabled env."""
    proc = steps.result(step_spinning_up_own_tf1_test_passes)
    assert "Ran 1 test" in proc.stderr and proc.stderr.rstrip().endswith("OK")
    assert proc.stdout.count("TotalEnvInteracts") == 10  # its 10 epochs


def episodes(stdout):
    """``(EpRet, EpLen)`` of each ``Episode ...`` line that test_policy printed."""
    rows = [line.split() for line in stdout.splitlines() if line.startswith("Episode ")]
    return [(float(r[3]), int(r[-1])) for r in rows]


@step(COMPAT_VENV, TRAINED_TF1)
def step_spinup_run_test_policy_on_ppo_tf1_run(folder, compat_venv, trained_tf1):
    python, _ = compat_venv
    return run(["-m", "spinup.run", "test_policy", trained_tf1 / "ppo_tf1", "-n", "2", "-nr"],
               cwd=folder, python=python, timeout=300)


@pytest.mark.early(TRAINED_TF1, step_spinup_run_test_policy_on_ppo_tf1_run)
@pytest.mark.slow
def test_spinup_run_test_policy_on_ppo_tf1_run(steps, trained_tf1):
    """Issue 22: Spinning Up's own test_policy.py (tf.Session(), its line 74) on a TF1 run."""
    proc = steps.result(step_spinup_run_test_policy_on_ppo_tf1_run)
    assert f"Loading from {trained_tf1 / 'ppo_tf1' / 'tf1_save'}." in proc.stdout
    eps = episodes(proc.stdout)
    assert len(eps) == 2 and all(ret == n and 1 <= n <= 500 for ret, n in eps)  # CartPole


@step(COMPAT_VENV, TRAINED_TF1)
def step_spinup_run_test_policy_on_ddpg_tf1_run_with_flags(tmp, compat_venv, trained_tf1):
    import shutil

    python, _ = compat_venv
    folder = tmp / "ddpg_tf1"
    shutil.copytree(trained_tf1 / "ddpg_tf1", folder)
    # What Logger.save_state(state, itr=1) adds beside the run's last save.
    shutil.copytree(folder / "tf1_save", folder / "tf1_save1")
    shutil.copy(folder / "vars.pkl", folder / "vars1.pkl")
    return folder, run(["-m", "spinup.run", "test_policy", folder, "-n", "2", "-nr", "-i", "1",
                        "-l", "50", "-d"], cwd=tmp, python=python, timeout=300)


@pytest.mark.early(step_spinup_run_test_policy_on_ddpg_tf1_run_with_flags)
@pytest.mark.slow
def test_spinup_run_test_policy_on_ddpg_tf1_run_with_flags(steps):
    """-i, -l, -d, -n, -nr on a ddpg_tf1 run; -i reads the save of that iteration."""
    folder, proc = steps.result(step_spinup_run_test_policy_on_ddpg_tf1_run_with_flags)
    assert f"Loading from {folder / 'tf1_save1'}." in proc.stdout
    assert "Using default action op." in proc.stdout  # -d: only SAC saves a 'mu'
    assert [n for _, n in episodes(proc.stdout)] == [50, 50]  # Pendulum, cut by -l


@step(COMPAT_VENV)
def step_spinup_run_plot_select(folder, compat_venv):
    python, _ = compat_venv
    data = folder / "data"
    write_runs(data)
    # -s 3 needs runs of 3 rows or more: Spinning Up's smoothing (np.convolve 'same') fails
    # on shorter ones, as it always did.
    runs = [str(data / f"{exp}_s0") for exp in ("lr0.1", "lr0.3", "lr1.0")]
    return runs, run(["-m", "spinup.run", "plot", *runs, "--select", "lr0.", "-s", "3",
                      "--est", "max"], cwd=folder, python=python,
                     env=su_env(MPLBACKEND="Agg"), timeout=300)


@step(COMPAT_VENV, TRAINED)
def step_spinup_run_plot_spinning_up_runs(folder, compat_venv, trained):
    python, _ = compat_venv
    runs = [str(trained / a) for a in ("vpg", "ppo", "sac")]
    return runs, run(["-m", "spinup.run", "plot", *runs, "-x", "Epoch", "-y", "AverageEpRet",
                      "LossPi", "--exclude", "sac", "-l", "A", "B"], cwd=folder,
                     python=python, env=su_env(MPLBACKEND="Agg"), timeout=300)


@pytest.mark.early(step_spinup_run_plot_select, step_spinup_run_plot_spinning_up_runs)
@pytest.mark.slow
def test_spinup_run_plot_headless(steps):
    """Issue 22: Spinning Up's own plot.py (sns.tsplot, its line 33) with its flags."""
    runs, proc = steps.result(step_spinup_run_plot_select)
    assert proc.stdout.split("=" * 50)[1].split() == runs[:2]  # --select lr0.
    # Spinning Up's own runs (2 epochs each), two values, a legend and an exclusion.
    runs, proc = steps.result(step_spinup_run_plot_spinning_up_runs)
    assert proc.stdout.split("=" * 50)[1].split() == runs[:2]


# Runs Spinning Up's plot.py as the hook does when Python starts it (startup() with that
# script as sys.argv[0], then the script as __main__ with the __builtins__ startup() chose),
# and writes what it drew: each labelled line and each band (fill_between) of each figure.
PLOT_DRIVER = """\
import json, runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import spinfast.compat

plot_py, out, *args = sys.argv[1:]
sys.argv = [plot_py, *args]
spinfast.compat.startup()
runpy.run_path(plot_py, run_name="__main__",
               init_globals={"__builtins__": sys.modules["__main__"].__builtins__})
figures = []
for num in plt.get_fignums():
    ax = plt.figure(num).axes[0]
    lines = [dict(label=ln.get_label(), x=list(map(float, ln.get_xdata())),
                  y=list(map(float, ln.get_ydata())),
                  color=list(matplotlib.colors.to_rgb(ln.get_color())))
             for ln in ax.lines if not ln.get_label().startswith("_")]
    bands = [dict(color=list(c.get_facecolor()[0][:3]),
                  xy=[list(map(float, v)) for p in c.get_paths() for v in p.vertices])
             for c in ax.collections]
    figures.append(dict(lines=lines, bands=bands, xlabel=ax.get_xlabel(),
                        ylabel=ax.get_ylabel(),
                        legend=[t.get_text() for t in ax.get_legend().get_texts()]))
json.dump(figures, open(out, "w"))
"""


def write_runs(data):
    """Seeded runs written by spinfast's EpochLogger: lr0.1 x3, lr0.3 x2, lr1.0 x1 seeds."""
    from spinfast.logx import EpochLogger

    rng = np.random.default_rng(7)
    for exp, seeds in (("lr0.1", 3), ("lr0.3", 2), ("lr1.0", 1)):
        for seed in range(seeds):
            logger = EpochLogger(output_dir=str(data / f"{exp}_s{seed}"), exp_name=exp)
            logger.save_config(dict(exp_name=exp, seed=seed))
            ret = 0.0
            for epoch in range(12):
                ret += rng.normal(1.0, 2.0)
                logger.log_tabular("Epoch", epoch)
                logger.log_tabular("AverageEpRet", ret)
                logger.log_tabular("TotalEnvInteracts", 100 * (epoch + 1))
                logger.dump_tabular()


def plot_driver(folder, est):
    """Spinning Up's plot.py on runs of write_runs with ``--est est``, drawn by PLOT_DRIVER."""
    data, out = folder / "data", folder / "figures.json"
    write_runs(data)
    run(["-c", PLOT_DRIVER, SPINUP / "spinup" / "utils" / "plot.py", out, data / "lr",
         "--select", "lr0.", "-s", "3", "--est", est], cwd=folder,
        env=su_env(MPLBACKEND="Agg"))
    return data, out


PLOT_DRIVERS = {est: Step(lambda factory, est=est: plot_driver(factory.mktemp("plot"), est),
                         name=f"plot_driver_{est}") for est in ("mean", "max")}


@pytest.mark.early(*PLOT_DRIVERS.values())
@pytest.mark.slow
@pytest.mark.parametrize("est", ["mean", "max"])
def test_spinning_up_plot_draws_what_spinfast_computes(steps, est):
    """The tsplot shim's curve and ±1 sd band, per condition, against spinfast's plotter."""
    from matplotlib.figure import Figure

    from spinfast.plot import get_all_datasets, plot_data

    data, out = steps.result(PLOT_DRIVERS[est])
    [fig] = json.loads(out.read_text())
    assert (fig["xlabel"], fig["ylabel"]) == ("TotalEnvInteracts", "Performance")
    assert fig["legend"] == ["lr0.1", "lr0.3"]
    # spinfast.run plot on the same folders, drawn on a figure of our own.
    ax = Figure().add_subplot()
    frame = plot_data(get_all_datasets([str(data / "lr")], select=["lr0."]),
                      xaxis="TotalEnvInteracts", value="Performance", condition="Condition1",
                      smooth=3, ax=ax, estimator=getattr(np, est))
    assert [line["label"] for line in fig["lines"]] == ["lr0.1", "lr0.3"]
    drawn = [ln for ln in ax.lines if len(ln.get_xdata())]  # not the legend's handles
    assert len(fig["bands"]) == 2 and len(drawn) == 2
    for line, theirs, (cond, rows) in zip(fig["lines"], drawn,
                                          frame.groupby("Condition1", sort=False)):
        assert cond == line["label"]
        runs = rows.pivot(index="Unit", columns="TotalEnvInteracts", values="Performance")
        assert len(runs) == {"lr0.1": 3, "lr0.3": 2}[cond]
        x = runs.columns.to_numpy(dtype=float)
        center = getattr(np, est)(runs.to_numpy(), axis=0)
        sd = runs.to_numpy().std(axis=0, ddof=1)
        np.testing.assert_allclose(line["x"], x, rtol=0, atol=0)
        np.testing.assert_allclose(line["y"], center, rtol=1e-12)
        np.testing.assert_allclose(theirs.get_ydata(), line["y"], rtol=1e-12)  # spinfast's
        [band] = [b for b in fig["bands"] if np.allclose(b["color"], line["color"])]
        xy = np.array(band["xy"])
        lo = [xy[xy[:, 0] == xi, 1].min() for xi in x]
        hi = [xy[xy[:, 0] == xi, 1].max() for xi in x]
        np.testing.assert_allclose(lo, center - sd, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hi, center + sd, rtol=1e-12, atol=1e-12)


@step(COMPAT_VENV, TRAINED)
def step_spinup_run_test_policy_on_pytorch_run_with_flags(tmp, compat_venv, trained):
    import shutil

    python, _ = compat_venv
    folder = tmp / "sac"
    shutil.copytree(trained / "sac", folder)
    # What Logger.save_state(state, itr=1) adds beside the run's last save.
    shutil.copy(folder / "pyt_save" / "model.pt", folder / "pyt_save" / "model1.pt")
    shutil.copy(folder / "vars.pkl", folder / "vars1.pkl")
    return folder, run(["-m", "spinup.run", "test_policy", folder, "-n", "2", "-nr", "-i", "1",
                        "-l", "30", "-d"], cwd=tmp, python=python, timeout=300)


@pytest.mark.early(step_spinup_run_test_policy_on_pytorch_run_with_flags)
@pytest.mark.slow
def test_spinup_run_test_policy_on_pytorch_run_with_flags(steps):
    """-i, -l, -d, -n, -nr on a sac_pytorch run (TensorFlow imported, unused, by the script)."""
    folder, proc = steps.result(step_spinup_run_test_policy_on_pytorch_run_with_flags)
    assert f"Loading from {folder / 'pyt_save' / 'model1.pt'}." in proc.stdout
    assert [n for _, n in episodes(proc.stdout)] == [30, 30]
