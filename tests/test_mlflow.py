"""The MLflow output format, read back through MLflow's own client (not its files)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_writers import read_txt, rows

from spinfast._outputs import ResumePoint, Row
from spinfast._outputs.mlflow import RUN_ID_FILE, MlflowWriter, flatten


@pytest.fixture
def mlflow_env(monkeypatch):
    """No tracking URI or experiment from the environment; the file-store opt-out unset (the
    writer sets it); no telemetry; all restored afterwards."""
    try:
        import mlflow  # noqa: F401
    except ImportError:  # part of the test setup; say so loudly
        pytest.fail("mlflow is not installed: pip install '.[test]' (or '.[mlflow]')")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from the tests


def client(folder):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=Path(folder, "mlruns").resolve().as_uri())


def run_id(folder):
    return Path(folder, RUN_ID_FILE).read_text().strip()


def history(c, rid):
    """metric -> [(step, value)] of run ``rid``, in logging order."""
    return {key: [(m.step, m.value) for m in c.get_metric_history(rid, key)]
            for key in c.get_run(rid).data.metrics}


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def test_rows_are_metrics_at_their_steps(tmp_path, mlflow_env):
    out = tmp_path / "exp_s0"
    w = MlflowWriter(str(out))
    data = rows(5)
    for row in data:
        w.write_row(Row(row.headers + ["F32", "Flag", "Odd%Name"],
                        {**row.values, "F32": np.float32(0.5), "Flag": True, "Odd%Name": 3},
                        10 * row.step))
    w.close()
    c = client(out)
    rid = run_id(out)
    run = c.get_run(rid)
    assert run.info.run_name == "exp_s0" and run.info.status == "FINISHED"
    assert c.get_experiment(run.info.experiment_id).name == "spinfast"
    got = history(c, rid)
    # text columns are skipped; a name MLflow refuses has _ for the odd character
    assert sorted(got) == sorted(["Epoch", "AverageEpRet", "StdEpRet", "Tiny", "Huge", "Nan",
                                  "F32", "Flag", "Odd_Name"])
    for key in ["Epoch", "AverageEpRet", "StdEpRet", "Tiny", "Huge", "Nan"]:
        assert [s for s, _ in got[key]] == [0, 10, 20, 30, 40]
        for (_, value), row in zip(got[key], data):
            assert same(value, float(row.values[key]))  # float64, exactly
    assert got["F32"] == [(s, 0.5) for s in range(0, 50, 10)]
    assert got["Flag"] == [(s, 1.0) for s in range(0, 50, 10)]
    assert got["Odd_Name"] == [(s, 3.0) for s in range(0, 50, 10)]


def test_config_becomes_flattened_params(tmp_path, mlflow_env, capsys):
    from spinfast.logx import EpochLogger

    config = {"lr": 0.001, "seed": 0, "net": {"hidden": [64, 64], "act": "tanh"},
              "empty": {}, "none": None, "flag": True}
    assert flatten(config) == {"lr": "0.001", "seed": "0", "net.hidden": "[64, 64]",
                               "net.act": "tanh", "empty": "{}", "none": "null",
                               "flag": "true"}
    assert flatten([1, 2]) == {"config": "[1, 2]"}
    logger = EpochLogger(output_dir=str(tmp_path / "run"), formats="txt,mlflow",
                         exp_name="demo")
    logger.save_config(config)
    logger.close()
    capsys.readouterr()
    params = client(tmp_path / "run").get_run(run_id(tmp_path / "run")).data.params
    assert params == {**flatten(config), "exp_name": "demo"}


def test_resume_continues_the_run_with_each_step_once(tmp_path, mlflow_env, capsys):
    from spinfast.logx import EpochLogger

    out = tmp_path / "run"

    def epochs(logger, first, n, offset):
        for epoch in range(first, first + n):
            logger.store(Ret=epoch + offset)
            logger.log_tabular("Epoch", epoch)
            logger.log_tabular("Ret", with_min_and_max=True)
            logger.dump_tabular()

    logger = EpochLogger(output_dir=str(out), formats="txt,mlflow")
    logger.save_config({"lr": 0.5})
    epochs(logger, 0, 3, 0.0)
    logger.save_state({"epoch": 2})
    epochs(logger, 3, 2, 0.0)  # logged to MLflow, then lost: the run is killed here
    logger.writers[1].client = None  # (no close: the MLflow run stays RUNNING)
    logger.writers[1].run_id = None
    logger.close()
    first = run_id(out)
    resumed = EpochLogger(output_dir=str(out), formats="txt,mlflow", resume=True)
    assert resumed.load_state() == {"epoch": 2}
    with pytest.warns(RuntimeWarning, match=r"keeps its values of \['lr'\]"):
        resumed.save_config({"lr": 0.25, "gamma": 0.99})
    epochs(resumed, 3, 4, 100.0)  # steps 3 and 4 again, then 5 and 6
    resumed.close()
    capsys.readouterr()
    assert run_id(out) == first
    c = client(out)
    (run,) = c.search_runs([c.get_experiment_by_name("spinfast").experiment_id])
    assert run.info.run_id == first and run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.5", "gamma": "0.99"}
    got = history(c, first)
    assert sorted(got) == ["AverageRet", "Epoch", "MaxRet", "MinRet", "StdRet"]
    txt = read_txt(out / "progress.txt")
    assert txt["Epoch"].tolist() == list(range(7))
    for key, series in got.items():
        assert [s for s, _ in series] == list(range(7))  # each step once
        # steps 3 and 4 keep the values the killed run logged there; the rest are
        # progress.txt's
        want = [float(v) for v in txt[key]]
        if key != "Epoch":
            want[3:5] = [3.0, 4.0] if key != "StdRet" else [0.0, 0.0]
        assert [v for _, v in series] == want


def test_tracking_uri_from_the_environment(tmp_path, mlflow_env, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "elsewhere").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store the user chose
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    w = MlflowWriter(str(tmp_path / "run"), ResumePoint(rows=2, step=2))  # nothing to resume
    w.write_row(rows(1)[0])
    w.close()
    assert not (tmp_path / "run" / "mlruns").exists()
    c = MlflowClient(tracking_uri=store)
    run = c.get_run(run_id(tmp_path / "run"))
    assert c.get_experiment(run.info.experiment_id).name == "mine"
    assert [m.step for m in c.get_metric_history(run.info.run_id, "Epoch")] == [0]


def test_missing_mlflow_names_the_extra():
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from spinfast._outputs import make_writers\n"
            "try:\n    make_writers(('mlflow',), '.')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'spinfast[mlflow]'" in out and "'mlflow'" in out
