"""The docs' train_mnist example, ported to TF1 and PyTorch, runs end to end (1 and 2 ranks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mpi_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COLUMNS = ["Epoch", "AverageAcc", "StdAcc", "MaxAcc", "MinAcc", "Loss", "TotalGradientSteps",
           "Time"]


def train(folder, script, cpu):
    cmd = [sys.executable, str(EXAMPLES / script), "--cpu", str(cpu), "--epochs", "3",
           "--steps_per_epoch", "40", "--data_dir", str(folder), "--exp_name", "ex"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=mpi_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "ex" / "ex_s0"


def start_early(items, tmp_path_factory, bg):
    """Start the selected examples' runs with the session (conftest.early_steps)."""
    for item in items:
        script, cpu = item.callspec.params["script"], item.callspec.params["cpu"]
        bg.add(("example", script, cpu),
               lambda s=script, c=cpu: train(tmp_path_factory.mktemp("ex"), s, c))
        bg.start([("example", script, cpu)])


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_mnist_tf1.py", "train_mnist_torch.py"])
@pytest.mark.parametrize("cpu", [1, 2])
def test_train_mnist_example(early_steps, script, cpu):
    run = early_steps.result(("example", script, cpu))
    lines = (run / "progress.txt").read_text().splitlines()
    assert lines[0].split("\t") == COLUMNS
    rows = [[float(v) for v in line.split("\t")] for line in lines[1:]]
    assert [r[0] for r in rows] == [0, 1, 2]
    assert [r[6] for r in rows] == [40, 80, 120]
    assert rows[-1][1] > rows[0][1]          # accuracy improves
    assert (run / "config.json").exists()
    saved = "tf1_save" if "tf1" in script else "pyt_save"
    assert (run / saved).is_dir()
