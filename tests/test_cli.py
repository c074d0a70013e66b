"""The command line: python -m spinfast.run, real processes and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from helpers import read_progress, run_program

from spinfast.run import UsageError, parse_grid_args, parse_value
from spinfast.run_utils import ExperimentGrid


def cli(*args, cwd=None, timeout=120, env=None):
    """Run ``python -m spinfast.run ARGS`` (:func:`helpers.run_program`); return the
    CompletedProcess, whatever its exit code."""
    return run_program(["-m", "spinfast.run", *args], cwd, env=env, timeout=timeout,
                       check=False)


def test_help_lists_commands_with_examples():
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("plot", "test_policy", "demo", "MODULE:FUNC", "corridor_pg", "--parallel",
                 "examples:", "python -m spinfast.run demo",
                 "python -m spinfast.run spinfast.examples_demo:train --lr 0.1 0.5"):
        assert word in proc.stdout
    for sub in ("plot", "test_policy", "demo"):
        proc = cli(sub, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "examples:" in proc.stdout and f"python -m spinfast.run {sub}" in proc.stdout
    proc = cli("spinfast.examples_demo:train", "--help")
    assert proc.returncode == 0
    assert "Train a tabular softmax policy" in proc.stdout
    proc = cli()
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_python_dash_m_spinfast_and_console_script():
    proc = subprocess.run([sys.executable, "-m", "spinfast", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "commands:" in proc.stdout
    script = Path(sys.executable).parent / "spinfast"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "commands:" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["plto"], "unknown command 'plto'; did you mean 'plot'?"),
    (["test_polciy", "x"], "did you mean 'test_policy'?"),
    (["dmeo"], "did you mean 'demo'?"),
    (["plot", "data", "--smoth", "3"], "unknown option '--smoth' for plot; did you mean "
                                       "'--smooth'"),
    (["plot", "data", "--svae=x.png"], "did you mean '--save'"),
    (["test_policy", "d", "--episode", "3", "--norendr"],
     "unknown option '--norendr' for test_policy; did you mean '--norender'"),
    (["demo", "--epohcs", "3"], "unknown option '--epohcs' for demo; did you mean '--epochs'"),
    (["spinfast.examples_demo:train", "--lrate", "0.1"],
     "unknown flag '--lrate' for spinfast.examples_demo:train: train() has no parameter "
     "'lrate'; did you mean '--lr'"),
    (["spinfast.examples_demo:trian"], "'spinfast.examples_demo' has no attribute 'trian'; "
                                       "did you mean 'train'?"),
    (["no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
    (["corridor_pg", "0.1"], "value '0.1' comes before any flag"),
    (["corridor_pg", "--exp_name", "a", "b"], "only provide one value for --exp_name"),
    (["corridor_pg", "--cpu", "1", "2"], "only provide one value for --num_cpu"),
    (["--lr"], "expected a command before '--lr'"),
    (["compat", "on"], "compat takes one of enable, disable, status; got ['on']"),
    (["ppoo", "--env", "CartPole-v1"], "unknown command 'ppoo'; did you mean 'ppo'?"),
])
def test_unknown_names_suggest_closest(args, message):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("spinfast: error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_name_checked_against_gymnasium(tmp_path):
    (tmp_path / "envmod.py").write_text("def f(env_fn, seed=0, logger_kwargs=None):\n    pass\n")
    proc = cli("envmod:f", "--env", "CartPol-v1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "'CartPol-v1' is not a registered gymnasium environment; did you mean" in proc.stderr
    assert "'CartPole-v1'" in proc.stderr


def test_parse_value_literals_and_dotted_names():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5
    assert parse_value("[64,64]") == [64, 64] and parse_value("(32,)") == (32,)
    assert parse_value("True") is True and parse_value("None") is None
    assert parse_value("{'a': 1}") == {"a": 1}
    assert parse_value("CartPole-v1") == "CartPole-v1"
    assert parse_value("'quoted'") == "quoted"
    assert parse_value("np.tanh") is np.tanh
    assert parse_value("numpy.linalg.norm") is np.linalg.norm
    assert parse_value("os.system") == "os.system"  # only whitelisted roots are looked up
    assert parse_value("__import__('os')") == "__import__('os')"  # never evaluated
    with pytest.raises(UsageError, match="has no attribute 'tanhh'"):
        parse_value("np.tanhh")


def test_parse_grid_args_docs_example():
    """Spinning Up's docs example: ppo_ant with --hid[h], --act, --dt and --data_dir."""
    args = ["--exp_name", "ppo_ant", "--env", "Ant-v2", "--clip_ratio", "0.1", "0.2",
            "--hid[h]", "[32,32]", "[64,32]", "--act", "np.tanh", "--seed", "0", "10", "20",
            "--dt", "--data_dir", "path/to/data"]
    arg_dict, shorthands = parse_grid_args(args)
    assert arg_dict == {"exp_name": ["ppo_ant"], "env_name": ["Ant-v2"],
                        "clip_ratio": [0.1, 0.2], "ac_kwargs:hidden_sizes": [[32, 32], [64, 32]],
                        "ac_kwargs:activation": [np.tanh], "seed": [0, 10, 20],
                        "datestamp": [True], "data_dir": ["path/to/data"]}
    assert shorthands == {"ac_kwargs:hidden_sizes": "h"}
    eg = ExperimentGrid("ppo_ant")
    for k in ("env_name", "clip_ratio", "ac_kwargs:hidden_sizes", "ac_kwargs:activation",
              "seed"):
        eg.add(k, arg_dict[k], shorthand=shorthands.get(k))
    names = sorted({eg.variant_name(v) for v in eg.variants()})
    assert names == ["ppo_ant_cli0-1_h32-32", "ppo_ant_cli0-1_h64-32", "ppo_ant_cli0-2_h32-32",
                     "ppo_ant_cli0-2_h64-32"]
    assert len(eg.variants()) == 12
    with pytest.raises(UsageError, match="given twice"):
        parse_grid_args(["--env", "a", "--env_name", "b"])


GRID_MODULE = textwrap.dedent('''
    import json
    import os


    from spinfast.logx import EpochLogger


    def exp(lr=0.1, flag=False, ac_kwargs=None, seed=0, logger_kwargs=None):
        """Record the arguments; fail when lr is negative."""
        logger = EpochLogger(**logger_kwargs)
        logger.log_tabular("lr", lr)
        logger.dump_tabular()
        with open(os.path.join(logger_kwargs["output_dir"], "args.json"), "w") as f:
            json.dump(dict(lr=lr, flag=flag, ac_kwargs=ac_kwargs, seed=seed,
                           exp_name=logger_kwargs["exp_name"]), f)
        if lr < 0:
            raise ValueError("negative lr")
''')


def test_module_function_grid(tmp_path):
    (tmp_path / "gridmod.py").write_text(GRID_MODULE)
    data = tmp_path / "data"
    proc = cli("gridmod:exp", "--lr", "0.1", "0.2", "--flag", "--hid[h]", "[32,32]",
               "--seed", "0", "1", "--exp_name", "g", "--data_dir", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lr in (0.1, 0.2):
        name = "g_lr" + str(lr).replace(".", "-")
        for seed in (0, 1):
            args = json.loads((data / name / f"{name}_s{seed}" / "args.json").read_text())
            assert args == dict(lr=lr, flag=True, ac_kwargs={"hidden_sizes": [32, 32]},
                                seed=seed, exp_name=name)
    assert "python -m spinfast.run plot " + str(data / "g_lr0-2" / "g_lr0-2_s1") in proc.stdout


def test_module_function_grid_parallel_with_a_failure(tmp_path):
    (tmp_path / "gridmod.py").write_text(GRID_MODULE)
    data = tmp_path / "data"
    proc = cli("gridmod:exp", "--lr", "-1", "0.5", "--data_dir", data, "--parallel", "2",
               cwd=tmp_path)
    assert proc.returncode == 1  # one variant failed; the other ran to the end
    assert "1 ok, 1 failed, 0 skipped" in proc.stdout
    assert json.loads((data / "cmd_exp_lr0-5" / "cmd_exp_lr0-5_s0" / "args.json")
                      .read_text())["lr"] == 0.5
    log = (data / "cmd_exp_lr-1" / "cmd_exp_lr-1_s0.log").read_text()
    assert "ValueError: negative lr" in log
    # Re-run skipping what finished: only the failed variant runs again.
    proc = cli("gridmod:exp", "--lr", "-1", "0.5", "--data_dir", data, "--parallel", "2",
               "--skip_finished", cwd=tmp_path)
    assert proc.returncode == 1 and "0 ok, 1 failed, 1 skipped" in proc.stdout


@pytest.mark.slow
def test_module_function_grid_with_submitit_local_executor(tmp_path):
    (tmp_path / "gridmod.py").write_text(GRID_MODULE)
    data = tmp_path / "data"
    proc = cli("gridmod:exp", "--lr", "-1", "0.5", "--data_dir", data, "--executor", "local",
               "--slurm_time", "5", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one variant fails on purpose
    assert "1 ok, 1 failed, 0 skipped" in proc.stdout
    assert json.loads((data / "cmd_exp_lr0-5" / "cmd_exp_lr0-5_s0" / "args.json")
                      .read_text())["lr"] == 0.5
    assert "ValueError: negative lr" in (data / "cmd_exp_lr-1" / "cmd_exp_lr-1_s0.log"
                                         ).read_text()
    # Each variant was a submitit job, with submitit's files under DATA_DIR/submitit.
    assert len(list((data / "submitit").glob("*/*_result.pkl"))) == 2
    proc = cli("gridmod:exp", "--lr", "-1", "0.5", "--data_dir", data, "--executor", "local",
               "--resume", cwd=tmp_path)
    assert proc.returncode == 1 and "0 ok, 1 failed, 1 skipped" in proc.stdout


def test_slurm_executor_parameters():
    """What --executor slurm asks submitit for, rendered by submitit into its sbatch file
    (Slurm itself is not available here: the job is never submitted)."""
    import submitit
    from submitit.slurm.slurm import _make_sbatch_string

    from spinfast.run import slurm_parameters

    params = slurm_parameters("g", 4, dict(partition="P", time=60))
    assert params == dict(job_name="g", nodes=1, ntasks_per_node=1, cpus_per_task=4, time=60,
                          partition="P")
    assert set(params) <= submitit.SlurmExecutor._valid_parameters()
    sbatch = _make_sbatch_string(command="python -u -m submitit.core._submit /f",
                                 folder="/f/%j", **params).splitlines()
    for line in ("#SBATCH --partition=P", "#SBATCH --time=60", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1", "#SBATCH --job-name=g"):
        assert line in sbatch
    # --slurm_cpus_per_task overrides --cpu's default; one CPU at least.
    assert slurm_parameters("g", 2, dict(cpus_per_task=8))["cpus_per_task"] == 8
    assert slurm_parameters("", 1, {})["cpus_per_task"] == 1
    assert slurm_parameters("", "auto", {})["job_name"] == "spinfast"


def test_make_executor_builds_submitit_slurm_executor(tmp_path, monkeypatch):
    """The executor --executor slurm makes. submitit only checks that ``srun`` is on PATH
    before accepting to build it; that file is never run (nothing is submitted)."""
    import submitit

    from spinfast.run import make_executor

    (tmp_path / "bin").mkdir()
    srun = tmp_path / "bin" / "srun"
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    executor, num_cpu = make_executor("slurm", str(tmp_path / "d"), 4, "g",
                                      dict(partition="P", time=60))
    assert isinstance(executor, submitit.SlurmExecutor) and num_cpu == 4
    assert executor.parameters == dict(job_name="g", nodes=1, ntasks_per_node=1,
                                       cpus_per_task=4, time=60, partition="P")
    assert executor.folder == tmp_path / "d" / "submitit" / "%j"
    # --cpu auto: one MPI rank per CPU the job asks for
    executor, num_cpu = make_executor("slurm", str(tmp_path / "d"), "auto", "g",
                                      dict(cpus_per_task=8))
    assert num_cpu == 8 and executor.parameters["cpus_per_task"] == 8
    with pytest.raises(UsageError, match=r"--executor slurm: Unavailable parameter\(s\): "
                                         r"\['partitoin'\]"):
        make_executor("slurm", str(tmp_path / "d"), 1, "g", dict(partitoin="P"))


@pytest.mark.parametrize("args, message", [
    (["--executor", "slurm", "--slurm_partition", "P", "--slurm_time", "60"],
     '--executor slurm: Could not detect "srun"'),
    (["--executor", "slrum"], "--executor must be one of slurm, local, got 'slrum'; did you "
                              "mean 'slurm'?"),
    (["--slurm_partition", "P"], "--slurm_partition needs --executor slurm"),
    (["--executor", "local", "--slurm_partition", "P"],
     "--executor local takes only --slurm_time, got --slurm_partition"),
    (["--executor", "local", "--slurm_time", "1", "2"],
     "only provide one value for --slurm_time"),
    (["--executor", "local", "--parallel", "2"], "--parallel runs variants on this machine"),
])
def test_executor_flag_errors(tmp_path, args, message):
    if args[:2] == ["--executor", "slurm"] and __import__("shutil").which("srun"):
        pytest.skip("this machine has Slurm")
    (tmp_path / "gridmod.py").write_text(GRID_MODULE)
    proc = cli("gridmod:exp", "--lr", "0.1", "--data_dir", tmp_path / "d", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("spinfast: error: ") and message in proc.stderr
    assert not (tmp_path / "d" / "cmd_exp").exists()


@pytest.mark.mpi
def test_demo_end_to_end_with_two_mpi_ranks(tmp_path):
    proc = cli("demo", "--data_dir", tmp_path / "d", timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    png = tmp_path / "d" / "demo.png"
    assert f"Learning curves: {png}" in proc.stdout
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(png)
    assert img.shape[0] > 100 and img[..., :3].std() > 0.01
    assert "2 ok, 0 failed, 0 skipped" in proc.stdout
    finals = {}
    for name in ("demo_lr2-0", "demo_lr10-0"):
        run = tmp_path / "d" / name / f"{name}_s0"
        config = json.loads((run / "config.json").read_text())
        assert config["num_procs"] == 2 and config["exp_name"] == name
        progress = read_progress(run)
        header, rows = progress.header, progress.rows
        assert rows.shape == (30, len(header))
        col = {k: i for i, k in enumerate(header)}
        np.testing.assert_array_equal(rows[:, col["TotalEnvInteracts"]],
                                      800.0 * np.arange(1, 31))  # 2 ranks x 400 steps
        ret = rows[:, col["AverageEpRet"]]
        finals[name] = ret[-5:].mean()
        assert ret[-5:].mean() > ret[:5].mean() + 5, (name, ret)  # it learns
        assert (ret >= -40).all() and (ret <= -7).all()  # corridor bounds
    assert finals["demo_lr10-0"] > finals["demo_lr2-0"]


def test_info_prints_versions_mpi_library_and_launcher(tmp_path):
    import spinfast
    from spinfast._mpi.launch import find_launcher

    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    rows = {line[:11].strip(): line[13:] for line in proc.stdout.splitlines()}  # aligned
    assert list(rows) == ["spinfast", "python", "MPI library", "launcher", "MPI launch",
                          "Slurm", "packages"]
    assert rows["spinfast"] == spinfast.__version__
    assert sys.executable in rows["python"]
    library = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; print("
                              "MPI.Get_library_version().replace(chr(0), '').splitlines()[0])"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert rows["MPI library"].startswith(" ".join(library.split()) + " (mpi4py ")
    assert rows["launcher"].startswith(find_launcher() + " (")
    assert rows["MPI launch"].startswith("none (this process is no MPI rank)")
    assert "numpy " in rows["packages"]
    assert "python -m spinfast.run info" in cli("--help").stdout
    # Inside a Slurm job mpi_fork uses srun: info says so (srun is only looked up, never run).
    (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "srun").chmod(0o755)
    proc = cli("info", env=dict(SLURM_JOB_ID="42",
                                PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}"))
    assert f"launcher     {tmp_path / 'srun'} (Slurm's srun)" in proc.stdout
    assert "Slurm        job 42" in proc.stdout
    proc = cli("info", "--cpu")
    assert proc.returncode == 2 and "info takes no arguments" in proc.stderr


def test_info_initialises_no_mpi_and_imports_no_framework():
    code = ("import sys; from spinfast.run import main; main(['info']); "
            "from mpi4py import MPI; "
            "print(MPI.Is_initialized(), [m for m in ('torch', 'tensorflow') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False []"


VERBOSE_MODULE = textwrap.dedent('''
    import os


    def takes_verbose(verbose=False, seed=0, logger_kwargs=None):
        """Record whether --verbose reached the function."""
        os.makedirs(logger_kwargs["output_dir"], exist_ok=True)
        with open(os.path.join(logger_kwargs["output_dir"], "verbose.txt"), "w") as f:
            f.write(repr(verbose))
''')


@pytest.mark.mpi
def test_verbose_grid_prints_mpi_library_and_launcher_first(tmp_path):
    from spinfast._mpi.launch import find_launcher

    data = tmp_path / "data"
    proc = cli("spinfast.examples_demo:train", "--epochs", "1", "--steps_per_epoch", "50",
               "--cpu", "2", "--verbose", "--exp_name", "v", "--data_dir", data)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    head = proc.stdout[:proc.stdout.index("ExperimentGrid")]
    assert "MPI library" in head and "mpi4py" in head
    assert f"launcher     {find_launcher()} (" in head
    assert "each variant starts 2 ranks with it" in head
    # train() has no verbose parameter: --verbose is the command line's alone.
    assert json.loads((data / "v" / "v_s0" / "config.json").read_text())["num_procs"] == 2
    # A function that takes verbose still gets it.
    (tmp_path / "vmod.py").write_text(VERBOSE_MODULE)
    proc = cli("vmod:takes_verbose", "--verbose", "--exp_name", "w", "--data_dir", data,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "unused: --cpu 1 runs each variant as one process" in proc.stdout
    assert (data / "w" / "w_s0" / "verbose.txt").read_text() == "True"
