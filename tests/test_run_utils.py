"""run_utils: names and variants against hand-written expectations; real experiment processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import read_progress

from spinfast import user_config
from spinfast.run_utils import (
    STATUS_FILE,
    ExperimentGrid,
    call_experiment,
    is_finished,
    setup_logger_kwargs,
    valid_str,
)


@pytest.fixture(autouse=True)
def _no_launch_wait(monkeypatch):
    monkeypatch.setattr(user_config, "WAIT_BEFORE_LAUNCH", 0)


def relu(x):
    """A named function, as an activation passed in a grid."""
    return np.maximum(x, 0)


# ---------------------------------------------------------------------------------------------
# setup_logger_kwargs and user_config
# ---------------------------------------------------------------------------------------------

def test_setup_logger_kwargs_layouts(tmp_path):
    d = str(tmp_path)
    assert setup_logger_kwargs("exp", data_dir=d) == dict(output_dir=f"{d}/exp", exp_name="exp")
    assert setup_logger_kwargs("exp", seed=3, data_dir=d) == dict(
        output_dir=f"{d}/exp/exp_s3", exp_name="exp")
    out = setup_logger_kwargs("exp", seed=3, data_dir=d, datestamp=True)["output_dir"]
    assert re.fullmatch(re.escape(d) + r"/\d{4}-\d\d-\d\d_exp/"
                        r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-exp_s3", out), out
    out = setup_logger_kwargs("exp", data_dir=d, datestamp=True)["output_dir"]
    assert re.fullmatch(re.escape(d) + r"/\d{4}-\d\d-\d\d_exp", out), out


def test_setup_logger_kwargs_defaults_from_user_config(monkeypatch, tmp_path):
    monkeypatch.setattr(user_config, "DEFAULT_DATA_DIR", str(tmp_path / "dd"))
    assert setup_logger_kwargs("e", 0)["output_dir"] == str(tmp_path / "dd" / "e" / "e_s0")
    monkeypatch.setattr(user_config, "FORCE_DATESTAMP", True)
    assert re.search(r"/\d{4}-\d\d-\d\d_e/", setup_logger_kwargs("e", 0)["output_dir"])
    with pytest.raises(TypeError, match=r"setup_logger_kwargs\(\): exp_name must be a string"):
        setup_logger_kwargs(5)


def test_user_config_environment_variables(tmp_path):
    code = ("import spinfast.user_config as u; print(u.DEFAULT_DATA_DIR, u.FORCE_DATESTAMP, "
            "u.DEFAULT_SHORTHAND, u.WAIT_BEFORE_LAUNCH)")
    env = dict(os.environ, SPINFAST_DATA_DIR=str(tmp_path / "x"), SPINFAST_FORCE_DATESTAMP="yes",
               SPINFAST_DEFAULT_SHORTHAND="0", SPINFAST_WAIT_BEFORE_LAUNCH="1.5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == [str(tmp_path / "x"), "True", "False", "1.5"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINFAST_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == [str(tmp_path / "data"), "False", "True", "5"]
    env["SPINFAST_FORCE_DATESTAMP"] = "maybe"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "SPINFAST_FORCE_DATESTAMP is 'maybe'" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Names and variants (pure)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("CartPole-v1", "cartpole-v1"),
    (0.001, "0-001"),
    (3e-4, "0-0003"),
    ([64, 64], "64-64"),
    ((32,), "32"),
    ([[1, 2], 3], "1-2-3"),
    (relu, "relu"),
    (np.tanh, "tanh"),
    (ExperimentGrid, "experimentgrid"),
    (None, "none"),
    (True, "true"),
    ("a b/c:d.e", "a-b-c-d-e"),
    ("Ünï", "-n-"),
    ({"k": 1}, "--k---1-"),
])
def test_valid_str(value, expected):
    assert valid_str(value) == expected


@pytest.mark.parametrize("key, expected", [
    ("steps_per_epoch", "ste"),
    ("ac_kwargs:hidden_sizes", "ac-hid"),
    ("env_name", "env"),
    ("lr", "lr"),
    ("_x:y_z", "x-yz"),  # first three characters, then only letters and digits kept
    ("a.b", "ab"),
    ("pi_lr:x:y", "pi-x-y"),
])
def test_default_shorthand(key, expected):
    grid = ExperimentGrid()
    grid.add(key, [1, 2])
    assert grid.shs == [expected]


def _docs_grid():
    """The benchmark grid of Spinning Up's docs, with numpy functions for the activations."""
    eg = ExperimentGrid(name="ppo-tf1-bench")
    eg.add("env_name", "CartPole-v0", "", True)
    eg.add("seed", [0, 10, 20])
    eg.add("epochs", 10)
    eg.add("steps_per_epoch", 4000)
    eg.add("ac_kwargs:hidden_sizes", [(32,), (64, 64)], "hid")
    eg.add("ac_kwargs:activation", [np.tanh, relu], "")
    return eg


def test_docs_grid_variants_and_names():
    eg = _docs_grid()
    variants = eg.variants()
    assert len(variants) == 12
    assert variants[0] == {"env_name": "CartPole-v0", "seed": 0, "epochs": 10,
                           "steps_per_epoch": 4000,
                           "ac_kwargs": {"hidden_sizes": (32,), "activation": np.tanh}}
    assert variants[1] == {"env_name": "CartPole-v0", "seed": 0, "epochs": 10,
                           "steps_per_epoch": 4000,
                           "ac_kwargs": {"hidden_sizes": (32,), "activation": relu}}
    assert variants[4]["seed"] == 10  # the first key added varies slowest
    names = [eg.variant_name(v) for v in variants]
    expected = ["ppo-tf1-bench_cartpole-v0_hid32_tanh", "ppo-tf1-bench_cartpole-v0_hid32_relu",
                "ppo-tf1-bench_cartpole-v0_hid64-64_tanh",
                "ppo-tf1-bench_cartpole-v0_hid64-64_relu"]
    assert names == expected * 3  # seeds never appear in names


def test_booleans_seed_in_name_and_stripping():
    eg = ExperimentGrid()  # no name: the leading '_' goes
    eg.add("use_gae", [True, False])
    eg.add("seed", [0, 1], in_name=True)  # seed is never in the name, even when asked
    eg.add("render", False, in_name=True)
    eg.add("mixed", [True, 0])  # not all booleans: the value is written
    eg.add("lr", 0.5, shorthand="LR", in_name=True)  # shorthands pass through valid_str
    names = [eg.variant_name(v) for v in eg.variants()]
    assert names == ["use_mixtrue_lr0-5", "use_mix0_lr0-5"] * 2 + ["mixtrue_lr0-5",
                                                                    "mix0_lr0-5"] * 2


def test_nested_keys_three_levels():
    eg = ExperimentGrid("n")
    eg.add("a:b:c", [1, 2])
    eg.add("a:b:d", "x")
    eg.add("a:e", [None])
    eg.add("f", 3)
    assert eg.variants() == [{"a": {"b": {"c": 1, "d": "x"}, "e": None}, "f": 3},
                             {"a": {"b": {"c": 2, "d": "x"}, "e": None}, "f": 3}]
    assert [eg.variant_name(v) for v in eg.variants()] == ["n_a-b-c1", "n_a-b-c2"]


def test_shorthand_disabled_uses_key(monkeypatch):
    monkeypatch.setattr(user_config, "DEFAULT_SHORTHAND", False)
    eg = ExperimentGrid("g")
    eg.add("ac_kwargs:hidden_sizes", [[8], [16, 16]])
    assert eg.shs == [None]
    assert [eg.variant_name(v) for v in eg.variants()] == ["g_ac_kwargs-hidden_sizes8",
                                                          "g_ac_kwargs-hidden_sizes16-16"]


def test_grid_errors():
    eg = ExperimentGrid()
    with pytest.raises(TypeError, match=r"ExperimentGrid.add\(\): key must be a string"):
        eg.add(1, [1])
    with pytest.raises(TypeError, match="shorthand must be a string"):
        eg.add("k", [1], shorthand=3)
    with pytest.raises(ValueError, match=r"no values given for key 'k'"):
        eg.add("k", [])
    eg.add("a", 1)
    with pytest.raises(ValueError, match=r"key 'a' is already in the grid"):
        eg.add("a", 2)
    eg.add("a:b", 2)
    with pytest.raises(ValueError, match=r"can't assign multiple values to the same key"):
        eg.variants()
    with pytest.raises(TypeError, match="name must be a string"):
        ExperimentGrid(name=None)
    with pytest.raises(TypeError, match=r"thunk 'nope' is not a grid key"):
        ExperimentGrid("x").run("nope")


def test_print_report(capsys):
    _docs_grid().print()
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "=" * 80 and lines[-1] == "=" * 80
    assert "ExperimentGrid [ppo-tf1-bench] runs over parameters:" in out
    assert "ac_kwargs:hidden_sizes".ljust(40) in out and "[hid]" in out
    assert "\t(32,)\n\t(64, 64)\n" in out and "\ttanh\n\trelu\n" in out
    assert " Variants, counting seeds: ".ljust(40) + " 12" in out
    assert " Variants, not counting seeds: ".ljust(40) + " 4" in out


# ---------------------------------------------------------------------------------------------
# Real experiment processes. Thunks live at module level: the experiment process imports this
# module through the launcher's sys.path, which call_experiment passes along.
# ---------------------------------------------------------------------------------------------

def record_kwargs(seed, logger_kwargs, out_file=None, blob=None, **kwargs):
    """Write what the experiment process received to ``out_file`` (default: in output_dir)."""
    from spinfast.mpi_tools import num_procs, proc_id

    if out_file is None:
        os.makedirs(logger_kwargs["output_dir"], exist_ok=True)
        out_file = os.path.join(logger_kwargs["output_dir"], "rec")
    info = dict(seed=seed, logger_kwargs=logger_kwargs, pid=os.getpid(), rank=proc_id(),
                size=num_procs(), blob_len=None if blob is None else len(blob),
                kwargs=sorted(kwargs))
    if "env_fn" in kwargs:
        info["env_id"] = kwargs["env_fn"]().spec.id
    with open(f"{out_file}.{proc_id()}", "w") as f:
        json.dump(info, f)


def log_progress(seed, logger_kwargs, lr=0.1, fail=False, epochs=2, counter=None):
    """A tiny experiment writing config.json and progress.txt; fails when asked."""
    from spinfast.logx import EpochLogger

    if counter is not None:
        with open(counter, "a") as f:
            f.write(logger_kwargs["exp_name"] + "\n")
    logger = EpochLogger(**logger_kwargs)
    logger.save_config(dict(seed=seed, lr=lr, fail=fail))
    for epoch in range(epochs):
        logger.store(Loss=[lr * epoch, seed])
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Loss")
        logger.dump_tabular()
    if fail:
        raise RuntimeError(f"variant {logger_kwargs['exp_name']} fails on purpose")


def test_call_experiment_runs_in_a_fresh_process(tmp_path, capfd):
    out = tmp_path / "rec"
    blob = "x" * (300 * 1024)  # far above the 128 KiB argv limit of Spinning Up's way
    call_experiment("ce", record_kwargs, seed=7, data_dir=str(tmp_path / "d"),
                    out_file=str(out), blob=blob, extra=[1, 2])
    info = json.loads((tmp_path / "rec.0").read_text())
    assert info["pid"] != os.getpid()
    assert info["seed"] == 7 and info["blob_len"] == len(blob)
    assert info["logger_kwargs"] == dict(output_dir=str(tmp_path / "d" / "ce" / "ce_s7"),
                                         exp_name="ce")
    assert info["kwargs"] == ["extra"] and (info["rank"], info["size"]) == (0, 1)
    printed = capfd.readouterr().out
    assert "Running experiment:" in printed and "\nce\n" in printed
    assert '"extra":\t[\n        1,\n        2\n    ],' in printed  # save_config's JSON style
    assert "python -m spinfast.run plot " + str(tmp_path / "d" / "ce" / "ce_s7") in printed
    assert "python -m spinfast.run test_policy " + str(tmp_path / "d" / "ce" / "ce_s7") in printed


def test_call_experiment_env_name_becomes_env_fn(tmp_path):
    call_experiment("envx", record_kwargs, data_dir=str(tmp_path), out_file=str(tmp_path / "r"),
                    env_name="CartPole-v1")
    info = json.loads((tmp_path / "r.0").read_text())
    assert info["env_id"] == "CartPole-v1" and info["kwargs"] == ["env_fn"]


def test_call_experiment_failure_raises_and_records_status(tmp_path, capfd):
    with pytest.raises(subprocess.CalledProcessError):
        call_experiment("bad", log_progress, data_dir=str(tmp_path), fail=True)
    out_dir = tmp_path / "bad" / "bad_s0"
    status = json.loads((out_dir / STATUS_FILE).read_text())
    assert status["exit_status"] == 1 and status["exp_name"] == "bad"
    assert not is_finished(out_dir)
    captured = capfd.readouterr()
    assert "fails on purpose" in captured.err
    assert "There appears to have been an error in your experiment." in captured.out


def test_call_experiment_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"call_experiment\(\): num_cpu must be"):
        call_experiment("x", log_progress, num_cpu=0, data_dir=str(tmp_path))
    with pytest.raises(TypeError, match=r"call_experiment\(\): thunk must be callable"):
        call_experiment("x", 3, data_dir=str(tmp_path))
    with pytest.raises(TypeError, match="could not serialize"):
        call_experiment("x", log_progress, data_dir=str(tmp_path), lock=__import__(
            "threading").Lock())


@pytest.mark.mpi
def test_call_experiment_forks_mpi_ranks(tmp_path):
    call_experiment("mpi", record_kwargs, seed=1, num_cpu=2, data_dir=str(tmp_path),
                    out_file=str(tmp_path / "r"))
    infos = [json.loads((tmp_path / f"r.{i}").read_text()) for i in range(2)]
    assert sorted((i["rank"], i["size"]) for i in infos) == [(0, 2), (1, 2)]
    assert infos[0]["pid"] != infos[1]["pid"]
    assert all(i["seed"] == 1 for i in infos)


def test_grid_run_sequential_writes_expected_folders(tmp_path):
    eg = ExperimentGrid("seq")
    eg.add("lr", [0.1, 0.2])
    eg.add("seed", [0, 1])
    results = eg.run(log_progress, data_dir=str(tmp_path))
    assert [(r.name, r.status) for r in results] == [("seq_lr0-1", "ok")] * 2 + [
        ("seq_lr0-2", "ok")] * 2
    for lr in ("0-1", "0-2"):
        for seed in (0, 1):
            run = tmp_path / f"seq_lr{lr}" / f"seq_lr{lr}_s{seed}"
            config = json.loads((run / "config.json").read_text())
            assert config == dict(seed=seed, lr=float(lr.replace("-", ".")), fail=False,
                                  exp_name=f"seq_lr{lr}")
            progress = read_progress(run)
            assert progress.header == ["Epoch", "AverageLoss", "StdLoss"]
            assert len(progress.cells) == 2
            assert is_finished(run)


def test_grid_thunk_given_as_key(tmp_path):
    eg = ExperimentGrid("fn")
    eg.add("thunk", [log_progress, record_kwargs], shorthand="f")
    eg.add("epochs", 1)
    results = eg.run("thunk", data_dir=str(tmp_path))
    assert [r.name for r in results] == ["fn_flog_progress", "fn_frecord_kwargs"]
    progress = read_progress(tmp_path / "fn_flog_progress" / "fn_flog_progress_s0")
    assert len(progress.table) == 2
    info = json.loads((tmp_path / "fn_frecord_kwargs" / "fn_frecord_kwargs_s0" / "rec.0")
                      .read_text())
    assert info["kwargs"] == ["epochs"]  # the thunk key itself is not passed on


@pytest.mark.slow
def test_parallel_failure_does_not_stop_others_then_skip(tmp_path, capsys):
    counter = tmp_path / "runs.txt"
    eg = ExperimentGrid("par")
    eg.add("lr", [0.1, 0.2, 0.3])
    eg.add("fail", [False, True])
    eg.add("counter", str(counter))
    start = time.time()
    results = eg.run(log_progress, data_dir=str(tmp_path), parallel=2)
    assert time.time() - start < 60
    by_name = {r.name: r for r in results}
    assert [r.name for r in results] == ["par_lr0-1", "par_lr0-1_fai", "par_lr0-2",
                                         "par_lr0-2_fai", "par_lr0-3", "par_lr0-3_fai"]
    for name, r in by_name.items():
        run = tmp_path / name / f"{name}_s0"
        assert r.output_dir == str(run)
        assert r.log_path == str(run) + ".log"
        log = open(r.log_path).read()
        assert "Running experiment:" in log and "|           Epoch |" in log
        if name.endswith("_fai"):
            assert (r.status, r.returncode) == ("failed", 1)
            assert "RuntimeError: variant %s fails on purpose" % name in log
            assert not is_finished(run)
        else:
            assert (r.status, r.returncode) == ("ok", 0) and r.seconds > 0
            assert is_finished(run)
    out = capsys.readouterr().out
    summary = out[out.index("Summary of the experiment grid"):]
    assert re.search(r"par_lr0-1_s0 +\d+\.\d  ok \(exit 0\)", summary)
    assert re.search(r"par_lr0-2_fai_s0 +\d+\.\d  .*failed \(exit 1\)", summary)
    assert "3 ok, 3 failed, 0 skipped" in summary
    assert sorted(counter.read_text().split()) == sorted(by_name)

    # A re-run skips the three finished variants and runs the failed ones again.
    results = eg.run(log_progress, data_dir=str(tmp_path), parallel=2, skip_finished=True)
    assert [r.status for r in results] == ["skipped", "failed"] * 3
    assert sorted(counter.read_text().split()) == sorted(list(by_name) + [
        n for n in by_name if n.endswith("_fai")])
    assert "0 ok, 3 failed, 3 skipped" in capsys.readouterr().out


def test_skip_finished_sequential_and_datestamp_refused(tmp_path):
    counter = tmp_path / "runs.txt"
    eg = ExperimentGrid("sk")
    eg.add("lr", [0.1, 0.2])
    eg.add("counter", str(counter))
    assert [r.status for r in eg.run(log_progress, data_dir=str(tmp_path))] == ["ok", "ok"]
    # Interrupted run: a status file from an older success must not count once a run starts.
    (tmp_path / "sk_lr0-2" / "sk_lr0-2_s0" / STATUS_FILE).unlink()
    results = eg.run(log_progress, data_dir=str(tmp_path), skip_finished=True)
    assert [r.status for r in results] == ["skipped", "ok"]
    assert counter.read_text().split() == ["sk_lr0-1", "sk_lr0-2", "sk_lr0-2"]
    with pytest.raises(ValueError, match="skip_finished=True cannot find earlier runs"):
        eg.run(log_progress, data_dir=str(tmp_path), datestamp=True, skip_finished=True)
    with pytest.raises(ValueError, match="parallel must be None, an int >= 1 or 'auto'"):
        eg.run(log_progress, data_dir=str(tmp_path), parallel=0)


def test_is_finished_definition(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    assert not is_finished(run)
    (run / "progress.txt").write_text("Epoch\tLoss\n0\t1.5\n")
    assert not is_finished(run)  # no status file: never known to have ended
    (run / STATUS_FILE).write_text(json.dumps(dict(exit_status=0)))
    assert is_finished(run)
    (run / "progress.txt").write_text("Epoch\tLoss\n")
    assert not is_finished(run)  # header only
    (run / "progress.txt").write_text("Epoch\tLoss\n0\t1.5")
    assert not is_finished(run)  # the only row is cut short
    (run / "progress.txt").write_text("Epoch\tLoss\n0\t1.5\n")
    (run / STATUS_FILE).write_text(json.dumps(dict(exit_status=3)))
    assert not is_finished(run)
    (run / STATUS_FILE).write_text("{not json")
    assert not is_finished(run)


@pytest.mark.mpi
def test_failure_under_mpi_ends_the_job(tmp_path):
    start = time.time()
    with pytest.raises(subprocess.CalledProcessError):
        call_experiment("mpifail", log_progress, num_cpu=2, data_dir=str(tmp_path), fail=True)
    assert time.time() - start < 60  # every rank ended; nothing hangs
    status = json.loads((tmp_path / "mpifail" / "mpifail_s0" / STATUS_FILE).read_text())
    assert status["exit_status"] != 0


# ---------------------------------------------------------------------------------------------
# Executors: concurrent.futures and submitit run the same ExperimentJob records
# ---------------------------------------------------------------------------------------------

def resumable(seed, logger_kwargs, epochs=6, kill_at=None, sleep=0.0):
    """An experiment that checkpoints every epoch and continues from it when resumed.

    It logs with spinfast's own EpochLogger(**logger_kwargs), which drops the rows written
    after the last ``save_state`` when ``logger_kwargs['resume']`` is set, and ``load_state``
    gives the checkpoint to continue from. On a first attempt (not resumed) it kills itself
    with SIGKILL when it reaches ``kill_at``. Every attempt appends ``"<resume> <first
    epoch>"`` to ``attempts.txt``.
    """
    import contextlib
    import io
    import signal as signal_

    from spinfast.logx import EpochLogger

    with contextlib.redirect_stdout(io.StringIO()):
        logger = EpochLogger(formats="txt", **logger_kwargs)
    resume = bool(logger_kwargs.get("resume", False))
    first = (logger.load_state() or {"next_epoch": 0})["next_epoch"]
    with open(os.path.join(logger_kwargs["output_dir"], "attempts.txt"), "a") as f:
        f.write(f"{resume} {first}\n")
    for epoch in range(first, epochs):
        if kill_at == epoch and not resume:
            os.kill(os.getpid(), signal_.SIGKILL)
        time.sleep(sleep)
        logger.log_tabular("Epoch", epoch)
        logger.log_tabular("Value", 10 * seed + epoch)
        logger.dump_tabular()
        logger.save_state({"next_epoch": epoch + 1})
    logger.close()


def _executor(kind, tmp_path):
    """A fresh executor of ``kind``; the caller shuts pools down."""
    import concurrent.futures

    import submitit

    if kind == "process":
        return concurrent.futures.ProcessPoolExecutor(2)
    if kind == "submitit_local":
        return submitit.LocalExecutor(folder=str(tmp_path / "submitit" / "%j"))
    if kind == "submitit_debug":
        return submitit.DebugExecutor(folder=str(tmp_path / "submitit" / "%j"))
    raise AssertionError(kind)


def _shutdown(executor):
    shutdown = getattr(executor, "shutdown", None)
    if shutdown is not None:
        shutdown()


def _tree(root):
    """Every file under ``root`` (submitit's own folder left out) -> its text, status files
    reduced to their exit status, log files to whether they report an epoch table."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(("submitit/", "runs.txt")):
            continue
        if path.name == STATUS_FILE:
            tree[rel] = json.loads(path.read_text())["exit_status"]
        elif path.suffix == ".log":
            tree[rel] = "|           Epoch |" in path.read_text()
        else:
            tree[rel] = path.read_text()
    return tree


def _failing_grid(counter):
    eg = ExperimentGrid("ex")
    eg.add("lr", [0.1, 0.2])
    eg.add("fail", [False, True])
    eg.add("counter", str(counter))
    return eg


@pytest.fixture(scope="module")
def parallel_reference(tmp_path_factory):
    """The failing grid run once with parallel=2: its files are what every executor makes."""
    root = tmp_path_factory.mktemp("parallel")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(user_config, "WAIT_BEFORE_LAUNCH", 0)
        results = _failing_grid(root / "runs.txt").run(log_progress, data_dir=str(root),
                                                       parallel=2)
    return root, results


@pytest.mark.parametrize("kind", ["process", pytest.param("submitit_local", marks=pytest.mark.slow),
                                  pytest.param("submitit_debug", marks=pytest.mark.slow)])
def test_executor_matches_parallel_reports_failures_and_skips(kind, tmp_path, capsys,
                                                             parallel_reference):
    ref_root, ref_results = parallel_reference
    counter = tmp_path / "runs.txt"
    executor = _executor(kind, tmp_path)
    try:
        results = _failing_grid(counter).run(log_progress, data_dir=str(tmp_path),
                                             executor=executor)
        out = capsys.readouterr().out
        # Same variants, statuses, folders and files as parallel=2, byte for byte.
        assert [(r.name, r.status, r.returncode) for r in results] == [
            (r.name, r.status, r.returncode) for r in ref_results]
        assert [(r.name, r.status, r.returncode) for r in results] == [
            ("ex_lr0-1", "ok", 0), ("ex_lr0-1_fai", "failed", 1), ("ex_lr0-2", "ok", 0),
            ("ex_lr0-2_fai", "failed", 1)]
        assert _tree(tmp_path) == _tree(ref_root)
        assert len(_tree(tmp_path)) == 4 * 4  # config, progress, status, log per variant
        for r in results:
            assert r.output_dir == str(tmp_path / r.name / f"{r.name}_s0")
            assert r.log_path == r.output_dir + ".log"
            if r.status == "failed":
                assert f"RuntimeError: variant {r.name} fails on purpose" in open(
                    r.log_path).read()
        summary = out[out.index("Summary of the experiment grid"):]
        assert re.search(r"ex_lr0-2_fai_s0 +\d+\.\d  .*failed \(exit 1\)", summary)
        assert "2 ok, 2 failed, 0 skipped" in summary
        if kind == "submitit_local":  # each variant was a submitit job with its own logs
            assert len(list((tmp_path / "submitit").glob("*/*_result.pkl"))) == 4

        # skip_finished is honoured: only the failed variants run again.
        results = _failing_grid(counter).run(log_progress, data_dir=str(tmp_path),
                                             executor=executor, skip_finished=True)
        assert [r.status for r in results] == ["skipped", "failed"] * 2
        assert sorted(counter.read_text().split()) == sorted(
            ["ex_lr0-1", "ex_lr0-2"] + ["ex_lr0-1_fai", "ex_lr0-2_fai"] * 2)
        assert "0 ok, 2 failed, 2 skipped" in capsys.readouterr().out
    finally:
        _shutdown(executor)


def _resumable_grid():
    eg = ExperimentGrid("res")
    eg.add("seed", [0, 1])
    eg.add("kill_at", 3)
    return eg


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parallel", "process", "submitit_local", "submitit_debug"])
def test_killed_job_resubmitted_with_resume_continues_in_its_folder(kind, tmp_path, capsys):
    run_kwargs = dict(parallel=2) if kind == "parallel" else dict(
        executor=_executor(kind, tmp_path))
    try:
        results = _resumable_grid().run(resumable, data_dir=str(tmp_path), **run_kwargs)
        # Each job died by SIGKILL in epoch 3: reported, not finished.
        assert [(r.status, r.returncode) for r in results] == [("failed", -9)] * 2
        assert not any(is_finished(r.output_dir) for r in results)
        capsys.readouterr()

        results = _resumable_grid().run(resumable, data_dir=str(tmp_path), resume=True,
                                        **run_kwargs)
        assert [r.status for r in results] == ["ok", "ok"]
        for seed, r in enumerate(results):
            run = tmp_path / "res" / f"res_s{seed}"
            assert r.output_dir == str(run)
            # The second attempt saw resume=True and continued from its checkpoint.
            assert (run / "attempts.txt").read_text() == "False 0\nTrue 3\n"
            rows = (run / "progress.txt").read_text().splitlines()
            assert rows == ["Epoch\tValue"] + [f"{e}\t{10 * seed + e}" for e in range(6)]
            assert is_finished(run)
            log = open(r.log_path).read()  # appended to, not replaced
            assert log.count("Running experiment:") == 2
            assert "exited with status -9" in log and "exited with status 0" in log

        # Resuming again: everything is finished, nothing runs.
        results = _resumable_grid().run(resumable, data_dir=str(tmp_path), resume=True,
                                        **run_kwargs)
        assert [r.status for r in results] == ["skipped", "skipped"]
        assert (tmp_path / "res" / "res_s0" / "attempts.txt").read_text().count("\n") == 2
    finally:
        if "executor" in run_kwargs:
            _shutdown(run_kwargs["executor"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_submitit_preempted_job_is_requeued_and_resumes(tmp_path):
    """submitit signals the job before its time limit (as Slurm does on preemption or
    timeout); ExperimentJob.checkpoint hands back the job with resume=True, submitit requeues
    it, and the experiment continues from its checkpoint in the same folder."""
    import submitit

    executor = submitit.LocalExecutor(folder=str(tmp_path / "submitit" / "%j"),
                                      max_num_timeout=5)
    # Limit 20 s, signal 16 s before it: every attempt is interrupted after 4 s, while the
    # experiment needs 20 x 0.3 s = 6 s of epochs.
    executor.update_parameters(timeout_min=20 / 60, signal_delay_s=16)
    result = call_experiment("pre", resumable, seed=2, data_dir=str(tmp_path),
                             executor=executor, epochs=20, sleep=0.3)
    run = tmp_path / "pre" / "pre_s2"
    assert (result.status, result.returncode, result.output_dir) == ("ok", 0, str(run))
    attempts = [line.split() for line in (run / "attempts.txt").read_text().splitlines()]
    assert len(attempts) >= 2 and attempts[0] == ["False", "0"]
    assert all(flag == "True" for flag, _ in attempts[1:])
    firsts = [int(first) for _, first in attempts]
    assert firsts == sorted(firsts) and firsts[-1] > 0
    rows = (run / "progress.txt").read_text().splitlines()
    assert rows == ["Epoch\tValue"] + [f"{e}\t{20 + e}" for e in range(20)]
    assert is_finished(run)
    assert open(result.log_path).read().count("Running experiment:") == len(attempts)


def test_call_experiment_with_executor(tmp_path, capsys):
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        result = call_experiment("cx", log_progress, seed=3, data_dir=str(tmp_path),
                                 executor=pool, lr=0.5)
        run = tmp_path / "cx" / "cx_s3"
        assert (result.status, result.returncode, result.output_dir) == ("ok", 0, str(run))
        assert result.log_path == str(run) + ".log" and is_finished(run)
        assert "|           Epoch |" in open(result.log_path).read()
        printed = capsys.readouterr().out
        assert "Running experiment:" in printed and "output goes to " + str(run) + ".log" \
            in printed
        assert "python -m spinfast.run plot " + str(run) in printed
        with pytest.raises(subprocess.CalledProcessError):
            call_experiment("cxf", log_progress, data_dir=str(tmp_path), executor=pool,
                            fail=True)
        assert "There appears to have been an error" in capsys.readouterr().out
        # resume: a finished run is not run again
        result = call_experiment("cx", log_progress, seed=3, data_dir=str(tmp_path),
                                 executor=pool, resume=True, lr=0.5)
        assert result.status == "skipped"
        assert "Skipping cx: " in capsys.readouterr().out


def test_job_description_is_small_and_names_the_thunk(tmp_path):
    import concurrent.futures
    import pickle

    from spinfast._grid.jobs import make_job as _make_job
    from spinfast.run_utils import ExperimentJob

    job = _make_job("j", log_progress, 0, 1, str(tmp_path), False, dict(lr=0.1), "f", log=True)
    assert isinstance(job, ExperimentJob)
    assert job.thunk == f"{log_progress.__module__}:log_progress"  # by reference
    assert job.output_dir == str(tmp_path / "j" / "j_s0")
    assert job.log_path == job.output_dir + ".log"
    assert len(pickle.dumps(job)) < 4096 + len(pickle.dumps(job.sys_path))
    ckpt = job.checkpoint()
    assert ckpt.function == job.__class__(**{**job.__dict__, "resume": True})
    # A closure cannot be named: it travels by value and still runs in a worker process.
    marker = tmp_path / "closure.txt"

    def closure(seed, logger_kwargs):
        marker.write_text(f"{seed} {logger_kwargs['exp_name']}")

    job = _make_job("c", closure, 4, 1, str(tmp_path), False, {}, "f", log=True)
    assert isinstance(job.thunk, bytes)
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        assert pool.submit(job).result().status == "ok"
    assert marker.read_text() == "4 c"


def test_executor_argument_errors(tmp_path):
    import concurrent.futures

    eg = ExperimentGrid("e")
    eg.add("lr", [0.1])
    with pytest.raises(TypeError, match=r"ExperimentGrid.run\(\): executor must have a "
                                        r"submit\(fn, \*args\) method"):
        eg.run(log_progress, data_dir=str(tmp_path), executor=object())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="pass parallel or executor, not both"):
            eg.run(log_progress, data_dir=str(tmp_path), executor=pool, parallel=2)
    with pytest.raises(ValueError, match="resume=True cannot find earlier runs"):
        eg.run(log_progress, data_dir=str(tmp_path), resume=True, datestamp=True)
    with pytest.raises(ValueError, match=r"call_experiment\(\): resume=True cannot find"):
        call_experiment("x", log_progress, data_dir=str(tmp_path), resume=True,
                        datestamp=True)
    with pytest.raises(TypeError, match=r"call_experiment\(\): executor must have"):
        call_experiment("x", log_progress, data_dir=str(tmp_path), executor="slurm")


@pytest.mark.mpi
def test_experiment_started_inside_a_launch_decides_its_own_ranks(run_mpi, tmp_path):
    """As a submitit job that srun started with PMI variables: the experiment it launches is
    not rank 0 of 1 of that launch but forks its own num_cpu ranks."""
    run_mpi("experiment_in_launch", n=1, args=(os.path.dirname(__file__),), timeout=120)
    infos = [json.loads((tmp_path / f"r.{i}").read_text()) for i in range(2)]
    assert sorted((i["rank"], i["size"]) for i in infos) == [(0, 2), (1, 2)]


class InlineExecutor:
    """The least an executor offers: ``submit(fn)`` returning an object with ``result()``
    (no ``done()``, so the grid collects results in order). Runs each job at once; the job
    named ``lose`` is reported lost, as a cluster losing a node would."""

    class Outcome:
        def __init__(self, value=None, error=None):
            self.value, self.error = value, error

        def result(self):
            if self.error is not None:
                raise self.error
            return self.value

    def __init__(self, lose):
        self.lose, self.names = lose, []

    def submit(self, fn, *args, **kwargs):
        self.names.append(fn.exp_name)
        if fn.exp_name == self.lose:
            return self.Outcome(error=RuntimeError("node lost\nsecond line"))
        return self.Outcome(fn(*args, **kwargs))


def test_minimal_executor_not_started_and_lost_jobs_reported(tmp_path, capsys):
    import threading

    eg = ExperimentGrid("m")
    eg.add("lr", [0.1, 0.2, 0.3])
    eg.add("epochs", [1, threading.Lock()], shorthand="b")  # a lock cannot be pickled
    names = [eg.variant_name(v) for v in eg.variants()]
    executor = InlineExecutor(lose=names[2])
    results = eg.run(log_progress, data_dir=str(tmp_path), executor=executor)
    assert [(r.status, r.error) for r in results] == [
        ("ok", None), ("failed", "did not start"), ("failed", "job error: RuntimeError"),
        ("failed", "did not start"), ("ok", None), ("failed", "did not start")]
    assert executor.names == [names[0], names[2], names[4]]  # unpicklable ones never sent
    assert is_finished(results[0].output_dir) and is_finished(results[4].output_dir)
    out = capsys.readouterr()
    assert f"Variant {names[2]}: the executor reports RuntimeError: node lost\x1b" in out.out
    assert f"Variant {names[1]} could not start: TypeError: ExperimentGrid.run(): could not " \
           f"serialize the experiment" in out.out
    summary = out.out[out.out.index("Summary of the experiment grid"):]
    assert re.search(r"failed \(job error: RuntimeError\)\x1b\[0m  log: \S+m_lr0-2_b1_s0.log",
                     summary)
    assert "2 ok, 4 failed, 0 skipped" in summary


def sleeper(seed, logger_kwargs, pid_dir):
    """Record this experiment process's pid, then sleep far beyond any test's time."""
    # Written aside and renamed, so the test never reads a pid file that is still empty.
    path = os.path.join(pid_dir, f"{seed}.pid")
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(300)


def interrupted_grid(kind, data_dir, pid_dir):
    """The program of the Ctrl-C test: four sleeping variants, two at a time."""
    import concurrent.futures

    user_config.WAIT_BEFORE_LAUNCH = 0
    eg = ExperimentGrid("int")
    eg.add("seed", [0, 1, 2, 3])
    eg.add("pid_dir", pid_dir)
    if kind == "parallel":
        eg.run(sleeper, data_dir=data_dir, parallel=2)
    else:
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            eg.run(sleeper, data_dir=data_dir, executor=pool)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
@pytest.mark.parametrize("kind", ["parallel", "process"])
def test_ctrl_c_stops_running_experiments_and_starts_no_more(kind, tmp_path):
    import signal

    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import test_run_utils as t; "
            f"t.interrupted_grid({kind!r}, {str(tmp_path / 'd')!r}, {str(pid_dir)!r})")
    # Its own session, so that SIGINT to the group reaches it as a terminal's Ctrl-C does.
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while len(list(pid_dir.glob("*.pid"))) < 2 and time.time() < deadline:
            time.sleep(0.05)
        pids = [int(p.read_text()) for p in pid_dir.glob("*.pid")]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr.read().decode()
        assert not any(_alive(pid) for pid in pids)
        time.sleep(0.5)
        assert len(list(pid_dir.glob("*.pid"))) == 2  # the queued variants never started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_summary_says_requeued_and_cancelled(capsys):
    """What a grid on Slurm reports (tests/test_slurm.py makes these results for real)."""
    from spinfast._grid.executors import print_summary
    from spinfast.run_utils import VariantResult

    print_summary([
        VariantResult("a", "/d/a/a_s0", "ok", 0, 12.0, requeues=2),
        VariantResult("b", "/d/b/b_s0", "cancelled", None, 0.0, "/d/b/b_s0.log",
                      "Slurm job 7_1 cancelled"),
        VariantResult("c", "/d/c/c_s0", "failed", 1, 3.0, "/d/c/c_s0.log", requeues=1)])
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # no colours
    assert re.search(r"\na_s0 +12\.0  ok \(exit 0\), requeued 2x\n", out), out
    assert re.search(r"\nb_s0 +0\.0  cancelled \(Slurm job 7_1 cancelled\)  log: "
                     r"/d/b/b_s0\.log\n", out), out
    assert re.search(r"\nc_s0 +3\.0  failed \(exit 1\), requeued 1x  log: /d/c/c_s0\.log\n",
                     out), out
    assert "1 ok, 1 failed, 0 skipped, 1 cancelled\n" in out
