"""spinfast.compat: code written for Spinning Up runs unchanged after install()."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from helpers import read_progress, run_program

INSTALL = "import spinfast.compat\nspinfast.compat.install()\n"


def run_python(code_or_file, cwd, args=(), timeout=120):
    """Run a program (code, or a file's name) in a fresh interpreter; fail with its output."""
    code = ["-c", code_or_file] if "\n" in code_or_file else [code_or_file]
    return run_program([*code, *args], cwd, timeout=timeout)


def test_aliases_are_spinfast_modules_and_lazy(tmp_path):
    code = INSTALL + textwrap.dedent("""
        import sys
        heavy = ("torch", "tensorflow", "pandas", "seaborn", "matplotlib", "gymnasium")
        assert "spinfast.logx" not in sys.modules  # install() itself imports nothing

        import spinup.utils.logx
        import spinfast.logx
        assert spinup.utils.logx is spinfast.logx
        from spinup.utils.logx import EpochLogger
        assert EpochLogger is spinfast.logx.EpochLogger
        from spinup.utils.mpi_tools import mpi_avg, proc_id
        import spinfast.mpi_tools
        assert mpi_avg is spinfast.mpi_tools.mpi_avg
        from spinup.utils import run_utils, serialization_utils
        import spinfast.run_utils, spinfast.serialization_utils
        assert run_utils is spinfast.run_utils
        assert serialization_utils is spinfast.serialization_utils
        import spinup.utils.plot, spinup.utils.test_policy, spinup.user_config
        import spinfast.plot, spinfast.test_policy, spinfast.user_config
        assert spinup.utils.plot is spinfast.plot
        assert spinup.utils.test_policy is spinfast.test_policy
        assert spinup.user_config is spinfast.user_config
        import spinup
        assert spinup.utils.logx is spinfast.logx
        assert [m for m in heavy if m in sys.modules] == []

        import spinup.utils.mpi_pytorch  # PyTorch loads on first use, not on import
        assert spinup.utils.mpi_pytorch is sys.modules["spinfast.mpi_pytorch"]
        assert "torch" not in sys.modules

        spinfast.compat.uninstall()
        assert not any(m == "spinup" or m.startswith("spinup.") for m in sys.modules)
        try:
            import spinup.utils.logx
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError("spinup still importable after uninstall()")
        spinfast.compat.install()
        spinfast.compat.install()  # idempotent
        from spinup.utils.logx import Logger
        assert Logger is spinfast.logx.Logger
        print("ok")
    """)
    assert run_python(code, tmp_path).stdout.strip().endswith("ok")


def test_real_spinup_folders_stay_reachable_without_its_init(tmp_path):
    pkg = tmp_path / "spinup"
    (pkg / "utils").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the real spinup/__init__.py ran')\n")
    (pkg / "utils" / "__init__.py").write_text("")
    (pkg / "utils" / "logx.py").write_text("raise RuntimeError('the real logx ran')\n")
    (pkg / "extra.py").write_text("from spinup.utils.logx import EpochLogger\nVALUE = 42\n")
    code = INSTALL + textwrap.dedent("""
        import spinup.extra, spinfast.logx
        assert spinup.extra.VALUE == 42
        assert spinup.extra.EpochLogger is spinfast.logx.EpochLogger
        print("ok")
    """)
    assert run_python(code, tmp_path).stdout.strip().endswith("ok")
    code = textwrap.dedent("""
        import sys
        sys.modules["spinup"] = type(sys)("spinup")  # as if the real one were imported
        import spinfast.compat
        try:
            spinfast.compat.install()
        except ImportError as exc:
            assert "install(): the real module 'spinup' is already imported" in str(exc)
            print("refused")
    """)
    assert run_python(code, tmp_path).stdout.strip() == "refused"


SU_ALGO = '''\
import numpy as np

from spinup.utils.logx import EpochLogger
from spinup.utils.mpi_tools import mpi_avg, num_procs, proc_id


def linreg(seed=0, epochs=3, lr=0.1, logger_kwargs=dict()):
    """Least squares by gradient descent, gradients averaged over MPI ranks."""
    logger = EpochLogger(**logger_kwargs)
    logger.save_config(locals())
    rng = np.random.RandomState(seed + 1000 * proc_id())
    true_w = np.array([1.0, -2.0, 0.5])
    w = np.zeros(3)
    for epoch in range(epochs):
        x = rng.randn(64, 3)
        y = x @ true_w
        grad = mpi_avg(2 * x.T @ (x @ w - y) / len(x))
        w -= lr * grad
        logger.store(Loss=np.mean((x @ w - y) ** 2))
        logger.log_tabular('Epoch', epoch)
        logger.log_tabular('Loss', average_only=True)
        logger.log_tabular('NumProcs', num_procs())
        logger.dump_tabular()
'''

SU_SCRIPT = INSTALL + '''\
# ---- everything below is written for Spinning Up and left unchanged ----
import argparse

from spinup.utils.run_utils import ExperimentGrid
from su_algo import linreg

if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--cpu', type=int, default=2)
    parser.add_argument('--data_dir', type=str)
    args = parser.parse_args()

    eg = ExperimentGrid(name='su-style')
    eg.add('seed', [0])
    eg.add('epochs', 4)
    eg.add('lr', [0.05, 0.2], '')
    eg.run(linreg, num_cpu=args.cpu, data_dir=args.data_dir)
'''


@pytest.mark.mpi
def test_spinning_up_style_grid_script_runs_unchanged(tmp_path):
    (tmp_path / "su_algo.py").write_text(SU_ALGO)
    (tmp_path / "script.py").write_text(SU_SCRIPT)
    run_python("script.py", tmp_path, args=["--data_dir", tmp_path / "data"])
    losses = {}
    for name in ("su-style_0-05", "su-style_0-2"):
        run = tmp_path / "data" / name / f"{name}_s0"
        config = json.loads((run / "config.json").read_text())
        assert config["exp_name"] == name and config["epochs"] == 4
        progress = read_progress(run)
        assert progress.header == ["Epoch", "Loss", "NumProcs"]
        rows = progress.cells
        assert [r[0] for r in rows] == ["0", "1", "2", "3"]
        assert {r[2] for r in rows} == {"2"}  # two MPI ranks
        losses[name] = [float(r[1]) for r in rows]
    # Gradient descent on a noiseless least-squares problem: the loss goes down.
    for name, loss in losses.items():
        assert loss[-1] < loss[0], (name, loss)
    assert losses["su-style_0-2"][-1] < losses["su-style_0-05"][-1]


@pytest.mark.mpi
def test_spinning_up_style_mpi_fork_script(tmp_path):
    script = INSTALL + textwrap.dedent("""
        import sys
        from spinup.utils.mpi_tools import mpi_fork, proc_id
        from spinup.utils.logx import EpochLogger
        from spinup.utils.run_utils import setup_logger_kwargs

        mpi_fork(2)  # relaunches this very script under mpiexec
        logger = EpochLogger(**setup_logger_kwargs('direct', seed=0, data_dir=sys.argv[1]))
        for i in range(10):
            logger.store(Test=i + 10 * proc_id())
        logger.log_tabular('Test', with_min_and_max=True)
        logger.dump_tabular()
    """)
    (tmp_path / "direct.py").write_text(script)
    run_python("direct.py", tmp_path, args=[tmp_path / "d"])
    progress = read_progress(tmp_path / "d" / "direct" / "direct_s0")
    assert progress.header == ["AverageTest", "StdTest", "MaxTest", "MinTest"]
    [row] = progress.rows
    values = np.arange(20.0)  # the union of both ranks' values
    assert list(row) == pytest.approx(
        [values.mean(), values.std(), values.max(), values.min()], rel=1e-12)


# Starts a program as the .pth hook of `spinfast compat enable` does: startup() with the
# program as sys.argv[0], then the program as __main__ with the __builtins__ that startup()
# left on __main__.
AS_STARTED = textwrap.dedent("""
    import runpy, sys
    sys.argv = sys.argv[1:]
    import spinfast.compat
    spinfast.compat.startup()
    heavy = ("torch", "tensorflow", "pandas", "seaborn", "matplotlib", "gymnasium")
    assert [m for m in heavy if m in sys.modules] == [], "startup() imported a framework"
    runpy.run_path(sys.argv[0], run_name="__main__",
                   init_globals={"__builtins__": sys.modules["__main__"].__builtins__})
""")

PROBE = textwrap.dedent("""
    import seaborn as sns
    import spinfast.plot  # another module: its seaborn is seaborn itself
    print(hasattr(sns, "tsplot"), hasattr(sys.modules["seaborn"], "tsplot"))
""")


@pytest.mark.slow
def test_only_spinning_up_plot_script_gets_tsplot(tmp_path):
    """Issue 22: `import seaborn` in Spinning Up's plot.py has tsplot; elsewhere seaborn is
    left alone (another __main__, another module, sys.modules)."""
    plot_py = tmp_path / "spinup" / "utils" / "plot.py"
    plot_py.parent.mkdir(parents=True)
    other = tmp_path / "plot.py"
    for path in (plot_py, other):
        path.write_text("import sys\n" + PROBE)
    out = run_python(AS_STARTED, tmp_path, args=[plot_py]).stdout.split()
    assert out == ["True", "False"]
    assert run_python(AS_STARTED, tmp_path, args=[other]).stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_only_spinning_up_test_policy_script_gets_tf1(tmp_path):
    """Issue 22: Spinning Up's test_policy.py gets tf.compat.v1 as `tensorflow` (its line 74
    calls tf.Session()) and PyTorch's whole-module loads; another __main__ gets neither."""
    probe = textwrap.dedent("""
        import os
        import tensorflow as tf
        print(hasattr(tf, "Session"), os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"))
    """)
    script = tmp_path / "spinup" / "utils" / "test_policy.py"
    script.parent.mkdir(parents=True)
    other = tmp_path / "test_policy.py"
    for path in (script, other):
        path.write_text(probe)
    assert run_python(AS_STARTED, tmp_path, args=[script]).stdout.split()[-2:] == ["True", "1"]
    assert run_python(AS_STARTED, tmp_path, args=[other]).stdout.split()[-2:] == ["False",
                                                                                  "None"]


def test_tsplot_shim_arguments():
    """The shim draws tsplot's other argument forms, and refuses those it does not draw."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib.figure import Figure

    from spinfast.compat._seaborn import tsplot

    frame = pd.DataFrame(dict(t=[0, 1, 2] * 2, u=[0] * 3 + [1] * 3, v=[1.0, 2, 3, 3, 4, 5]))
    ax = tsplot(data=frame, time="t", unit="u", value="v", ci=None, ax=Figure().add_subplot())
    [line] = ax.lines
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, 4.0])  # the mean over units
    assert ax.get_legend() is None and ax.get_xlim() == (0.0, 2.0)
    ax = tsplot(data=frame, time="t", unit="u", value="v", condition="u", ci="sd",
                color={0: "red", 1: "blue"}, ax=Figure().add_subplot())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]
    with pytest.raises(TypeError, match="long-form DataFrame"):
        tsplot(data=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="err_style 'boot_traces' is not drawn"):
        tsplot(data=frame, time="t", value="v", err_style="boot_traces")
